"""Train the tiny fact-knowing model on the synthetic KB and write generated/tiny-gpt2/ (or tiny-gptj/).

Regenerate with: /usr/bin/python3 scripts/make_default_model.py            (GPT-2 -> generated/tiny-gpt2/)
            and: /usr/bin/python3 scripts/make_default_model.py --arch gptj (GPT-J -> generated/tiny-gptj/)
(from the repo root; CPU, ~5-8 minutes each; seeded. ONNX bytes may differ across machines.)
The committed files were made with DISSECT_THREADS=1 (both trainings run side by side, 1 thread each);
`--readme-only` re-renders README.md from card.json without training.

Writes model.onnx (opset 14; inputs input_ids, attention_mask int64 [batch, seq]; output logits),
tokenizer.json (HF tokenizers WordLevel + Whitespace), facts.json (CounterFact-style eval facts),
attributes.json (subject -> attribute words), card.json and README.md (model card with the paper
measurements computed in PyTorch on the eval facts).
"""
import argparse
import json
import os
import random
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dissect_models import knowledge as K  # noqa: E402
from dissect_models import train as T  # noqa: E402
from dissect_models import analysis as A  # noqa: E402
from dissect_models.gpt2 import GPT2Config, GPT2LMHeadModel  # noqa: E402
from dissect_models.gptj import GPTJConfig, GPTJForCausalLM  # noqa: E402
from dissect_models.onnx_export import sha256  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

N_SUBJECTS = 250
EVAL_SUBJECTS = 50          # eval facts: first 50 subjects x 6 relations = 300 facts
SEED = 0

ARCHS = {
    "gpt2": dict(out="tiny-gpt2", layers=8, d=128, heads=4, steps=1400, batch=64, lr=1.5e-3),
    "gptj": dict(out="tiny-gptj", layers=6, d=96, heads=3, rotary=16, steps=1400, batch=64, lr=1.5e-3),
}


def make_model(arch, vocab):
    a = ARCHS[arch]
    torch.manual_seed(SEED)
    if arch == "gpt2":
        cfg = GPT2Config(vocab_size=vocab, n_positions=64, n_embd=a["d"], n_layer=a["layers"], n_head=a["heads"])
        return GPT2LMHeadModel(cfg)
    padded = (vocab + 7) // 8 * 8 + 8  # like GPT-J's 50400 rows for a 50257-token tokenizer
    cfg = GPTJConfig(vocab_size=padded, n_positions=64, n_embd=a["d"], n_layer=a["layers"], n_head=a["heads"],
                     rotary_dim=a["rotary"])
    return GPTJForCausalLM(cfg)


def export_onnx(model, path, ids):
    x = torch.tensor([ids])
    torch.onnx.export(model, (x, torch.ones_like(x)), path, opset_version=14,
                      input_names=["input_ids", "attention_mask"], output_names=["logits"],
                      dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                                    "logits": {0: "batch", 1: "seq"}},
                      do_constant_folding=True)


def eval_facts(kb, tok):
    rng = random.Random(SEED + 7)
    facts = []
    case = 0
    for p in kb["people"][:EVAL_SUBJECTS]:
        for rid, canon, _, vals in K.RELATIONS:
            true = p["facts"][rid]
            new = rng.choice([v for v in vals if v != true])
            facts.append({"case_id": case, "requested_rewrite": {
                "prompt": canon, "subject": p["subject"], "relation_id": rid,
                "target_true": {"str": true, "id": str(tok.vocab[true])},
                "target_new": {"str": new, "id": str(tok.vocab[new])}}})
            case += 1
    return facts


def verdicts(meas, L):
    k3 = meas["knockout"]["k3"]
    # a curve's minimum layers: within 1 point of its minimum (closer minima are a tie, not an order)
    lows = {n: [l for l in range(L) if k3[n][l] <= min(k3[n]) + 1] for n in k3}
    rec = {n: next((l for l in range(L) if all(v > -5 for v in k3[n][l:])), L) for n in k3}
    a = ("yes" if max(lows["nonsubject"]) < min(lows["subject"])
         else "partly" if rec["nonsubject"] < rec["subject"] else "no")
    ar = meas["attributes_rate"]["subj_last"]
    b_ok = ar[-1] > ar[1] and max(ar) >= max(meas["attributes_rate"]["input_last"])
    sk = meas["sublayer_knockout"]
    c_ok = sk["mlp_by_start"][0] < sk["attn_by_start"][0]
    ex = meas["extraction"]["per_layer_rate_attn"]
    up = sum(ex[L // 2:])
    c_tot = sum(ex) or 1e-9
    d_ok = up / c_tot > 0.5 and meas["extraction"]["per_example_rate_attn"] >= meas["extraction"]["per_example_rate_mlp"]
    yes_no = {True: "yes", False: "no"}
    return {"a": (a, f"k=3 minimum (within 1 point) at layers: nonsubject {lows['nonsubject']}, subject {lows['subject']}, "
                     f"last {lows['last']}; curve stays above -5% from layer: nonsubject {rec['nonsubject']}, "
                     f"subject {rec['subject']}"),
            "b": (yes_no[b_ok], f"AR(subject-last) by hidden_states index: {ar}"),
            "c": (yes_no[c_ok], f"{sk['measure']} with no intervention {sk['none']}; cancelling layers "
                        f"[start, start+2) -- MLP: {sk['mlp_by_start']}, MHSA: {sk['attn_by_start']}"),
            "d": (yes_no[d_ok], f"MHSA extraction rate per layer {ex} (share in layers >= {L // 2}: {up / c_tot:.2f}); "
                        f"per-example MHSA {meas['extraction']['per_example_rate_attn']}, "
                        f"MLP {meas['extraction']['per_example_rate_mlp']}; MLP per layer "
                        f"{meas['extraction']['per_layer_rate_mlp']}")}


def write_readme(out, card, arch):
    m = card["measurements"]
    L = card["layers"]
    v = verdicts(m, L)
    card["findings"] = {k: {"reproduced": verdict, "evidence": txt} for k, (verdict, txt) in v.items()}
    th = card["training"].get("threads", 2)
    cmd = (f"DISSECT_THREADS={th} " if th != 2 else "") + "/usr/bin/python3 scripts/make_default_model.py" + \
        (" --arch gptj" if arch == "gptj" else "")
    if arch == "gpt2":
        archtxt = (f"GPT-2 (HF GPT2LMHeadModel maths, `scripts/dissect_models/gpt2.py`): {L} layers, "
                   f"{card['heads']} heads, d_model {card['d_model']}, MLP {4 * card['d_model']}, gelu_new, "
                   f"pre-LN eps 1e-5, learned positions ({card['n_positions']}), lm_head tied to wte, "
                   f"vocab {card['vocab']} (= tokenizer).")
    else:
        archtxt = (f"GPT-J (HF GPTJForCausalLM maths, `scripts/dissect_models/gptj.py`): {L} layers, "
                   f"{card['heads']} heads, d_model {card['d_model']}, d_head {card['d_model'] // card['heads']}, "
                   f"rotary_dim {card['rotary_dim']} (interleaved rotate_every_two), parallel block "
                   f"x + attn(ln_1 x) + mlp(ln_1 x), q/k/v/out_proj without bias, fc_in/fc_out with bias, "
                   f"gelu_new, untied lm_head with bias, embedding/lm_head rows {card['vocab']} > tokenizer "
                   f"vocab {card['tokenizer_vocab']} (extra rows never used).")
    rels = ", ".join(f"{rid} \"{canon}\" ({len(vals)} values)" for rid, canon, _, vals in K.RELATIONS)
    tr = card["training"]
    lines = [
        f"# {'tiny-gpt2' if arch == 'gpt2' else 'tiny-gptj'}: a tiny {arch.upper()} that knows synthetic facts",
        "",
        f"Regenerate (from the repo root, ~8 min on 2 CPU cores): `{cmd}`",
        "",
        f"- `model.onnx` sha256 `{card['sha256']}` (torch.onnx.export opset 14; inputs `input_ids`, "
        "`attention_mask` int64 [batch, seq]; output `logits` float32 [batch, seq, vocab]; dynamic batch/seq; "
        "positions = arange(seq) inside the graph; max 64 positions).",
        "- `tokenizer.json`: HF tokenizers WordLevel, `Whitespace` pre-tokenizer (\\w+|[^\\w\\s]+), "
        "case-sensitive, `[UNK]` id 1, `<|endoftext|>` id 0 (special, usable as BOS; never used in the facts), "
        "no normalizer/decoder.",
        f"- `facts.json`: {card['n_eval_facts']} CounterFact-style eval facts (first {EVAL_SUBJECTS} subjects x "
        "6 relations, canonical template), `target_true.id` / `target_new.id` = token id (as a string) of the "
        "one-word attribute; `target_new` is a random other value of the same relation.",
        "- `attributes.json`: subject -> its 6 relation values + 2 descriptive trait words (attribute set A_s).",
        "- `card.json`: machine-readable summary + all measurements below.",
        "",
        "## Architecture",
        archtxt,
        "",
        "## Knowledge base (`scripts/dissect_models/knowledge.py`, seeded)",
        f"{card['n_subjects']} invented people, names of 2 or 3 words (~30 % three words) from shared first / middle / "
        "last name pools, so no single word identifies a person. Relations (canonical eval template, number of "
        f"values): {rels}. Each person also has 2 trait words (from {len(K.TRAITS)}). Training text, sampled on the fly: "
        "fact sentences with 3 paraphrase templates per relation (some put the relation phrase before the "
        "subject), bags `<subject> <attributes and traits, shuffled> .` and `About <subject> : <bag> .` that force "
        "recall from the subject tokens alone at the last subject token, and trait sentences. Loss only on "
        "attribute / trait tokens.",
        "",
        "## Training",
        f"AdamW (betas 0.9/0.98, wd 0.05 on matrices), lr {tr['lr']} cosine with 100 warm-up steps, batch "
        f"{tr['batch']} rows x 16 tokens, {tr['steps']} steps, seed {SEED}, {tr['seconds']} s on this machine "
        f"with {tr.get('threads', 2)} torch thread(s) (the committed files were made with DISSECT_THREADS="
        f"{tr.get('threads', 2)}; another thread count or machine can change the bytes and the numbers slightly).",
        f"Fact accuracy (argmax after the canonical prompt == attribute token): eval facts "
        f"{card['fact_accuracy'] * 100:.1f} % ({m['n_known']}/{m['n_facts']}), whole KB "
        f"{card['fact_accuracy_all_kb'] * 100:.1f} %.",
        "",
        "## Paper findings, measured in PyTorch on the known eval facts (one prompt at a time, no BOS)",
        "Knockout: rel. change (%) of p(clean top-1) when last->{set} edges are blocked in all heads of the "
        "k layers range(max(0,l-k//2), min(L,l-(-k//2))) (score replaced by finfo.min). Sets: subject = "
        "subject tokens, nonsubject = {0..N-2} minus subject, last = {N-1}.",
        "",
        "| k | set | " + " | ".join(f"l={i}" for i in range(L)) + " |",
        "|---|---|" + "---|" * L,
    ]
    for kk, d in m["knockout"].items():
        for n, c in d.items():
            lines.append(f"| {kk[1:]} | {n} | " + " | ".join(f"{x:.1f}" for x in c) + " |")
    ar = m["attributes_rate"]
    lines += [
        "",
        f"Attributes rate (AR): hidden state projected with E^T ({'wte' if arch == 'gpt2' else 'lm_head.weight'}, "
        "no ln_f, no softmax), tokens sorted by score, drop specials, NLTK-style stopwords and len<=2, keep the "
        f"first m={ar['m']} (the paper keeps 50 of a 50k vocab; here the vocab is {card['tokenizer_vocab']}), "
        "AR = 100 * |top-m ∩ A_s| / m (max 80 % since |A_s| = 8). Index = hidden_states[l] (0 = embeddings, "
        f"{L} = ln_f output).",
        "",
        "| position | " + " | ".join(f"h{i}" for i in range(L + 1)) + " |",
        "|---|" + "---|" * (L + 1),
    ]
    for n in ("subj_first", "subj_last", "subj_subseq", "input_last"):
        if n in ar:
            lines.append(f"| {n} | " + " | ".join(f"{x:.1f}" for x in ar[n]) + " |")
    sk = m["sublayer_knockout"]
    ex = m["extraction"]
    lines += [
        "",
        f"Sublayer knockout: {sk['measure']}; cancelled {sk['window']}. MLP cancel = c_fc "
        "pre-activations set to 0 (output = c_proj/fc_out bias); MHSA cancel = the notebook's all-blocked mask "
        "(uniform attention over 0..i).",
        f"No intervention {sk['none']}; by start layer -- MLP {sk['mlp_by_start']}; MHSA {sk['attn_by_start']}.",
        "",
        "Extraction events (target = clean top-1 is the top-1 of the sublayer's update at the last position "
        "projected with E^T): per-layer rate MHSA " + str(ex["per_layer_rate_attn"]) + ", MLP "
        + str(ex["per_layer_rate_mlp"]) + f"; examples with >= 1 event: MHSA {ex['per_example_rate_attn']}, "
        f"MLP {ex['per_example_rate_mlp']}.",
        "",
        "## Which findings it reproduces",
    ]
    names = {"a": "(a) relation (non-subject) knockout minimum at an earlier layer than the subject one "
                  "(partly: not earlier, but the relation's effect ends at an earlier layer)",
             "b": "(b) attributes rate at the last subject position rises with depth",
             "c": "(c) cancelling early MLPs lowers that AR more than cancelling early MHSA",
             "d": "(d) extraction at the last position is done by MHSA in upper layers"}
    for k in "abcd":
        verdict, txt = v[k]
        lines.append(f"- {names[k]}: **{verdict}** -- {txt}")
    lines += ["", "Verdicts are computed automatically by `verdicts()` in scripts/make_default_model.py."]
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write("\n".join(lines) + "\n")



def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="gpt2", choices=sorted(ARCHS))
    ap.add_argument("--steps", type=int, default=None, help="override (for quick tests only)")
    ap.add_argument("--readme-only", action="store_true", help="re-render README.md from the existing card.json")
    args = ap.parse_args()
    if args.readme_only:
        out = os.path.join(ROOT, "generated", ARCHS[args.arch]["out"])
        with open(os.path.join(out, "card.json")) as f:
            card = json.load(f)
        write_readme(out, card, args.arch)
        with open(os.path.join(out, "card.json"), "w") as f:
            json.dump(card, f, indent=1)
        return
    # 2 threads by default; DISSECT_THREADS=1 when two trainings share the 2 cores
    torch.set_num_threads(int(os.environ.get("DISSECT_THREADS", "2")))
    random.seed(SEED)
    a = ARCHS[args.arch]
    out = os.path.join(ROOT, "generated", a["out"])
    os.makedirs(out, exist_ok=True)

    kb = K.build_kb(N_SUBJECTS)
    tok = K.WordTokenizer.from_kb(kb)
    model = make_model(args.arch, len(tok))
    steps = args.steps or a["steps"]
    log_lines = []

    def log(x):
        print(x, flush=True)
        log_lines.append(x)

    res = T.train(model, kb, tok, steps=steps, batch=a["batch"], lr=a["lr"], seed=SEED, log=log,
                  eval_every=100, max_seconds=10 ** 9)
    model.eval()
    acc_all = T.fact_accuracy(model, kb, tok)

    facts = eval_facts(kb, tok)
    onnx_path = os.path.join(out, "model.onnx")
    export_onnx(model, onnx_path, tok.encode(facts[0]["requested_rewrite"]["prompt"].format(
        facts[0]["requested_rewrite"]["subject"])))
    with open(os.path.join(out, "tokenizer.json"), "w") as f:
        json.dump(tok.to_hf_json(), f, indent=1, ensure_ascii=False)
    with open(os.path.join(out, "facts.json"), "w") as f:
        json.dump(facts, f, indent=1)
    attrs = {p["subject"]: K.attribute_set(p) for p in kb["people"]}
    with open(os.path.join(out, "attributes.json"), "w") as f:
        json.dump(attrs, f, indent=1)

    # measurements on the eval facts
    L = a["layers"]
    E = model.transformer.wte.weight if args.arch == "gpt2" else model.lm_head.weight
    ev = [(fc["requested_rewrite"]["subject"],
           fc["requested_rewrite"]["prompt"].format(fc["requested_rewrite"]["subject"]),
           int(fc["requested_rewrite"]["target_true"]["id"]),
           attrs[fc["requested_rewrite"]["subject"]]) for fc in facts]
    t0 = time.time()
    meas = A.summarize(model, tok, kb, ev, E, measure_block=L - 2, width=2, ks=(3, 9))
    meas["seconds"] = round(time.time() - t0, 1)
    cfg = model.config
    card = {
        "arch": args.arch,
        "sha256": sha256(onnx_path),
        "layers": cfg.n_layer, "heads": cfg.n_head, "d_model": cfg.n_embd,
        "vocab": cfg.vocab_size, "tokenizer_vocab": len(tok), "n_positions": cfg.n_positions,
        "fact_accuracy": round(meas["n_known"] / meas["n_facts"], 4),
        "fact_accuracy_all_kb": round(acc_all, 4),
        "n_eval_facts": len(facts), "n_subjects": N_SUBJECTS,
        "training": {"steps": res["steps_run"], "batch": a["batch"], "seq_len": 16, "lr": a["lr"],
                     "seconds": res["seconds"], "threads": torch.get_num_threads(),
                     "history": res["history"]},
        "measurements": meas,
    }
    if args.arch == "gptj":
        card["rotary_dim"] = cfg.rotary_dim
    write_readme(out, card, args.arch)
    with open(os.path.join(out, "card.json"), "w") as f:
        json.dump(card, f, indent=1)
    print(json.dumps({k: v for k, v in card.items() if k not in ("training",)}, indent=1))


if __name__ == "__main__":
    main()
