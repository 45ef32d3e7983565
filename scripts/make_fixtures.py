"""Write small random-weight GPT-2 (and one GPT-J) ONNX fixtures and their PyTorch reference logits.

Regenerate with: /usr/bin/python3 scripts/make_fixtures.py   (from the repo root; writes generated/fixtures/)

Fixtures (all share the same seeded weights: 2 layers, d_model 32, 4 heads, vocab 64, n_positions 32):
  gpt2-opset14.onnx  torch.onnx.export opset 14 (LayerNorm decomposed), inputs input_ids/attention_mask
  gpt2-opset17.onnx  same at opset 17 (LayerNormalization op)
  gpt2-optimum.onnx  Optimum-style: + position_ids, past_key_values.{i}.key/value in; present.{i}.* out
  gpt2-fp16.onnx     gpt2-opset14 converted to float16 with the onnx package (IO logits float16)
  gptj-optimum.onnx  a GPT-J (seed 2468, scripts/dissect_models/gptj.py; 2 layers, d_model 32, 4 heads,
                     rotary_dim 4, vocab 64) exported Optimum-style like gpt2-optimum, anonymised
  fixtures.json      configs + reference logits for 3 token sequences (+ gptj-optimum after a past)
"""
import json
import os
import sys

import numpy as np
import onnx
import torch
from onnx import numpy_helper, TensorProto

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dissect_models.gpt2 import GPT2Config, GPT2LMHeadModel  # noqa: E402
from dissect_models.gptj import GPTJConfig, GPTJForCausalLM  # noqa: E402
from dissect_models.onnx_export import anonymise, export_optimum, export_plain, run_optimum, sha256  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "generated", "fixtures")
SEED = 1234
GPTJ_SEED = 2468
# the reference with a non-empty past: SEQS[1] split after this many positions
WITH_PAST = 3

SEQS = [
    {"input_ids": [5, 17, 42, 3, 60], "attention_mask": [1, 1, 1, 1, 1]},
    {"input_ids": [0, 9, 9, 33, 12, 1, 63], "attention_mask": [1, 1, 1, 1, 1, 1, 1]},
    {"input_ids": [7, 28, 51, 2, 19, 0, 0], "attention_mask": [1, 1, 1, 1, 1, 0, 0]},
]


def sig7(x):
    return float(f"{float(x):.7g}")


ARCHS = {
    "gpt2": (GPT2LMHeadModel, GPT2Config(vocab_size=64, n_positions=32, n_embd=32, n_layer=2, n_head=4,
                                         initializer_range=0.02), SEED),
    # rotary on half of each 8-wide head, so a partial rotary is exercised as in GPT-J 6B (64 of 256)
    "gptj": (GPTJForCausalLM, GPTJConfig(vocab_size=64, n_positions=32, n_embd=32, n_layer=2, n_head=4,
                                         rotary_dim=4), GPTJ_SEED),
}


def build_model(arch="gpt2"):
    model_class, cfg, seed = ARCHS[arch]
    torch.manual_seed(seed)
    m = model_class(cfg)
    # Make every parameter non-trivial (random LN gains/biases, Conv1D biases, larger weights) so
    # that the reference logits discriminate between correct and subtly wrong implementations.
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif name == "transformer.wte.weight":
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif name == "transformer.wpe.weight":
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.25 * torch.randn(p.shape, generator=g))
    m.eval()
    return m


FP16_MAX = 65504.0


def _to_fp16_tensor(t):
    arr = numpy_helper.to_array(t).astype(np.float32)
    arr = np.clip(arr, -FP16_MAX, FP16_MAX).astype(np.float16)
    nt = numpy_helper.from_array(arr, t.name)
    return nt


def convert_fp16(src, dst):
    """Float32 -> float16 everywhere: initializers, Constant / ConstantOfShape values, Cast targets,
    graph input/output types. Values are clamped to the fp16 range (finfo(float32).min -> -65504)."""
    m = onnx.load(src)
    g = m.graph
    for i, t in enumerate(g.initializer):
        if t.data_type == TensorProto.FLOAT:
            g.initializer[i].CopyFrom(_to_fp16_tensor(t))
    for node in g.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT:
                a.t.CopyFrom(_to_fp16_tensor(a.t))
            if node.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                a.i = TensorProto.FLOAT16
            if a.type == onnx.AttributeProto.GRAPH:
                raise RuntimeError("subgraphs not handled")
    for vi in list(g.input) + list(g.output):
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            vi.type.tensor_type.elem_type = TensorProto.FLOAT16
    del g.value_info[:]
    onnx.checker.check_model(m)
    onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
    onnx.save(m, dst)


def d_head(cfg):
    return cfg.n_embd // cfg.n_head


def ref_logits(model, seq, optimum=False, past_from=0):
    cfg = model.config
    if optimum:
        logits = run_optimum(model, seq["input_ids"], seq["attention_mask"], cfg.n_layer, cfg.n_head, d_head(cfg),
                             past_from)
    else:
        with torch.no_grad():
            logits = model(torch.tensor([seq["input_ids"]]), torch.tensor([seq["attention_mask"]]))[0]
    return [[sig7(v) for v in row] for row in logits.tolist()]


def config_of(cfg, **extra):
    return {"layers": cfg.n_layer, "heads": cfg.n_head, "d_model": cfg.n_embd, "vocab": cfg.vocab_size,
            "n_positions": cfg.n_positions, "d_head": d_head(cfg), **extra}



def main():
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    model = build_model()
    cfg = model.config
    p14 = os.path.join(OUT, "gpt2-opset14.onnx")
    export_plain(model, p14, SEQS[1]["input_ids"], 14)
    export_plain(model, os.path.join(OUT, "gpt2-opset17.onnx"), SEQS[1]["input_ids"], 17)
    export_optimum(model, os.path.join(OUT, "gpt2-optimum.onnx"), SEQS[1]["input_ids"], cfg.n_layer, cfg.n_head,
                   d_head(cfg))
    convert_fp16(p14, os.path.join(OUT, "gpt2-fp16.onnx"))
    gptj = build_model("gptj")
    gcfg = gptj.config
    export_optimum(gptj, os.path.join(OUT, "gptj-optimum.onnx"), SEQS[1]["input_ids"], gcfg.n_layer, gcfg.n_head,
                   d_head(gcfg))
    # names would take a third of the file
    anonymise(os.path.join(OUT, "gptj-optimum.onnx"))
    for f in ("gpt2-opset14.onnx", "gpt2-opset17.onnx", "gpt2-optimum.onnx", "gptj-optimum.onnx"):
        onnx.checker.check_model(onnx.load(os.path.join(OUT, f)))

    # fp16 reference: the fp16-rounded weights, run in float32 in PyTorch (CPU torch 1.13 lacks
    # fp16 matmul), so compare with a loose tolerance (fp16 activations).
    m16 = build_model()
    with torch.no_grad():
        for p in m16.parameters():
            p.copy_(p.half().float())

    config = config_of(cfg, tied_embeddings=True)
    optimum_inputs = {"past_inputs": "past_key_values.{i}.key/.value float32 [batch, heads, 0, d_head] (empty)",
                      "position_ids": "arange(seq) for every sequence"}
    sequences = [dict(s) for s in SEQS]
    fixtures = {}
    for name, opset, mdl, optimum, extra in [
        ("gpt2-opset14.onnx", 14, model, False, {"config": config}),
        ("gpt2-opset17.onnx", 17, model, False, {"config": config}),
        ("gpt2-optimum.onnx", 14, model, True, {"config": config, **optimum_inputs}),
        ("gpt2-fp16.onnx", 14, m16, False,
         {"config": config,
          "note": "reference computed in float32 with the fp16-rounded weights; ONNX graph runs in "
                  "float16, so compare with a loose tolerance (e.g. abs 0.05 + rel 0.01) and argmax",
          "dtype": "float16"}),
        ("gptj-optimum.onnx", 14, gptj, True,
         {"config": config_of(gcfg, rotary_dim=gcfg.rotary_dim, tied_embeddings=False), "seed": GPTJ_SEED,
          "architecture": "GPT-J (HF GPTJForCausalLM maths, scripts/dissect_models/gptj.py): parallel blocks, "
                          "rotary (interleaved) on the first rotary_dim of each head, MLP 4 d_model, untied "
                          "LM head with bias",
          **optimum_inputs,
          "with_past": {"sequence": 1, "past_length": WITH_PAST,
                        "how": f"positions 0..{WITH_PAST - 1} run first, their present.* fed as the past of "
                               "the rest (attention_mask over all 7, position_ids 3..6)",
                        "logits": ref_logits(gptj, SEQS[1], True, WITH_PAST)}}),
    ]:
        path = os.path.join(OUT, name)
        fixtures[name] = {
            "config": extra.pop("config"), "opset": opset, "sha256": sha256(path), **extra,
            "sequences": [{"input_ids": s["input_ids"], "attention_mask": s["attention_mask"],
                           "logits": ref_logits(mdl, s, optimum)} for s in sequences],
        }
    doc = {
        "description": "Random-weight GPT-2 fixtures (HF GPT2LMHeadModel maths) and an Optimum-style GPT-J. "
                       "Reference logits "
                       "[seq][vocab] from the PyTorch module, 7 significant digits, one sequence per "
                       "forward pass (batch 1). Padded positions (attention_mask 0) still have logits.",
        "seed": SEED,
        "regenerate": "/usr/bin/python3 scripts/make_fixtures.py",
        "fixtures": fixtures,
    }
    with open(os.path.join(OUT, "fixtures.json"), "w") as f:
        json.dump(doc, f, indent=1)
    # sanity: batched padded == unpadded on real positions
    with torch.no_grad():
        a = model(torch.tensor([SEQS[2]["input_ids"][:5]]), torch.ones(1, 5, dtype=torch.long))
        b = model(torch.tensor([SEQS[2]["input_ids"]]), torch.tensor([SEQS[2]["attention_mask"]]))
        assert torch.allclose(a[0], b[0, :5], atol=1e-5)
    print("ok", {k: v["sha256"][:12] for k, v in fixtures.items()})


if __name__ == "__main__":
    main()
