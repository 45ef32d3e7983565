"""ONNX export helpers of the fixture scripts: anonymisation, and Optimum-style exports (as
`optimum-cli export onnx --task text-generation-with-past` writes them) and plain exports of the
plain-PyTorch causal LMs.

Regenerate with: (library module) used by /usr/bin/python3 scripts/make_fixtures.py and
scripts/make_llama_fixture.py

Optimum graph signature: in input_ids [batch, seq], attention_mask [batch, past_seq+seq], position_ids
[batch, seq], past_key_values.{i}.key / .value [batch, kv_heads, past_seq, d_head]; out logits,
present.{i}.key / .value [batch, kv_heads, past_seq+seq, d_head]. The model's forward must take
(input_ids, attention_mask, position_ids, past_key_values) and return (logits, presents).
"""
import hashlib

import onnx
import torch
import torch.nn as nn


def sha256(path):
    """The hex SHA-256 of a file (recorded beside each fixture and model)."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def anonymise(path):
    """Strips node names and renames every tensor but the graph inputs and outputs (t0, t1, ...):
    detection must not need names, and the file gets smaller."""
    m = onnx.load(path)
    g = m.graph
    keep = {v.name for v in list(g.input) + list(g.output)}
    names = {}

    def ren(x):
        if not x or x in keep:
            return x
        if x not in names:
            names[x] = f"t{len(names)}"
        return names[x]

    for t in g.initializer:
        t.name = ren(t.name)
    for n in g.node:
        n.name = ""
        n.input[:] = [ren(x) for x in n.input]
        n.output[:] = [ren(x) for x in n.output]
    del g.value_info[:]
    onnx.checker.check_model(m)
    onnx.save(m, path)


# traced with a non-empty past so that the exporter keeps the Concat (and the shapes derived
# from the past length) general; fed empty or not at run time
TRACE_PAST = 2


class OptimumWrapper(nn.Module):
    """input_ids, attention_mask, position_ids, then the flattened past_key_values.{i}.key/value;
    outputs logits and the flattened present.{i}.key/value."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, position_ids, *past):
        pkv = [(past[2 * i], past[2 * i + 1]) for i in range(len(past) // 2)]
        logits, presents = self.model(input_ids, attention_mask, position_ids, pkv)
        out = [logits]
        for k, v in presents:
            out += [k, v]
        return tuple(out)


def export_plain(model, path, input_ids, opset):
    """torch.onnx.export of a plain causal LM: input_ids and attention_mask in, logits out, batch
    and sequence dynamic (the way the fixtures without a cache are written)."""
    ids = torch.tensor([input_ids], dtype=torch.long)
    torch.onnx.export(
        model, (ids, torch.ones_like(ids)), path, opset_version=opset,
        input_names=["input_ids", "attention_mask"], output_names=["logits"],
        dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                      "logits": {0: "batch", 1: "seq"}},
        do_constant_folding=True)


def empty_past(layers, kv_heads, d_head, length=0):
    """(key, value) zeros per layer [1, kv_heads, length, d_head]: length 0 is no cache."""
    return [(torch.zeros(1, kv_heads, length, d_head), torch.zeros(1, kv_heads, length, d_head)) for _ in range(layers)]


def export_optimum(model, path, input_ids, layers, kv_heads, d_head, opset=14):
    ids = torch.tensor([input_ids], dtype=torch.long)
    am_full = torch.ones(1, TRACE_PAST + ids.size(1), dtype=torch.long)
    pos = torch.arange(ids.size(1)).unsqueeze(0) + TRACE_PAST
    names_in = ["input_ids", "attention_mask", "position_ids"]
    names_out = ["logits"]
    dyn = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "past_seq+seq"},
           "position_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}}
    for i in range(layers):
        for kv in ("key", "value"):
            n = f"past_key_values.{i}.{kv}"
            names_in.append(n)
            dyn[n] = {0: "batch", 2: "past_seq"}
            o = f"present.{i}.{kv}"
            names_out.append(o)
            dyn[o] = {0: "batch", 2: "past_seq+seq"}
    past = [t for kv in empty_past(layers, kv_heads, d_head, TRACE_PAST) for t in kv]
    w = OptimumWrapper(model).eval()
    torch.onnx.export(w, (ids, am_full, pos, *past), path, opset_version=opset,
                      input_names=names_in, output_names=names_out, dynamic_axes=dyn,
                      do_constant_folding=True)


def run_optimum(model, input_ids, attention_mask, layers, kv_heads, d_head, past_from=0):
    """Logits [seq - past_from, vocab] of positions past_from.., position_ids arange(seq): positions
    0..past_from-1 run first and their presents are the past (past_from 0: an empty past)."""
    ids = torch.tensor([input_ids], dtype=torch.long)
    am = torch.tensor([attention_mask], dtype=torch.long)
    pos = torch.arange(ids.size(1)).unsqueeze(0)
    past = empty_past(layers, kv_heads, d_head)
    with torch.no_grad():
        if past_from:
            _, past = model(ids[:, :past_from], am[:, :past_from], pos[:, :past_from], past)
        logits, _ = model(ids[:, past_from:], am, pos[:, past_from:], past)
    return logits[0]
