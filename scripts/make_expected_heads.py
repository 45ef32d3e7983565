"""Expected head mappings of the tiny GPT-2 (Dar et al. 2023), computed in numpy.

Regenerate with: /usr/bin/python3 scripts/make_expected_heads.py   (from the repo root)

Independent of the TypeScript side: the weights are read by name from the committed
generated/tiny-gpt2/model.onnx (HF GPT-2 Conv1D layout, y = x @ W + b). For block l and head
h, M = E @ W_V^h @ W_O^h @ E.T with E = wte (tied, so the embedding and unembedding sides
agree), W_V^h = c_attn.weight[:, 2d + h*dh : 2d + (h+1)*dh] and W_O^h = c_proj.weight[h*dh :
(h+1)*dh, :]; no biases, no norms. The TOP largest entries of M (ties: lower row, then lower
column) are written per head.
"""
import json
import os

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "generated", "tiny-gpt2", "model.onnx")
OUT = os.path.join(ROOT, "generated", "tiny-gpt2", "expected", "heads.json")
LAYERS = (6, 7)
TOP = 10


def main():
    w = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in onnx.load(MODEL).graph.initializer}
    E = w["transformer.wte.weight"]
    d = E.shape[1]
    heads = 4
    dh = d // heads
    out = []
    for l in LAYERS:
        c_attn = w[f"transformer.h.{l}.attn.c_attn.weight"]
        c_proj = w[f"transformer.h.{l}.attn.c_proj.weight"]
        for h in range(heads):
            wv = c_attn[:, 2 * d + h * dh: 2 * d + (h + 1) * dh]
            wo = c_proj[h * dh:(h + 1) * dh, :]
            m = E @ wv @ wo @ E.T
            flat = m.ravel()
            rows, cols = np.divmod(np.arange(flat.size), m.shape[1])
            order = np.lexsort((cols, rows, -flat))[:TOP]
            out.append({"layer": l, "head": h,
                        "pairs": [[int(rows[i]), int(cols[i]), float(flat[i])] for i in order]})
    with open(OUT, "w") as f:
        json.dump({"semantics": __doc__.split("\n\n", 2)[2].strip(), "top": TOP, "layers": list(LAYERS),
                   "heads": out}, f, indent=1)


if __name__ == "__main__":
    main()
