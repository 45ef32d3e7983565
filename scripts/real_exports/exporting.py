"""Export wrappers and the two torch exporters (TorchScript `dynamo=False`, dynamo `dynamo=True`).

Every wrapper calls transformers' own model; nothing is re-implemented.
(The wrappers are subclasses of the model's own class, swapped in for the export, see `wrapped`.)
  LogitsOnly(input_ids, attention_mask) -> logits                         (use_cache=False)
  WithPast(input_ids, attention_mask, position_ids, past_key_values.{i}.key/.value ...)
      -> logits, present.{i}.key/.value   (Optimum's text-generation-with-past layout; a transformers
         DynamicCache is built from the flat past tensors, use_cache=True)
  NoPast(input_ids, attention_mask, position_ids) -> logits, present.*  (Optimum's decoder_model.onnx
         layout: no past inputs, presents out; used for the merged decoder)
"""
import contextlib
import os

import torch
from transformers import DynamicCache


def _logits_only(self, input_ids, attention_mask):
    return super(type(self), self).forward(input_ids=input_ids, attention_mask=attention_mask,
                                           use_cache=False).logits


def _presents(cache):
    out = []
    for layer in cache.layers:
        out += [layer.keys, layer.values]
    return out


def _with_past(self, input_ids, attention_mask, position_ids, *past):
    n = self.config.num_hidden_layers
    cache = DynamicCache(ddp_cache_data=[(past[2 * i], past[2 * i + 1]) for i in range(n)], config=self.config)
    out = super(type(self), self).forward(input_ids=input_ids, attention_mask=attention_mask,
                                          position_ids=position_ids, past_key_values=cache, use_cache=True)
    return (out.logits, *_presents(out.past_key_values))


def _no_past(self, input_ids, attention_mask, position_ids):
    out = super(type(self), self).forward(input_ids=input_ids, attention_mask=attention_mask,
                                          position_ids=position_ids, use_cache=True)
    return (out.logits, *_presents(out.past_key_values))


_FORWARDS = {"plain": ("LogitsOnly", _logits_only), "optimum": ("WithPast", _with_past),
             "nopast": ("NoPast", _no_past)}


@contextlib.contextmanager
def wrapped(model, layout):
    """The wrapper is a subclass of the model's own class whose forward calls the original forward and
    returns logits (+ presents): the module tree, and so every parameter / node name, stays exactly the
    transformers one (no extra "model." prefix). The model's class is swapped for the export only."""
    cls = type(model)
    label, fwd = _FORWARDS[layout]
    sub = type(f"{label}_{cls.__name__}", (cls,), {"forward": fwd, "__module__": __name__})
    model.__class__ = sub
    try:
        yield model
    finally:
        model.__class__ = cls


def kv_dims(model):
    cfg = model.config
    kv = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return kv, hd


def past_names(n_layers):
    ins, outs = [], []
    for i in range(n_layers):
        ins += [f"past_key_values.{i}.key", f"past_key_values.{i}.value"]
        outs += [f"present.{i}.key", f"present.{i}.value"]
    return ins, outs


def example_plain():
    # batch 2 (a size-1 batch would be specialised by torch.export), seq 6, second row right-padded so no
    # "mask is all ones" shortcut can be baked into a trace
    ids = torch.tensor([[5, 17, 42, 99, 100, 7], [3, 41, 59, 26, 53, 0]], dtype=torch.long)
    am = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0]], dtype=torch.long)
    return ids, am


def example_past(model, past_len=2, seq=3, with_past=True):
    kv, hd = kv_dims(model)
    b = 2
    total = past_len + seq if with_past else seq
    ids = torch.tensor([[11, 22, 33], [44, 55, 66]], dtype=torch.long)[:, :seq]
    am = torch.ones(b, total, dtype=torch.long)
    pos = torch.arange(total - seq, total, dtype=torch.long)[None].expand(b, seq).contiguous()
    past = []
    if with_past:
        g = torch.Generator().manual_seed(7)
        dt = next(model.parameters()).dtype
        for _ in range(model.config.num_hidden_layers):
            past += [torch.randn(b, kv, past_len, hd, generator=g).to(dt),
                     torch.randn(b, kv, past_len, hd, generator=g).to(dt)]
    return (ids, am, pos, *past)


def export(model, path, exporter, opset, layout="plain", external=False):
    """Export `model` (a transformers *ForCausalLM in eval mode) to `path`. Returns (input names, output names)."""
    n = model.config.num_hidden_layers
    pin, pout = past_names(n)
    if layout == "plain":
        args = example_plain()
        in_names, out_names = ["input_ids", "attention_mask"], ["logits"]
    elif layout == "optimum":
        args = example_past(model)
        in_names, out_names = ["input_ids", "attention_mask", "position_ids"] + pin, ["logits"] + pout
    elif layout == "nopast":
        args = example_past(model, with_past=False)
        in_names, out_names = ["input_ids", "attention_mask", "position_ids"], ["logits"] + pout
    else:
        raise KeyError(layout)
    model.eval()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with torch.no_grad(), wrapped(model, layout) as mod:
        if exporter == "ts":
            axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "total_seq"},
                    "logits": {0: "batch", 1: "seq"}}
            if layout != "plain":
                axes["position_ids"] = {0: "batch", 1: "seq"}
                types = getattr(model.config, "layer_types", None) or ["full_attention"] * n
                for i, nm in enumerate(pin):
                    sliding = types[i // 2] == "sliding_attention"
                    axes[nm] = {0: "batch", 2: "past_sliding_seq" if sliding else "past_seq"}
                for i, nm in enumerate(pout):
                    # a sliding-window layer's cache keeps at most sliding_window - 1 entries (DynamicSlidingWindowLayer)
                    sliding = types[i // 2] == "sliding_attention"
                    axes[nm] = {0: "batch", 2: "present_sliding_seq" if sliding else "total_seq"}
            if layout == "plain":
                axes["attention_mask"] = {0: "batch", 1: "seq"}
            torch.onnx.export(mod, args, path, input_names=in_names, output_names=out_names,
                              dynamic_axes=axes, opset_version=opset, dynamo=False, do_constant_folding=True)
        elif exporter == "dynamo":
            B = torch.export.Dim("batch", min=1, max=64)
            S = torch.export.Dim("seq", min=1, max=64)
            if layout == "plain":
                ds = ({0: B, 1: S}, {0: B, 1: S})
            else:
                T = torch.export.Dim("total_seq", min=1, max=128)
                ds = [{0: B, 1: S}, {0: B, 1: T}, {0: B, 1: S}]
                if layout == "optimum":
                    P = torch.export.Dim("past_seq", min=1, max=64)
                    ds.append(tuple({0: B, 2: P} for _ in range(2 * n)))   # the *past varargs
                ds = tuple(ds)
            kw = {} if opset is None else {"opset_version": opset}
            prog = torch.onnx.export(mod, args, None, input_names=in_names, output_names=out_names,
                                     dynamic_shapes=ds, dynamo=True, verbose=False, **kw)
            prog.save(path, external_data=external)
        else:
            raise KeyError(exporter)
    return in_names, out_names
