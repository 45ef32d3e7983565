"""A 2-layer GPT-J slice at real width with random weights, exported to ONNX, and PyTorch's numbers for it.

Regenerate with: /usr/bin/python3 scripts/make_full_width_gptj.py OUTDIR   (maintainers and the tests; never committed)

GPT-J-6B's shapes (d_model 4096, 16 heads of 256, rotary on the first 64 dims of each head, MLP 16384,
50400 embedding and LM-head rows for a 50257-token tokenizer) but 2 blocks, built from our HF-maths
module (scripts/dissect_models/gptj.py) and exported like tiny-gptj (make_default_model.export_onnx).
The fp32 graph is ~3.3 GB: over protobuf's 2 GB, torch 1.13's exporter writes every initializer to
its own file beside OUTDIR/model.onnx by itself. OUTDIR/expected.json holds the reference numbers
(its `semantics` says what each one is); knockout is make_expected.Knockout's hook.
"""
import argparse
import json
import math
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dissect_models.gptj import GPTJConfig, GPTJForCausalLM  # noqa: E402
from make_default_model import export_onnx  # noqa: E402
from make_expected import Knockout  # noqa: E402

TOKENIZER_VOCAB = 50257
CONFIG = GPTJConfig(vocab_size=50400, n_positions=2048, n_embd=4096, n_layer=2, n_head=16, rotary_dim=64)
PROMPT = [464, 3290, 318, 6898, 416, 50256, 13, 1101]
PROBE_LAYER = 1
BLOCKED_KEY = 2
# Rows past the tokenizer get LM-head weights this many times larger, so that their logits beat
# every real token's: a vocabLimit that let them through would then change the top-k visibly.
PADDED_ROW_GAIN = 4.0
SEED = 0


@torch.no_grad()
def randomise(model):
    """Unit-variance activations at any width: each Linear is N(0, 1/fan_in), embeddings N(0, 1);
    biases and norm parameters are non-trivial so that the export and the compiler must carry them."""
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.normal_(m.weight, std=1 / math.sqrt(m.in_features))
            if m.bias is not None:
                torch.nn.init.normal_(m.bias, std=0.1)
        elif isinstance(m, torch.nn.Embedding):
            torch.nn.init.normal_(m.weight)
        elif isinstance(m, torch.nn.LayerNorm):
            torch.nn.init.normal_(m.weight, mean=1.0, std=0.1)
            torch.nn.init.normal_(m.bias, std=0.1)
    model.lm_head.weight[TOKENIZER_VOCAB:] *= PADDED_ROW_GAIN


def top(logits, k=10):
    v, i = torch.topk(logits, k)
    return {"ids": i.tolist(), "values": v.tolist()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    torch.manual_seed(SEED)
    model = GPTJForCausalLM(CONFIG).eval()
    randomise(model)
    export_onnx(model, os.path.join(args.out, "model.onnx"), PROMPT)
    t_export = time.time() - t0

    ko = Knockout(model, "gptj")
    last_rows = []
    # GPTJAttention.forward drops the probabilities; its attn_dropout (p = 0) is the one module they pass through
    model.transformer.h[PROBE_LAYER].attn.attn_dropout.register_forward_hook(
        lambda _m, _i, out: last_rows.append(out[0, :, -1, :].tolist()))
    n = len(PROMPT)
    logits = ko.logits_last(PROMPT)
    ko.logits_last(PROMPT, {PROBE_LAYER: [(n - 1, BLOCKED_KEY)]})
    clean, blocked = last_rows
    expected = {
        "semantics": {
            "model": "model.onnx, float32, PyTorch (scripts/dissect_models/gptj.py), batch 1, attention_mask all "
                     "ones, positions arange(N)",
            "top10": "the 10 largest logits at position N-1 over all 50400 rows, descending",
            "top10_tokenizer": f"the same over the rows < {TOKENIZER_VOCAB} only",
            "attn_probs": f"layer {PROBE_LAYER}'s attention probabilities of query N-1, [head][key]",
            "attn_probs_blocked": f"the same with the edge N-1 -> {BLOCKED_KEY} blocked at layer {PROBE_LAYER} "
                                  "(score replaced by finfo(float32).min, make_expected.Knockout)",
        },
        "config": {**CONFIG.to_dict(), "tokenizer_vocab": TOKENIZER_VOCAB},
        "input_ids": PROMPT,
        "probe_layer": PROBE_LAYER,
        "blocked_key": BLOCKED_KEY,
        "top10": top(logits),
        "top10_tokenizer": top(logits[:TOKENIZER_VOCAB]),
        "attn_probs": clean,
        "attn_probs_blocked": blocked,
    }
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    print(f"built and exported in {t_export:.1f} s, total {time.time() - t0:.1f} s, peak RSS {peak_gib:.1f} GiB", flush=True)


if __name__ == "__main__":
    main()
