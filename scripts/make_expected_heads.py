"""Expected head mappings of the tiny GPT-2 (Dar et al. 2023), computed in numpy.

Regenerate with: /usr/bin/python3 scripts/make_expected_heads.py   (from the repo root)

Independent of the TypeScript side: the weights are read by name from the committed
generated/tiny-gpt2/model.onnx (HF GPT-2 Conv1D layout, y = x @ W + b). For block l and head
h, M = E @ W_V^h @ W_O^h @ E.T with E = wte (tied, so the embedding and unembedding sides
agree), W_V^h = c_attn.weight[:, 2d + h*dh : 2d + (h+1)*dh] and W_O^h = c_proj.weight[h*dh :
(h+1)*dh, :]; no biases, no norms. The TOP largest entries of M (ties: lower row, then lower
column) are written per head.

heads-normalised.json: the same pairs under Dar et al.'s per-token normalisation as their
notebook writes it, M = (emb / n_in).T @ W_V^h @ W_O^h @ (emb / n_out) with emb = E.T
(d x |V|), where n_in[t] = 1e-9 + the mean of |E @ W_V^{l,h}|[t, :] and n_out[t] = 1e-9 + the
mean of |W_O^{l,h} @ E.T|[:, t], each taken over every block l and head h of the model (not
only the listed layers) and over the head's dh units.
"""
import json
import os

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "generated", "tiny-gpt2", "model.onnx")
EXPECTED = os.path.join(ROOT, "generated", "tiny-gpt2", "expected")
LAYERS = (6, 7)
TOP = 10


def top_pairs(m):
    """The TOP largest entries of m as [row, col, value], ties: lower row, then lower column."""
    flat = m.ravel()
    rows, cols = np.divmod(np.arange(flat.size), m.shape[1])
    order = np.lexsort((cols, rows, -flat))[:TOP]
    return [[int(rows[i]), int(cols[i]), float(flat[i])] for i in order]


def main():
    w = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in onnx.load(MODEL).graph.initializer}
    E = w["transformer.wte.weight"]
    d = E.shape[1]
    heads = 4
    dh = d // heads
    layers = 1 + max(int(n.split(".")[2]) for n in w if n.startswith("transformer.h."))

    def head_weights(l, h):
        wv = w[f"transformer.h.{l}.attn.c_attn.weight"][:, 2 * d + h * dh: 2 * d + (h + 1) * dh]
        wo = w[f"transformer.h.{l}.attn.c_proj.weight"][h * dh:(h + 1) * dh, :]
        return wv, wo

    every_head = [head_weights(l, h) for l in range(layers) for h in range(heads)]
    emb = E.T
    n_in = 1e-9 + np.mean([np.abs(emb.T @ wv) for wv, _ in every_head], axis=(0, 2))
    n_out = 1e-9 + np.mean([np.abs(wo @ emb) for _, wo in every_head], axis=(0, 1))
    semantics = __doc__.split("\n\n")
    for name, text, mapping in [
        ("heads.json", semantics[2], lambda wv, wo: E @ wv @ wo @ E.T),
        ("heads-normalised.json", semantics[2] + "\n\n" + semantics[3], lambda wv, wo: (emb / n_in).T @ wv @ wo @ (emb / n_out)),
    ]:
        out = [{"layer": l, "head": h, "pairs": top_pairs(mapping(*head_weights(l, h)))} for l in LAYERS for h in range(heads)]
        with open(os.path.join(EXPECTED, name), "w") as f:
            json.dump({"semantics": text.strip(), "top": TOP, "layers": list(LAYERS), "heads": out}, f, indent=1)


if __name__ == "__main__":
    main()
