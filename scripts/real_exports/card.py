"""Write generated/real/README.md (the card) from manifest.json plus the hand-written notes in card_notes.md."""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
BUDGET_MB = 30


def _size(out):
    total = 0
    for d, _, fs in os.walk(out):
        for f in fs:
            total += os.path.getsize(os.path.join(d, f))
    return total


def _matrix(lines, ex, fams):
    kinds = []
    for r in ex:
        k = (r["exporter"], r["opset"], r["attn"], r["dtype"], r["layout"])
        if k not in kinds and r["family"] in fams:
            kinds.append(k)
    lines.append("| export | " + " | ".join(fams) + " |")
    lines.append("|---|" + "---|" * len(fams))
    for k in kinds:
        row = []
        for f in fams:
            rs = [r for r in ex if r["family"] == f and (r["exporter"], r["opset"], r["attn"], r["dtype"], r["layout"]) == k]
            row.append(rs[0].get("status", "?") if rs else "")
        lines.append(f"| {'-'.join(str(x) for x in k)} | " + " | ".join(row) + " |")
    lines.append("")


def write(manifest, out):
    ex = manifest["exports"]
    v = manifest.get("versions", {})
    lines = []
    notes_path = os.path.join(HERE, "card_notes.md")
    notes = open(notes_path).read() if os.path.exists(notes_path) else ""
    head, _, tail = notes.partition("<!-- TABLES -->")
    extra_intro, _, tail = tail.partition("<!-- EXTRA_TABLE -->")
    lines.append(head.rstrip() + "\n")
    lines.append("## Versions\n")
    lines.append(", ".join(f"{k} {val}" for k, val in v.items()) + "\n")
    lines.append("## Every export\n")
    lines.append("status: ok = onnxruntime (Python, CPU) reproduces transformers' logits within the tolerance "
                 "(fp32: max |err| / max |logit| <= 1e-5 on every prompt, batch 1 and one right-padded batch of 5); "
                 "ok_unlisted = the same, for a family beyond the required list (generalisation check, not in the "
                 "zoo test's family table); skipped_budget = built and verified like the others (status_if_kept in "
                 "the manifest) but not kept, over the size budget; "
                 "export_failed / ort_failed / wrong_numbers are exporter (or runtime) defects, kept as records, "
                 "not as fixtures.\n")
    lines.append("| file | exporter | opset | attn | dtype | layout | status | max abs err | max rel err | KiB | contrib ops / error |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in ex:
        extra = ""
        if r.get("contrib_ops"):
            extra = ", ".join(r["contrib_ops"])
        if r.get("status") == "skipped_budget":
            extra = f"not kept (budget); verified: {r.get('status_if_kept')}"
        if r.get("error"):
            extra = (extra + " " if extra else "") + "`" + r["error"].replace("|", "\\|").replace("\n", " ")[:300] + "`"
        lines.append(f"| {r['file']} | {r['exporter']} | {r['opset']} | {r['attn']} | {r['dtype']} | {r['layout']} | "
                     f"{r.get('status')} | {r.get('max_abs_err', '')} | {r.get('max_rel_err', '')} | "
                     f"{round(r['size_bytes'] / 1024) if 'size_bytes' in r else ''} | {extra} |")
    lines.append("")
    import families as F
    fams = sorted({r["family"] for r in ex})
    required = [f for f in fams if f not in F.EXTRA_FAMILIES]
    extra_fams = [f for f in F.EXTRA_FAMILIES if f in fams]
    lines.append("## Family x export matrix\n")
    _matrix(lines, ex, required)
    lines.append("Families beyond the required list:\n")
    _matrix(lines, ex, extra_fams)
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
    if extra_intro.strip():
        lines.append(extra_intro.strip() + "\n")
        lines.append("| family | model_type | shaped like | ts-17 | dynamo-18 | max rel err | mean abs dp | kept |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for f in F.EXTRA_FAMILIES:
            rs = {r["exporter"]: r for r in ex if r["family"] == f}
            if not rs:
                continue
            st = []
            for e in ("ts", "dynamo"):
                r = rs.get(e, {})
                s_ = r.get("status_if_kept") or r.get("status", "")
                if r.get("error"):
                    s_ += " (`" + r["error"].split(": ")[-1][:80].replace("|", "\\|") + "`)"
                st.append(s_)
            errs = [r["max_rel_err"] for r in rs.values() if "max_rel_err" in r]
            p = os.path.join(out, f, "expected.json")
            dp = json.load(open(p))["knockout"]["mean_abs_dp"] if os.path.exists(p) else ""
            kept = "yes" if f in F.EXTRA_FAMILIES_KEPT else "no (budget)"
            lines.append(f"| {f} | {F._cfg(f).model_type} | {F.LIKE.get(f, '')} | {st[0]} | {st[1]} | "
                         f"{max(errs) if errs else ''} | {dp} | {kept} |")
        lines.append("")
    lines.append(tail.strip() + "\n")
    lines.append(f"## Budget\n\nAll files under generated/real: {_size(out) / 1e6:.2f} MB (limit {BUDGET_MB} MB), "
                 f"README.md included as of the previous write.\n")
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write("\n".join(lines))
