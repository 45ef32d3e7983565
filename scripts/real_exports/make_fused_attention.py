"""onnxruntime's fused attention ops on zoo exports: GPT-2 with com.microsoft MultiHeadAttention and with
GroupQueryAttention, Llama (GQA, 2 kv heads, rotary) with RotaryEmbedding + GroupQueryAttention.

onnxruntime's Python transformer optimizer writes none of these on the zoo (its attention fusions do not match
transformers 5's graphs; see the card), so the attention of each layer of a TorchScript export (ts-17, eager, fp32)
is replaced here by the fused ops, the rest of the graph untouched:

  * gpt2 `-mha`: MultiHeadAttention on the q, k, v that c_attn's Split writes (c_attn itself kept, so the projection
    stays GPT-2's fused one), `key_padding_mask` = the attention mask (int32), unidirectional = 1.
  * gpt2 `-gqa`: GroupQueryAttention on packed q | k | v (c_attn as one MatMul + Add), seqlens_k / total_sequence_length
    computed from attention_mask: the form onnxruntime's own `convert_generation.replace_mha_with_gqa` writes. That
    function does not apply itself: it reads RotaryEmbedding on q and k, which GPT-2 has not.
  * llama `-gqa`: replace_mha_with_gqa does not apply either (its q | k | v packing stacks the three weights, which
    needs equal widths: 32 vs 16 here; and its GroupQueryAttention would rotate inside the op (do_rotary = 1), which
    onnxruntime's CPU kernel refuses for a head size of 8: it needs a multiple of 16), so the graph is written to
    the contrib schema as onnxruntime documents it: RotaryEmbedding on q and on k (cos/sin caches from the model's
    own rotary module, position_ids = [0]: the prompt starts at position 0) and GroupQueryAttention(q, k, v, past
    none, seqlens_k, total_sequence_length) with replace_mha_with_gqa's mask subgraph (ReduceSum(attention_mask)
    - 1 and Shape(attention_mask)[1], cast to int32), num_heads 4, kv_num_heads 2.
  The error replace_mha_with_gqa raises on each is kept in the manifest (replace_mha_with_gqa_error).

Each graph is checked against the export it was built from in onnxruntime (Python, CPU): every prompt of
expected.py alone and all of them in one right-padded batch, logits within 1e-5 of the largest |logit|; then
against transformers like every zoo export (make_zoo's check), and recorded in manifest.json (layouts `mha`, `gqa`).

    /work/venv-real/bin/python scripts/real_exports/make_fused_attention.py
    /work/venv-real/bin/python scripts/real_exports/make_zoo.py --families gpt2 --stages card
"""
import os
import sys

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import make_zoo as Z  # noqa: E402
import ortopt  # noqa: E402
import verify as V  # noqa: E402
from expected import PROMPTS  # noqa: E402

SOURCE = "ts-17-eager-fp32.onnx"
MS = "com.microsoft"
FUSED_TOL = 1e-5


def graph_of(path):
    m = onnx.load(path)
    return m, {n.name: n for n in m.graph.node}


def add_init(m, name, array):
    m.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
    return name


def replace_producer(m, tensor, new_nodes):
    """The node writing `tensor` is replaced by `new_nodes` (the last of which writes it); what only the old node
    needed is removed afterwards by remove_dead."""
    nodes = [n for n in m.graph.node if tensor not in n.output]
    m.graph.ClearField("node")
    m.graph.node.extend(nodes + new_nodes)


def remove_dead(m):
    needed = {o.name for o in m.graph.output}
    kept = []
    for n in reversed(list(m.graph.node)):   # sorted: readers before writers
        if any(o in needed for o in n.output):
            kept.append(n)
            needed.update(i for i in n.input if i)
    m.graph.ClearField("node")
    m.graph.node.extend(reversed(kept))
    inits = [t for t in m.graph.initializer if t.name in needed]
    m.graph.ClearField("initializer")
    m.graph.initializer.extend(inits)
    vi = [v for v in m.graph.value_info if v.name in needed]
    m.graph.ClearField("value_info")
    m.graph.value_info.extend(vi)


def toposort(m):
    ready = {i.name for i in m.graph.input} | {t.name for t in m.graph.initializer} | {""}
    pending, order = list(m.graph.node), []
    while pending:
        rest = []
        for n in pending:
            (order.append(n), ready.update(n.output)) if all(i in ready for i in n.input) else rest.append(n)
        if len(rest) == len(pending):
            raise RuntimeError(f"cycle or missing input at {rest[0].name}")
        pending = rest
    m.graph.ClearField("node")
    m.graph.node.extend(order)


def finish(m):
    toposort(m)
    remove_dead(m)
    if not any(o.domain == MS for o in m.opset_import):
        m.opset_import.append(helper.make_opsetid(MS, 1))
    return m


def gpt2_mha(src, cfg):
    """GPT-2 with each layer's attention as MultiHeadAttention on the q, k, v that c_attn's Split writes."""
    m, by_name = graph_of(src)
    mask32 = "attention_mask_int32"
    m.graph.node.append(helper.make_node("Cast", ["attention_mask"], [mask32], name="/transformer/attention_mask/Cast_int32",
                                         to=TensorProto.INT32))
    for layer in range(cfg.num_hidden_layers):
        p = f"/transformer/h.{layer}"
        qkv = list(by_name[f"{p}/attn/Split"].output)
        context = by_name[f"{p}/attn/c_proj/Reshape"].input[0]
        replace_producer(m, context, [helper.make_node("MultiHeadAttention", qkv + ["", mask32], [context], name=f"{p}/attn/MultiHeadAttention",
                                                       domain=MS, num_heads=cfg.num_attention_heads, unidirectional=1)])
    return m


def replace_mha_with_gqa():
    """onnxruntime's convert_generation.replace_mha_with_gqa, unchanged. The module cannot be imported with
    transformers 5 (it imports TFGPT2Model, gone from transformers), so the function's own source is taken from it
    and run with the names it uses."""
    import ast
    import onnxruntime.transformers as ort_transformers
    sys.path.insert(0, os.path.dirname(ort_transformers.__file__))   # its modules import each other by bare name
    from fusion_utils import NumpyHelper
    path = os.path.join(os.path.dirname(ort_transformers.__file__), "convert_generation.py")
    tree = ast.parse(open(path).read())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "replace_mha_with_gqa")
    scope = {"onnx": onnx, "np": np, "TensorProto": TensorProto, "NumpyHelper": NumpyHelper, "OnnxModel": object}
    exec(compile(ast.Module([fn], []), path, "exec"), scope)
    return scope["replace_mha_with_gqa"]


def gqa_mask_inputs(m):
    """seqlens_k and total_sequence_length from attention_mask, as replace_mha_with_gqa writes them."""
    add_init(m, "one", np.ones(1, np.int64))
    m.graph.node.extend([
        helper.make_node("ReduceSum", ["attention_mask", "one"], ["attention_mask_row_sums"], name="ReduceSum_0"),
        helper.make_node("Sub", ["attention_mask_row_sums", "one"], ["seqlens_k_int64"], name="Sub_0"),
        helper.make_node("Cast", ["seqlens_k_int64"], ["seqlens_k"], name="Cast_0", to=TensorProto.INT32),
        helper.make_node("Shape", ["attention_mask"], ["attention_mask_shape"], name="Shape_0"),
        helper.make_node("Gather", ["attention_mask_shape", "one"], ["total_seq_len_int64"], name="Gather_0", axis=0),
        helper.make_node("Cast", ["total_seq_len_int64"], ["total_seq_len"], name="Cast_1", to=TensorProto.INT32),
    ])
    return ["seqlens_k", "total_seq_len"]


def gqa_node(name, qkv, mask_inputs, output, heads, kv_heads):
    return helper.make_node("GroupQueryAttention", qkv + ["", ""] + mask_inputs, [output], name=name, domain=MS,
                            num_heads=heads, kv_num_heads=kv_heads, do_rotary=0, local_window_size=-1)


def replace_mha_with_gqa_error(mha, kv_heads):
    """What stops onnxruntime's replace_mha_with_gqa on the MultiHeadAttention form `mha` (the error's last line)."""
    from onnxruntime.transformers.onnx_model import OnnxModel
    try:
        replace_mha_with_gqa()(OnnxModel(mha), "attention_mask", kv_num_heads=kv_heads)
    except Exception as e:  # noqa: BLE001
        return Z._last_line(e)
    raise SystemExit("replace_mha_with_gqa applies: use its graph instead of writing GroupQueryAttention here")


def gpt2_gqa(src, cfg):
    """GPT-2 with GroupQueryAttention on packed q | k | v, the form replace_mha_with_gqa writes (one MatMul on the
    concatenated weights, one Add of the concatenated biases)."""
    m, by_name = graph_of(src)
    mask_inputs = gqa_mask_inputs(m)
    heads = cfg.num_attention_heads
    for layer in range(cfg.num_hidden_layers):
        p = f"/transformer/h.{layer}"
        x = by_name[f"{p}/ln_1/LayerNormalization"].output[0]
        context = by_name[f"{p}/attn/c_proj/Reshape"].input[0]
        packed = f"{p}/attn/QKV/MatMul_output_0"
        nodes = [helper.make_node("MatMul", [x, f"transformer.h.{layer}.attn.c_attn.weight"], [packed], name=f"{p}/attn/QKV/MatMul"),
                 helper.make_node("Add", [packed, f"transformer.h.{layer}.attn.c_attn.bias"], [f"{p}/attn/QKV/Add_output_0"],
                                  name=f"{p}/attn/QKV/Add"),
                 gqa_node(f"{p}/attn/GroupQueryAttention", [f"{p}/attn/QKV/Add_output_0", "", ""], mask_inputs, context, heads, heads)]
        replace_producer(m, context, nodes)
    return m, {"replace_mha_with_gqa_error": replace_mha_with_gqa_error(gpt2_mha(src, cfg), 0)}


def llama_rotary_caches(model):
    """cos/sin [max positions, head_dim / 2] from the model's own rotary module (its first half: transformers
    concatenates the angles twice)."""
    cfg = model.config
    positions = torch.arange(cfg.max_position_embeddings)[None]
    probe = torch.zeros(1, dtype=torch.float32)
    with torch.no_grad():
        cos, sin = model.model.rotary_emb(probe, positions)
    half = cos.shape[-1] // 2
    return cos[0, :, :half].numpy(), sin[0, :, :half].numpy()


def llama_gqa(src, model):
    """Llama with RotaryEmbedding + GroupQueryAttention, written to the contrib schema (see the file comment)."""
    m, by_name = graph_of(src)
    cfg = model.config
    cos, sin = llama_rotary_caches(model)
    add_init(m, "cos_cache", cos)
    add_init(m, "sin_cache", sin)
    add_init(m, "rotary_start", np.zeros(1, np.int64))
    mask_inputs = gqa_mask_inputs(m)
    for layer in range(cfg.num_hidden_layers):
        p = f"/model/layers.{layer}/self_attn"
        q, k, v = (by_name[f"{p}/{part}_proj/MatMul"].output[0] for part in "qkv")
        context = by_name[f"{p}/o_proj/MatMul"].input[0]
        rotated = {part: f"{p}/{part}_rotary/RotaryEmbedding_output_0" for part in "qk"}
        nodes = [helper.make_node("RotaryEmbedding", [t, "rotary_start", "cos_cache", "sin_cache"], [rotated[part]],
                                  name=f"{p}/{part}_rotary/RotaryEmbedding", domain=MS, interleaved=0)
                 for part, t in (("q", q), ("k", k))]
        nodes.append(gqa_node(f"{p}/GroupQueryAttention", [rotated["q"], rotated["k"], v], mask_inputs, context,
                              cfg.num_attention_heads, cfg.num_key_value_heads))
        replace_producer(m, context, nodes)
    # the form replace_mha_with_gqa reads: MultiHeadAttention on the rotated projections
    mha = onnx.ModelProto()
    mha.CopyFrom(m)
    for n in mha.graph.node:
        if n.op_type == "GroupQueryAttention":
            n.op_type = "MultiHeadAttention"
            n.ClearField("attribute")
            n.attribute.extend([helper.make_attribute("num_heads", cfg.num_attention_heads)])
            n.input[3:] = ["", "", "", "", ""]
    return m, {"replace_mha_with_gqa_error": replace_mha_with_gqa_error(mha, cfg.num_key_value_heads)}


def fused_vs_unfused(fused_path, src):
    """Max |fused - unfused| / max |unfused| over every prompt alone and the right-padded batch of all of them."""
    a, b = V.session(src), V.session(fused_path)
    worst = 0.0
    feeds = [{"input_ids": np.array([p["input_ids"]], np.int64), "attention_mask": np.array([p["attention_mask"]], np.int64)}
             for p in PROMPTS]
    n = max(len(p["input_ids"]) for p in PROMPTS)
    batch = {"input_ids": np.zeros((len(PROMPTS), n), np.int64), "attention_mask": np.zeros((len(PROMPTS), n), np.int64)}
    for i, p in enumerate(PROMPTS):
        batch["input_ids"][i, :len(p["input_ids"])] = p["input_ids"]
        batch["attention_mask"][i, :len(p["input_ids"])] = p["attention_mask"]
    for feed in feeds + [batch]:
        want = a.run(["logits"], feed)[0]
        got = b.run(["logits"], feed)[0]
        real = feed["attention_mask"].astype(bool)   # padded positions of the batch: a padded row's logits are not compared
        worst = max(worst, float(np.abs(got - want)[real].max() / np.abs(want[real]).max()))
    return worst


def build(zoo, family, layout, make, note):
    src = os.path.join(Z.OUT, family, SOURCE)
    path = os.path.join(Z.OUT, family, SOURCE[:-len(".onnx")] + f"-{layout}.onnx")
    rec = dict(family=family, exporter="ts", opset=17, opset_requested=17, attn="eager", dtype="fp32", layout=layout,
               file=os.path.relpath(path, Z.OUT), source=os.path.relpath(src, Z.OUT), note=note)
    print(f"[zoo] {rec['file']}", flush=True)
    m, extra = make(src)
    rec.update(extra)
    onnx.save(finish(m), path)
    ops = ortopt.contrib_ops(onnx.load(path))
    rec.update(contrib_op_counts=ops, contrib_ops=list(ops))
    rec.update(Z.file_record(path))
    rec["fused_vs_unfused_max_rel_err"] = float(f"{fused_vs_unfused(path, src):.3g}")
    if rec["fused_vs_unfused_max_rel_err"] > FUSED_TOL:
        raise SystemExit(f"{rec['file']}: differs from {rec['source']} by {rec['fused_vs_unfused_max_rel_err']} (relative)")
    zoo._check(rec, path, family, "fp32", layout)
    zoo.record(rec)


def main():
    torch.set_num_threads(1)
    zoo = Z.Zoo()
    gpt2, llama = zoo.model("gpt2").config, zoo.model("llama")
    build(zoo, "gpt2", "mha", lambda src: (gpt2_mha(src, gpt2), {}),
          "each layer's attention replaced by com.microsoft MultiHeadAttention on the q, k, v of c_attn's Split "
          "(key_padding_mask = attention_mask, unidirectional = 1); built by scripts/real_exports/make_fused_attention.py")
    build(zoo, "gpt2", "gqa", lambda src: gpt2_gqa(src, gpt2),
          "com.microsoft GroupQueryAttention on packed q|k|v (one MatMul + Add), written to the contrib schema in the "
          "form replace_mha_with_gqa writes, which does not apply itself (replace_mha_with_gqa_error: it needs "
          "RotaryEmbedding on q and k); built by scripts/real_exports/make_fused_attention.py")
    build(zoo, "llama", "gqa", lambda src: llama_gqa(src, llama),
          "RotaryEmbedding on q and k + com.microsoft GroupQueryAttention (kv_num_heads 2), written to the contrib "
          "schema because replace_mha_with_gqa does not apply (replace_mha_with_gqa_error: it stacks the q, k, v "
          "weights, of unequal widths here; and the in-op rotary it writes needs a head size that is a multiple of 16 "
          "on CPU); built by scripts/real_exports/make_fused_attention.py")


if __name__ == "__main__":
    main()
