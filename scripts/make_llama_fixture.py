"""Write a tiny random-weight Llama-style ONNX fixture and its PyTorch reference numbers.

Regenerate with: /usr/bin/python3 scripts/make_llama_fixture.py   (from the repo root; writes
generated/fixtures/llama-opset14.onnx, llama-opset17.onnx, llama-optimum.onnx, llama.json).
llama-opset17.onnx is anonymised after export: no node names, every tensor but the inputs and logits
renamed t0, t1, ... llama-optimum.onnx is the Optimum-style export (text-generation-with-past: past
key/value inputs of the 2 key/value heads, after rotary and before the repeat; present.* outputs),
anonymised too.

The model is written here in plain PyTorch with the maths and module names of Hugging Face's
LlamaForCausalLM (transformers 4.36, eager attention):
  model.embed_tokens, model.layers[i].input_layernorm (RMSNorm), .self_attn.q_proj/k_proj/v_proj/o_proj
  (no bias; grouped-query attention: 4 query heads, 2 key/value heads, head dim 8), rotary on the full
  head dim (rotate_half, base 10000), .post_attention_layernorm (RMSNorm), .mlp.gate_proj/up_proj/
  down_proj (no bias; down(silu(gate(x)) * up(x))), model.norm (RMSNorm), lm_head (untied, no bias).
RMSNorm: x * rsqrt(mean(x^2, -1) + 1e-6) * w.
Attention: s = Q K^T / sqrt(d_head) + mask4d, mask4d = finfo.min above the diagonal and on padded
keys (HF AttentionMaskConverter: masked_fill, no sum of two finfo.min) ; p = softmax(s, float32).
Knockout reference: a forward pre-hook on model.layers[l].self_attn.attn_softmax (the module whose
input is the pre-softmax scores) replaces the blocked entries by finfo.min.
"""
import json
import math
import os
import re
import sys
from dataclasses import dataclass, asdict

import onnx
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dissect_models.onnx_export import anonymise, export_optimum, export_plain, run_optimum, sha256  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "generated", "fixtures")
SEED = 4321

SEQS = [
    {"input_ids": [5, 17, 42, 3, 60], "attention_mask": [1, 1, 1, 1, 1]},
    {"input_ids": [0, 9, 9, 33, 12, 1, 63], "attention_mask": [1, 1, 1, 1, 1, 1, 1]},
    {"input_ids": [7, 28, 51, 2, 19, 0, 0], "attention_mask": [1, 1, 1, 1, 1, 0, 0]},
]
KNOCKOUT_LAYER = 1
OPTIMUM = "llama-optimum.onnx"
# the reference with a non-empty past: SEQS[1] split after this many positions
WITH_PAST = 3
KNOCKOUT_KEYS = [0, 1]


@dataclass
class LlamaConfig:
    vocab_size: int = 64
    hidden_size: int = 32
    intermediate_size: int = 48
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 32
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = False


class LlamaRMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.variance_epsilon = eps

    def forward(self, x):
        variance = x.pow(2).mean(-1, keepdim=True)
        x = x * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * x


class LlamaRotaryEmbedding(nn.Module):
    def __init__(self, dim, max_pos, base):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))
        t = torch.arange(max_pos, dtype=torch.float32)
        freqs = torch.outer(t, inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("cos_cached", emb.cos(), persistent=False)
        self.register_buffer("sin_cached", emb.sin(), persistent=False)

    def forward(self, seq_len):
        return self.cos_cached[:seq_len], self.sin_cached[:seq_len]


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin, position_ids):
    cos = cos[position_ids].unsqueeze(1)
    sin = sin[position_ids].unsqueeze(1)
    return (q * cos) + (rotate_half(q) * sin), (k * cos) + (rotate_half(k) * sin)


def repeat_kv(x, n_rep):
    b, kvh, s, dh = x.shape
    if n_rep == 1:
        return x
    x = x[:, :, None, :, :].expand(b, kvh, n_rep, s, dh)
    return x.reshape(b, kvh * n_rep, s, dh)


class ScoresSoftmax(nn.Module):
    """softmax over keys in float32; its input is the pre-softmax scores (hook point)."""

    def forward(self, s):
        return nn.functional.softmax(s, dim=-1, dtype=torch.float32)


class LlamaAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.num_heads = cfg.num_attention_heads
        self.head_dim = cfg.hidden_size // cfg.num_attention_heads
        self.num_key_value_heads = cfg.num_key_value_heads
        self.num_key_value_groups = self.num_heads // self.num_key_value_heads
        d = cfg.hidden_size
        self.q_proj = nn.Linear(d, self.num_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(d, self.num_key_value_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d, self.num_key_value_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, d, bias=False)
        self.rotary_emb = LlamaRotaryEmbedding(self.head_dim, cfg.max_position_embeddings, cfg.rope_theta)
        self.attn_softmax = ScoresSoftmax()

    def forward(self, x, mask4d, position_ids, layer_past=None):
        b, s, _ = x.size()
        q = self.q_proj(x).view(b, s, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, s, self.num_key_value_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, s, self.num_key_value_heads, self.head_dim).transpose(1, 2)
        cos, sin = self.rotary_emb(s if layer_past is None else s + layer_past[0].size(-2))
        q, k = apply_rotary_pos_emb(q, k, cos, sin, position_ids)
        # the cache holds the key/value heads after rotary, before the repeat to the query heads
        if layer_past is not None:
            k = torch.cat((layer_past[0], k), dim=2)
            v = torch.cat((layer_past[1], v), dim=2)
        self._present = (k, v)
        k = repeat_kv(k, self.num_key_value_groups)
        v = repeat_kv(v, self.num_key_value_groups)
        w = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.head_dim)
        w = w + mask4d
        w = self.attn_softmax(w).to(q.dtype)
        o = torch.matmul(w, v)
        o = o.transpose(1, 2).contiguous().reshape(b, s, self.num_heads * self.head_dim)
        return self.o_proj(o)


class LlamaMLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)
        self.act_fn = nn.SiLU()

    def forward(self, x):
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.self_attn = LlamaAttention(cfg)
        self.mlp = LlamaMLP(cfg)
        self.input_layernorm = LlamaRMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = LlamaRMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, x, mask4d, position_ids, layer_past=None):
        x = x + self.self_attn(self.input_layernorm(x), mask4d, position_ids, layer_past)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList([LlamaDecoderLayer(cfg) for _ in range(cfg.num_hidden_layers)])
        self.norm = LlamaRMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


def causal_mask_4d(attention_mask, dtype, past=None):
    """HF 4.36 _prepare_4d_causal_attention_mask: 0 where allowed, finfo.min elsewhere, [b, 1, q, kv];
    with a cache of `past` positions the mask covers past + q keys and every query sees the past."""
    b, s = attention_mask.shape
    mn = torch.finfo(dtype).min
    q = s if past is None else s - past
    mask = torch.full((q, q), mn)
    cond = torch.arange(q)
    mask = mask.masked_fill(cond < (cond + 1).view(q, 1), 0.0)
    if past is not None:
        mask = torch.cat([torch.zeros(q, past), mask], dim=-1)
    causal = mask[None, None, :, :].expand(b, 1, q, s)
    inverted = 1.0 - attention_mask[:, None, None, :].expand(b, 1, q, s).to(dtype)
    return causal.masked_fill(inverted.to(torch.bool), mn)


class LlamaForCausalLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.model = LlamaModel(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)

    def forward(self, input_ids, attention_mask, position_ids=None, past_key_values=None, return_hidden=False):
        """logits; with past_key_values (list of (k, v) [b, kv_heads, past, dh]; attention_mask then
        covers past + seq) (logits, presents); with return_hidden (logits, hidden states)."""
        s = input_ids.size(1)
        if position_ids is None:
            position_ids = torch.arange(0, s, dtype=torch.long).unsqueeze(0)
        x = self.model.embed_tokens(input_ids)
        past = None if past_key_values is None else past_key_values[0][0].size(-2)
        mask4d = causal_mask_4d(attention_mask, x.dtype, past)
        hidden = [x]
        presents = []
        for i, layer in enumerate(self.model.layers):
            x = layer(x, mask4d, position_ids, None if past_key_values is None else past_key_values[i])
            presents.append(layer.self_attn._present)
            hidden.append(x)
        logits = self.lm_head(self.model.norm(x)).float()
        if past_key_values is not None:
            return logits, presents
        return (logits, hidden) if return_hidden else logits


def build_model():
    torch.manual_seed(SEED)
    cfg = LlamaConfig()
    m = LlamaForCausalLM(cfg)
    g = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("layernorm.weight") or name == "model.norm.weight":
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name == "model.embed_tokens.weight":
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
    m.eval()
    return m


def export(model, path, opset):
    export_plain(model, path, SEQS[1]["input_ids"], opset)
    onnx.checker.check_model(onnx.load(path))


def run(model, seq):
    ids = torch.tensor([seq["input_ids"]], dtype=torch.long)
    am = torch.tensor([seq["attention_mask"]], dtype=torch.long)
    with torch.no_grad():
        return model(ids, am)[0]


def knockout_probs(model, seq, layer, keys):
    """Clean top-1 at the last real position, and its probability with edges last←keys blocked
    at `layer` in all heads: a forward pre-hook replaces those pre-softmax scores by finfo.min."""
    last = max(i for i, m in enumerate(seq["attention_mask"]) if m)
    clean = run(model, seq)[last]
    top1 = int(clean.argmax())
    p_clean = torch.softmax(clean.double(), -1)[top1].item()

    def pre_hook(_module, inputs):
        (s,) = inputs
        s = s.clone()
        s[:, :, last, keys] = torch.finfo(s.dtype).min
        return (s,)

    h = model.model.layers[layer].self_attn.attn_softmax.register_forward_pre_hook(pre_hook)
    try:
        knocked = run(model, seq)[last]
    finally:
        h.remove()
    p_knocked = torch.softmax(knocked.double(), -1)[top1].item()
    return {"input_ids": seq["input_ids"], "attention_mask": seq["attention_mask"], "last": last,
            "clean_top1": top1, "clean_prob": p_clean, "knocked_prob": p_knocked}



def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    model = build_model()
    cfg = model.config
    files = {}
    for opset in (14, 17):
        name = f"llama-opset{opset}.onnx"
        export(model, os.path.join(OUT, name), opset)
        if opset == 17:
            anonymise(os.path.join(OUT, name))
        files[name] = {"opset": opset, "sha256": sha256(os.path.join(OUT, name))}
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    cache = (cfg.num_hidden_layers, cfg.num_key_value_heads, head_dim)
    optimum = os.path.join(OUT, OPTIMUM)
    export_optimum(model, optimum, SEQS[1]["input_ids"], *cache)
    anonymise(optimum)
    files[OPTIMUM] = {"opset": 14, "sha256": sha256(optimum)}

    def logits_of(t):
        return [[float(v) for v in row] for row in t.tolist()]

    sequences = [{**s, "logits": logits_of(run(model, s))} for s in SEQS]
    # with an empty past the Optimum graph's maths is the plain one's: its reference is `sequences`
    for s in SEQS:
        assert torch.equal(run_optimum(model, s["input_ids"], s["attention_mask"], *cache), run(model, s))
    # sanity: the right-padded row equals the unpadded run on its real positions
    real = sum(SEQS[2]["attention_mask"])
    short = run(model, {"input_ids": SEQS[2]["input_ids"][:real], "attention_mask": [1] * real})
    assert torch.allclose(short, run(model, SEQS[2])[:real], atol=1e-5)
    knockout = {
        "layer": KNOCKOUT_LAYER, "keys": KNOCKOUT_KEYS, "heads": "all",
        "how": "forward pre-hook on model.layers[layer].self_attn.attn_softmax: pre-softmax scores "
               "[:, :, last, keys] = finfo(float32).min; probabilities of the clean top-1 at the last "
               "position, softmax in float64 over the float32 logits",
        "sequences": [knockout_probs(model, s, KNOCKOUT_LAYER, KNOCKOUT_KEYS) for s in SEQS[:2]],
    }
    for k in knockout["sequences"]:
        assert abs(k["knocked_prob"] - k["clean_prob"]) > 1e-4, "the knockout should matter"
    doc = {
        "description": "Random-weight Llama-style fixture (HF LlamaForCausalLM maths: RMSNorm, SwiGLU, "
                       "rotate_half rotary, grouped-query attention, untied lm_head without bias). "
                       "Reference logits [seq][vocab] (float32 values), one sequence per forward pass.",
        "seed": SEED,
        "regenerate": "/usr/bin/python3 scripts/make_llama_fixture.py",
        "config": {**asdict(cfg), "head_dim": cfg.hidden_size // cfg.num_attention_heads},
        "files": files,
        "sequences": sequences,
        "knockout": knockout,
        "optimum": {
            "file": OPTIMUM,
            "inputs": "input_ids, attention_mask [batch, past_seq+seq], position_ids (arange(seq)), "
                      f"past_key_values.{{i}}.key/.value float32 [batch, {cfg.num_key_value_heads} (key/value heads, "
                      f"before the repeat), past_seq, {head_dim}]",
            "outputs": "logits, present.{i}.key/.value [batch, kv_heads, past_seq+seq, head_dim]",
            "empty_past": "fed with past_seq = 0 the logits are `sequences` (equal in PyTorch, checked)",
            "with_past": {"sequence": 1, "past_length": WITH_PAST,
                          "how": f"positions 0..{WITH_PAST - 1} run first, their present.* fed as the past of "
                                 "the rest (attention_mask over all 7, position_ids 3..6)",
                          "logits": logits_of(run_optimum(model, SEQS[1]["input_ids"], SEQS[1]["attention_mask"],
                                                          *cache, past_from=WITH_PAST))},
        },
    }
    text = json.dumps(doc, indent=1)
    # one line per logits row (keeps the file small and readable)
    text = re.sub(r"\[\n\s+(-?[0-9][^\[\]]*?)\n\s+\]", lambda mt: "[" + re.sub(r"\s*\n\s*", " ", mt.group(1)) + "]", text)
    with open(os.path.join(OUT, "llama.json"), "w") as f:
        f.write(text + "\n")
    print("ok", {k: v["sha256"][:12] for k, v in files.items()},
          [(k["clean_top1"], round(k["clean_prob"], 4), round(k["knocked_prob"], 4)) for k in knockout["sequences"]])


if __name__ == "__main__":
    main()
