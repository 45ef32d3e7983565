"""Write a GPT-2 fixture as onnxruntime's transformer optimizer leaves it, fused ops and all.

Users often hold graphs already optimised by onnxruntime: residual adds and biases folded into
com.microsoft SkipLayerNormalization, gelu into FastGelu, and (for exports the optimizer's GPT-2
attention pattern recognises) each attention into one com.microsoft Attention node. dissect
expands these back into standard ops before site detection; this fixture tests that.

  1. generated/fixtures/gpt2-opset14.onnx goes through onnxruntime.transformers.optimizer
     (model_type gpt2): SkipLayerNormalization and FastGelu, exactly as the tool writes them.
  2. The optimizer does not recognise our exporter's attention subgraph, so each layer's
     attention (from the qkv projection's input to the output projection's input) is replaced
     here by the node the optimizer emits for GPT-2: Attention(x, W_qkv, b_qkv, mask_index) with
     unidirectional=1 and the int32 2-D attention mask.
  3. The result must reproduce fixtures.json's PyTorch logits for gpt2-opset14 (checked here
     with onnxruntime) before it is written.

Needs the onnxruntime Python package (for the optimizer) beside Debian's onnx and numpy, e.g.
  python3 -m venv --system-site-packages /tmp/ortvenv
  /tmp/ortvenv/bin/pip install --no-deps onnxruntime==1.30.0 packaging flatbuffers
  /tmp/ortvenv/bin/python scripts/make_fused_fixture.py      (from the repo root)
Writes generated/fixtures/gpt2-ort-fused.onnx.
"""
import json
import os

import numpy as np
import onnx
from onnx import helper, TensorProto
import onnxruntime as ort
from onnxruntime.transformers import optimizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "generated", "fixtures")
SOURCE = os.path.join(FIXTURES, "gpt2-opset14.onnx")
OUT = os.path.join(FIXTURES, "gpt2-ort-fused.onnx")


def producer_of(graph, tensor):
    return next((n for n in graph.node if tensor in n.output), None)


def data_input_through_reshape(graph, node):
    """The tensor a linear layer reads, before the exporter's flattening Reshape (if any)."""
    x = node.input[0]
    p = producer_of(graph, x)
    return p.input[0] if p is not None and p.op_type == "Reshape" else x


def reader_of_weight(graph, weight):
    return next(n for n in graph.node if n.op_type in ("MatMul", "Gemm") and weight in n.input)


def remove_dead_nodes(graph):
    live = {o.name for o in graph.output}
    keep = []
    for n in reversed(graph.node):
        if any(o in live for o in n.output):
            keep.append(n)
            live.update(i for i in n.input if i)
    del graph.node[:]
    graph.node.extend(reversed(keep))
    inits = [t for t in graph.initializer if t.name in live]
    del graph.initializer[:]
    graph.initializer.extend(inits)


def fuse_attention(model, layers, heads):
    g = model.graph
    g.node.append(helper.make_node("Cast", ["attention_mask"], ["mask_index_int32"], name="MaskIndexCast", to=TensorProto.INT32))
    for layer in range(layers):
        qkv = reader_of_weight(g, f"transformer.h.{layer}.attn.c_attn.weight")
        proj = reader_of_weight(g, f"transformer.h.{layer}.attn.c_proj.weight")
        x = data_input_through_reshape(g, qkv)
        context = data_input_through_reshape(g, proj)
        fused = f"Attention_{layer}_output"
        g.node.append(helper.make_node(
            "Attention",
            [x, f"transformer.h.{layer}.attn.c_attn.weight", f"transformer.h.{layer}.attn.c_attn.bias", "mask_index_int32"],
            [fused], name=f"Attention_{layer}", domain="com.microsoft", num_heads=heads, unidirectional=1))
        for n in g.node:
            n.input[:] = [fused if i == context and n.name != f"Attention_{layer}" else i for i in n.input]
    # Topological order first (the appended nodes must precede their readers): dead-node
    # removal walks the list backwards.
    order, done, pending = [], {i.name for i in g.input} | {t.name for t in g.initializer} | {""}, list(g.node)
    while pending:
        ready = [n for n in pending if all(i in done for i in n.input)]
        assert ready, "a cycle among the rewired nodes"
        for n in ready:
            order.append(n)
            done.update(n.output)
        pending = [n for n in pending if n not in ready]
    del g.node[:]
    g.node.extend(order)
    remove_dead_nodes(g)
    del g.value_info[:]


def main():
    spec = json.load(open(os.path.join(FIXTURES, "fixtures.json")))["fixtures"]["gpt2-opset14.onnx"]
    cfg = spec["config"]
    opt = optimizer.optimize_model(SOURCE, model_type="gpt2", num_heads=cfg["heads"], hidden_size=cfg["d_model"], opt_level=0)
    model = opt.model
    fuse_attention(model, cfg["layers"], cfg["heads"])
    if not any(op.domain == "com.microsoft" for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    model.producer_name = "onnxruntime.transformers.optimizer + dissect scripts/make_fused_fixture.py"
    data = model.SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    worst = 0.0
    for seq in spec["sequences"]:
        ids = np.array([seq["input_ids"]], dtype=np.int64)
        mask = np.array([seq["attention_mask"]], dtype=np.int64)
        logits = session.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0][0]
        ref = np.array(seq["logits"], dtype=np.float64)
        keep = np.array(seq["attention_mask"], dtype=bool)  # padded positions differ by design
        worst = max(worst, float(np.abs(logits[keep] - ref[keep]).max()))
    assert worst < 1e-4, f"fused graph differs from PyTorch by {worst}"
    ops = sorted({n.op_type for n in model.graph.node if n.domain == "com.microsoft"})
    print(f"fused ops {ops}; max |logit − PyTorch| over unpadded positions {worst:.2e}")
    with open(OUT, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    main()
