"""Write generated/real/README.md (the card) from manifest.json plus the hand-written notes in card_notes.md."""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def _size(out):
    total = 0
    for d, _, fs in os.walk(out):
        for f in fs:
            total += os.path.getsize(os.path.join(d, f))
    return total


def write(manifest, out):
    ex = manifest["exports"]
    v = manifest.get("versions", {})
    lines = []
    notes_path = os.path.join(HERE, "card_notes.md")
    notes = open(notes_path).read() if os.path.exists(notes_path) else ""
    head, _, tail = notes.partition("<!-- TABLES -->")
    lines.append(head.rstrip() + "\n")
    lines.append("## Versions\n")
    lines.append(", ".join(f"{k} {val}" for k, val in v.items()) + "\n")
    lines.append("## Every export\n")
    lines.append("status: ok = onnxruntime (Python, CPU) reproduces transformers' logits within the tolerance "
                 "(fp32: max |err| / max |logit| <= 1e-5 on every prompt, batch 1 and one right-padded batch of 5); "
                 "export_failed / ort_failed / wrong_numbers are exporter (or runtime) defects, kept as records, "
                 "not as fixtures.\n")
    lines.append("| file | exporter | opset | attn | dtype | layout | status | max abs err | max rel err | KiB | contrib ops / error |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in ex:
        extra = ""
        if r.get("contrib_ops"):
            extra = ", ".join(r["contrib_ops"])
        if r.get("error"):
            extra = (extra + " " if extra else "") + "`" + r["error"].replace("|", "\\|").replace("\n", " ")[:300] + "`"
        lines.append(f"| {r['file']} | {r['exporter']} | {r['opset']} | {r['attn']} | {r['dtype']} | {r['layout']} | "
                     f"{r.get('status')} | {r.get('max_abs_err', '')} | {r.get('max_rel_err', '')} | "
                     f"{round(r['size_bytes'] / 1024) if 'size_bytes' in r else ''} | {extra} |")
    lines.append("")
    fams = sorted({r["family"] for r in ex})
    kinds = []
    for r in ex:
        k = (r["exporter"], r["opset"], r["attn"], r["dtype"], r["layout"])
        if k not in kinds:
            kinds.append(k)
    lines.append("## Family x export matrix\n")
    lines.append("| export | " + " | ".join(fams) + " |")
    lines.append("|---|" + "---|" * len(fams))
    for k in kinds:
        row = []
        for f in fams:
            rs = [r for r in ex if r["family"] == f and (r["exporter"], r["opset"], r["attn"], r["dtype"], r["layout"]) == k]
            row.append(rs[0].get("status", "?") if rs else "")
        lines.append(f"| {'-'.join(str(x) for x in k)} | " + " | ".join(row) + " |")
    lines.append("")
    lines.append("## Knockout sensitivity (mean |delta p| of the clean top-1 token over all knockout cases)\n")
    lines.append("| family | mean abs dp | max abs dp | mean abs dp, subject->last all layers |")
    lines.append("|---|---|---|---|")
    for f in fams:
        p = os.path.join(out, f, "expected.json")
        if os.path.exists(p):
            k = json.load(open(p)).get("knockout")
            if k:
                lines.append(f"| {f} | {k['mean_abs_dp']} | {k['max_abs_dp']} | {k['mean_abs_dp_all_layers_subject']} |")
    lines.append("")
    lines.append(tail.strip() + "\n")
    lines.append(f"## Budget\n\nAll files under generated/real: {_size(out) / 1e6:.2f} MB (limit 25 MB), "
                 f"README.md included as of the previous write.\n")
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write("\n".join(lines))
