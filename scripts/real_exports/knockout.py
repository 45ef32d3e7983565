"""Attention knockout through transformers' own attention code.

Semantics (the contract the TypeScript tests compare against):
  For a blocked edge (query position t, key position s) at layer l (and, optionally, only for query
  heads H), the pre-softmax attention score of that entry is set to torch.finfo(float32).min. The
  causal / padding / sliding-window mask is unchanged. Implementation: the additive attention mask
  that transformers passes to its eager attention (0 where allowed, finfo.min where masked) is
  copied, expanded over heads, and finfo.min is written at the blocked (head, t, s) entries; the
  family's own eager attention then computes scores (+ soft-capping for Gemma 2) + mask -> softmax.
  Because |score| << ulp(finfo.min) (~2e31), score + finfo.min == finfo.min exactly in float32, so
  this *is* "blocked score := finfo.min before softmax". Only edges allowed by the causal mask are
  ever blocked (so no entry becomes min + min = -inf).

  Families using transformers' AttentionInterface (all but GPT-J): the function registered as
  `AttentionInterface.register("dissect_knockout", fn)` (with transformers' `eager_mask` registered for it
  in `AttentionMaskInterface`, so the masks are exactly the eager ones) wraps the family module's own
  `eager_attention_forward`; the model is switched to it with `set_attn_implementation`.
  GPT-J does not use the interface: `GPTJAttention._attn` is patched (same mask edit).

  Extra families whose attention does not go through the interface (codegen, mpt, bloom, falcon,
  falcon_new_decoder, xglm: each computes its own scores, several with ALiBi or a boolean mask): the softmax
  input is edited instead. While the family's attention module runs (a forward pre-hook / hook pair on every
  attention module sets the layer index), `torch.nn.functional.softmax` is wrapped; its input (the complete
  pre-softmax scores of that layer: scaled, + ALiBi, + the family's own mask, [b, h, q, k] or [b*h, q, k])
  is copied and finfo.min is written at the blocked (head, t, s) entries. That is literally "blocked score :=
  finfo.min before the softmax", bit-identical to the mask edit for every family where the mask is added last;
  exactly one softmax call per attention call is asserted.
"""
import contextlib
import sys

import torch
import transformers
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, eager_mask

_STATE = {"plan": None, "calls": 0}


def _edit_mask(mask, query, key_len, layer_idx):
    plan = _STATE["plan"]
    if plan is None or layer_idx not in plan["layers"]:
        return mask
    heads = plan["layers"][layer_idx]
    b, h, q_len = query.shape[0], query.shape[1], query.shape[2]
    dt = torch.float32 if mask is None else mask.dtype
    minv = torch.finfo(dt).min
    if mask is None:
        raise RuntimeError("no attention mask reached the attention function")
    m = mask[..., :key_len].expand(b, h, q_len, key_len).clone()
    hs = range(h) if heads is None else heads
    off = key_len - q_len   # query row t (absolute position) sits at row t - off
    for t, s in plan["edges"]:
        for hh in hs:
            m[:, hh, t - off, s] = minv
    return m


def knockout_attention(module, query, key, value, attention_mask, **kwargs):
    """The family's eager attention with blocked (query, key) entries set to finfo.min pre-softmax."""
    _STATE["calls"] += 1
    eager = sys.modules[type(module).__module__].eager_attention_forward
    mask = _edit_mask(attention_mask, query, key.shape[2], module.layer_idx)
    return eager(module, query, key, value, mask, **kwargs)


AttentionInterface.register("dissect_knockout", knockout_attention)
# and the eager (additive float) mask for it, so causal / padding / sliding-window masks are the eager ones
AttentionMaskInterface.register("dissect_knockout", eager_mask)


def _gptj_attn(self, query, key, value, attention_mask=None):
    _STATE["calls"] += 1
    mask = _edit_mask(attention_mask, query, key.shape[2], self.layer_idx)
    return _ORIG_GPTJ(self, query, key, value, mask)


_ORIG_GPTJ = transformers.models.gptj.modeling_gptj.GPTJAttention._attn


# extra families whose attention computes its own scores: attention module class -> attribute with the head count
SOFTMAX_EDIT = {"codegen": ("CodeGenAttention", "num_attention_heads"), "mpt": ("MptAttention", "n_heads"),
                "bloom": ("BloomAttention", "num_heads"), "falcon": ("FalconAttention", "num_heads"),
                "falcon_new_decoder": ("FalconAttention", "num_heads"), "xglm": ("XGLMAttention", "num_heads")}
_ORIG_SOFTMAX = torch.nn.functional.softmax


def _softmax_edit(input, *args, **kwargs):  # noqa: A002 (torch's own parameter name)
    cur = _STATE.get("module")
    if cur is None:
        return _ORIG_SOFTMAX(input, *args, **kwargs)
    module, layer_idx, heads_attr = cur
    _STATE["calls"] += 1
    _STATE["softmax_in_layer"] += 1
    plan = _STATE["plan"]
    if plan is not None and layer_idx in plan["layers"]:
        h = getattr(module, heads_attr)
        q_len, k_len = input.shape[-2], input.shape[-1]
        x = input.clone()
        v = x.view(-1, h, q_len, k_len)     # [b, h, q, k] (XGLM: [b*h, q, k]), a view of the copy
        minv = torch.finfo(x.dtype).min
        off = k_len - q_len
        heads = plan["layers"][layer_idx]
        for t, s in plan["edges"]:
            for hh in (range(h) if heads is None else heads):
                v[:, hh, t - off, s] = minv
        input = x
    return _ORIG_SOFTMAX(input, *args, **kwargs)


@contextlib.contextmanager
def _softmax_knockout(model, family):
    cls_name, heads_attr = SOFTMAX_EDIT[family]
    mods = [m for m in model.modules() if type(m).__name__ == cls_name]
    hooks = []

    def pre(m, args):
        _STATE["module"] = (m, m.layer_idx, heads_attr)
        _STATE["softmax_in_layer"] = 0

    def post(m, args, out):
        _STATE["module"] = None
        if _STATE["softmax_in_layer"] != 1:
            raise RuntimeError(f"{cls_name}: {_STATE['softmax_in_layer']} softmax calls in one attention call")
    for m in mods:
        hooks += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    torch.nn.functional.softmax = _softmax_edit
    try:
        yield
    finally:
        torch.nn.functional.softmax = _ORIG_SOFTMAX
        _STATE["module"] = None
        for hk in hooks:
            hk.remove()


@contextlib.contextmanager
def knockout(model, family, plan):
    """plan: {"layers": {layer_idx: None (all heads) | [heads]}, "edges": [(t, s), ...]} (absolute positions)."""
    _STATE["plan"] = plan
    _STATE["calls"] = 0
    if family in SOFTMAX_EDIT:
        try:
            with _softmax_knockout(model, family):
                yield _STATE
        finally:
            _STATE["plan"] = None
        return
    if family == "gptj":
        transformers.models.gptj.modeling_gptj.GPTJAttention._attn = _gptj_attn
        prev = None
    else:
        prev = model.config._attn_implementation
        model.set_attn_implementation("dissect_knockout")
    try:
        yield _STATE
    finally:
        _STATE["plan"] = None
        if family == "gptj":
            transformers.models.gptj.modeling_gptj.GPTJAttention._attn = _ORIG_GPTJ
        else:
            model.set_attn_implementation(prev)
