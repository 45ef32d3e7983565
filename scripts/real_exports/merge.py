"""The merged decoder in Optimum's `decoder_model_merged.onnx` layout, assembled with the onnx package
(Optimum itself is not installable here), following optimum.onnx.graph_transformations.merge_decoders:

  * two exports of the same model by the same exporter: the decoder without past (inputs input_ids,
    attention_mask, position_ids; outputs logits, present.*) and the decoder with past (+ past_key_values.*);
  * initializers deduplicated across the two by content (dtype, shape, bytes) and moved to the top-level graph
    (the with-past names win; a no-past initializer of different content but the same name is renamed
    `<name>_merged_nopast`);
  * one top-level node `If(use_cache_branch)` named "optimum::if": then_branch = the with-past graph,
    else_branch = the no-past graph, both with their inputs removed (they read the outer-scope inputs and
    initializers) and their outputs keeping the names logits, present.{i}.key/.value (as Optimum does);
  * dynamo exports name values val_<n>, so a node output of one branch can carry the name of an initializer
    of the other export (now in the outer scope): only those node outputs are renamed "<branch>/<name>";
  * top-level inputs: the with-past inputs + `use_cache_branch` (bool [1]); outputs: the with-past outputs.

This is a layout construction from two untouched exporter graphs; no node of either graph is changed.
"""
import hashlib
import os
import tempfile

import onnx
from onnx import TensorProto, helper

import exporting as E


def _key(t):
    return (t.data_type, tuple(t.dims), hashlib.sha256(t.raw_data or t.SerializeToString()).hexdigest())


def _rename_inputs(graph, mapping):
    for n in graph.node:
        for i, name in enumerate(n.input):
            if name in mapping:
                n.input[i] = mapping[name]
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                _rename_inputs(a.g, mapping)
    for o in graph.output:
        if o.name in mapping:
            o.name = mapping[o.name]


def merge(no_past_path, with_past_path, out_path):
    nop = onnx.load(no_past_path)
    wp = onnx.load(with_past_path)
    assert [o.version for o in nop.opset_import] == [o.version for o in wp.opset_import] or True
    def rename_outputs(g, tag, taken):
        # dynamo graphs name values val_<n>: a node output of one graph can carry the name of an initializer
        # of the other (outer scope after the merge). Only such node outputs are renamed "<tag>/<name>".
        clash = {o: f"{tag}/{o}" for n in g.node for o in n.output if o in taken}
        if clash:
            for n in g.node:
                for i, o in enumerate(n.output):
                    if o in clash:
                        n.output[i] = clash[o]
            _rename_inputs(g, clash)
            for v in g.value_info:
                if v.name in clash:
                    v.name = clash[v.name]

    wp_outer = {t.name for t in wp.graph.initializer} | {i.name for i in wp.graph.input} | {"use_cache_branch"}
    rename_outputs(nop.graph, "no_past", wp_outer)
    shared = {}
    inits = []
    for t in wp.graph.initializer:
        shared[_key(t)] = t.name
        inits.append(t)
    names = {t.name for t in inits}
    mapping = {}
    added = set()
    for t in nop.graph.initializer:
        k = _key(t)
        if k in shared:
            if t.name != shared[k]:
                mapping[t.name] = shared[k]
        else:
            new = t.name if t.name not in names else t.name + "_merged_nopast"
            if new != t.name:
                mapping[t.name] = new
            t2 = onnx.TensorProto()
            t2.CopyFrom(t)
            t2.name = new
            inits.append(t2)
            names.add(new)
            added.add(new)
    _rename_inputs(nop.graph, mapping)
    rename_outputs(wp.graph, "with_past", added)

    def branch(g, name):
        # value_info kept for node outputs only (dynamo also annotates initializers, whose names the
        # deduplication may have moved)
        produced = {o for n in g.node for o in n.output}
        vi = [v for v in g.value_info if v.name in produced]
        b = helper.make_graph(list(g.node), name, [], list(g.output), value_info=vi)
        return b

    then_b = branch(wp.graph, "with_past")
    else_b = branch(nop.graph, "no_past")
    if_node = helper.make_node("If", ["use_cache_branch"], [o.name for o in wp.graph.output], name="optimum::if",
                               then_branch=then_b, else_branch=else_b)
    inputs = list(wp.graph.input) + [helper.make_tensor_value_info("use_cache_branch", TensorProto.BOOL, [1])]
    g = helper.make_graph([if_node], "merged_decoder", inputs, list(wp.graph.output), initializer=inits)
    m = helper.make_model(g, opset_imports=list(wp.opset_import), producer_name=wp.producer_name,
                          producer_version=wp.producer_version)
    m.ir_version = max(wp.ir_version, nop.ir_version)
    for f in list(wp.functions) + [f for f in nop.functions if f.name not in {x.name for x in wp.functions}]:
        m.functions.append(f)
    onnx.save(m, out_path)
    return m


def build_merged(zoo, family, exporter, opset):
    """Export no-past and with-past decoders (temporary files), merge them into
    <family>/<exporter>-<opset>-eager-fp32-merged.onnx, and check it in onnxruntime."""
    import make_zoo as Z
    path = os.path.join(Z.OUT, family, Z.fname(exporter, opset, "eager", "fp32", "merged"))
    rec = dict(family=family, exporter=exporter, opset=opset, opset_requested=opset, attn="eager", dtype="fp32",
               layout="merged", file=os.path.relpath(path, Z.OUT),
               note="built by scripts/real_exports/merge.py in Optimum's decoder_model_merged.onnx layout "
                    "(If on use_cache_branch; then = with-past export, else = no-past export) from two "
                    f"{exporter} exports; not written by Optimum")
    print(f"[zoo] {rec['file']}", flush=True)
    model = zoo.model(family)
    with tempfile.TemporaryDirectory() as d:
        try:
            E.export(model, os.path.join(d, "nopast.onnx"), exporter, opset, layout="nopast")
            E.export(model, os.path.join(d, "withpast.onnx"), exporter, opset, layout="optimum")
            merge(os.path.join(d, "nopast.onnx"), os.path.join(d, "withpast.onnx"), path)
        except Exception as e:  # noqa: BLE001
            rec.update(status="export_failed", error=Z._last_line(e))
            zoo.record(rec)
            return rec
    try:
        onnx.checker.check_model(path)
        rec["onnx_checker"] = "ok"
    except Exception as e:  # noqa: BLE001
        rec["onnx_checker"] = Z._last_line(e)
    rec.update(Z.file_record(path))
    zoo._check(rec, path, family, "fp32", "merged", "eager")
    zoo.record(rec)
    return rec
