"""Train the tiny fact-knowing model on the synthetic KB and write generated/tiny-gpt2/ (or tiny-gptj/).

Regenerate with: /usr/bin/python3 scripts/make_default_model.py            (GPT-2 -> generated/tiny-gpt2/)
            and: /usr/bin/python3 scripts/make_default_model.py --arch gptj (GPT-J -> generated/tiny-gptj/)
(from the repo root; CPU, 2 threads, ~8 minutes each; seeded. ONNX bytes may differ across machines.)

Writes model.onnx (opset 14; inputs input_ids, attention_mask int64 [batch, seq]; output logits),
tokenizer.json (HF tokenizers WordLevel + Whitespace), facts.json (CounterFact-style eval facts),
attributes.json (subject -> attribute words), card.json and README.md (model card with the paper
measurements computed in PyTorch on the eval facts).
"""
import argparse
import hashlib
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

N_SUBJECTS = 200
EVAL_SUBJECTS = 50          # eval facts: first 50 subjects x 6 relations = 300 facts
SEED = 0

ARCHS = {
    "gpt2": dict(out="tiny-gpt2", layers=6, d=128, heads=4, steps=600, batch=32, lr=4e-3),
    "gptj": dict(out="tiny-gptj", layers=6, d=96, heads=3, rotary=16, steps=600, batch=32, lr=4e-3),
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


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="gpt2", choices=sorted(ARCHS))
    ap.add_argument("--steps", type=int, default=None, help="override (for quick tests only)")
    args = ap.parse_args()
    torch.set_num_threads(2)
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
    meas = A.summarize(model, tok, kb, ev, E, measure_block=L - 2, width=2, ks=(3, 5, 9))
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
        "training": {"steps": res["steps_run"], "batch": a["batch"], "seq_len": 32, "lr": a["lr"],
                     "seconds": res["seconds"], "history": res["history"]},
        "measurements": meas,
    }
    if args.arch == "gptj":
        card["rotary_dim"] = cfg.rotary_dim
    with open(os.path.join(out, "card.json"), "w") as f:
        json.dump(card, f, indent=1)
    print(json.dumps({k: v for k, v in card.items() if k not in ("training",)}, indent=1))


if __name__ == "__main__":
    main()
