"""GPT-2 in plain PyTorch with the maths and module names of Hugging Face's GPT2LMHeadModel.

Regenerate with: (library module, nothing to run) used by /usr/bin/python3 scripts/make_fixtures.py

Module tree (same names as HF, so hook code written against HF works unchanged):
  transformer.wte, transformer.wpe, transformer.drop,
  transformer.h[i].ln_1, .attn.c_attn, .attn.c_proj, .attn.attn_dropout (probabilities pass
  through it: a forward hook on it sees them), .attn.resid_dropout, .ln_2,
  .mlp.c_fc, .mlp.act (gelu_new), .mlp.c_proj, .mlp.dropout,
  transformer.ln_f, lm_head (weight tied to wte).

Attention, as in HF transformers 4.30 `_attn`:
  scores = Q K^T / sqrt(d_head)
  scores = where(causal, scores, finfo.min)
  [knockout: scores = where(block, finfo.min, scores)   -- optional, see GPT2Attention.block]
  scores = scores + (1 - attention_mask)[:, None, None, :] * finfo.min
  probs = softmax(scores)

Intervention switches (all off by default; set them on the module objects):
  attn.block          bool tensor [q_len, k_len] (or [heads, q, k]); True entries of the
                      pre-softmax scores are REPLACED by finfo.min after the causal where.
  attn.uniform        bool; mimics the paper notebook's "opposite=True" MHSA knockout: every
                      allowed score becomes finfo.min, so probabilities are uniform over 0..i.
  mlp.zero_fc         bool; zeroes the c_fc pre-activations (MLP output == c_proj.bias).
Per-layer outputs: use forward hooks on h[i].attn (returns the MHSA update after c_proj),
h[i].mlp (the MLP update) and h[i] (the block output), or call forward(..., return_hidden=True).
"""
import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn


@dataclass
class GPT2Config:
    vocab_size: int = 64
    n_positions: int = 32
    n_embd: int = 32
    n_layer: int = 2
    n_head: int = 4
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02

    def to_dict(self):
        return asdict(self)


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class NewGELU(nn.Module):
    def forward(self, x):
        return gelu_new(x)


class Conv1D(nn.Module):
    """HF Conv1D: weight [in, out]; y = x @ W + b."""

    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.empty(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x):
        size_out = x.size()[:-1] + (self.nf,)
        x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return x.view(size_out)


class GPT2Attention(nn.Module):
    def __init__(self, cfg: GPT2Config):
        super().__init__()
        n = cfg.n_positions
        self.register_buffer("bias", torch.tril(torch.ones((n, n), dtype=torch.bool)).view(1, 1, n, n),
                             persistent=False)
        self.embed_dim = cfg.n_embd
        self.num_heads = cfg.n_head
        self.head_dim = cfg.n_embd // cfg.n_head
        self.c_attn = Conv1D(3 * cfg.n_embd, cfg.n_embd)
        self.c_proj = Conv1D(cfg.n_embd, cfg.n_embd)
        self.attn_dropout = nn.Dropout(0.0)
        self.resid_dropout = nn.Dropout(0.0)
        self.block = None
        self.uniform = False

    def _split_heads(self, t):
        new_shape = t.size()[:-1] + (self.num_heads, self.head_dim)
        return t.view(new_shape).permute(0, 2, 1, 3)

    def _merge_heads(self, t):
        t = t.permute(0, 2, 1, 3).contiguous()
        return t.view(t.size()[:-2] + (self.num_heads * self.head_dim,))

    def _attn(self, q, k, v, ext_mask):
        scores = torch.matmul(q, k.transpose(-1, -2))
        scores = scores / torch.full([], v.size(-1) ** 0.5, dtype=scores.dtype, device=scores.device)
        q_len, k_len = q.size(-2), k.size(-2)
        causal = self.bias[:, :, k_len - q_len:k_len, :k_len]
        mask_value = torch.finfo(scores.dtype).min
        mask_value_t = torch.full([], mask_value, dtype=scores.dtype, device=scores.device)
        scores = torch.where(causal, scores.to(scores.dtype), mask_value_t)
        if self.block is not None:
            scores = torch.where(self.block.to(scores.device), mask_value_t, scores)
        if self.uniform:
            # notebook's opposite=True mask: allowed entries -> finfo.min, future -> -inf
            scores = torch.where(causal, mask_value_t, torch.full([], float("-inf"), dtype=scores.dtype))
        if ext_mask is not None:
            scores = scores + ext_mask
        probs = nn.functional.softmax(scores, dim=-1)
        probs = self.attn_dropout(probs)
        return torch.matmul(probs, v), probs

    def forward(self, x, ext_mask=None, layer_past=None):
        q, k, v = self.c_attn(x).split(self.embed_dim, dim=2)
        q, k, v = self._split_heads(q), self._split_heads(k), self._split_heads(v)
        if layer_past is not None:
            pk, pv = layer_past
            k = torch.cat((pk, k), dim=-2)
            v = torch.cat((pv, v), dim=-2)
        present = (k, v)
        a, _ = self._attn(q, k, v, ext_mask)
        a = self._merge_heads(a)
        a = self.c_proj(a)
        a = self.resid_dropout(a)
        self._present = present
        return a


class GPT2MLP(nn.Module):
    def __init__(self, cfg: GPT2Config):
        super().__init__()
        inner = 4 * cfg.n_embd
        self.c_fc = Conv1D(inner, cfg.n_embd)
        self.c_proj = Conv1D(cfg.n_embd, inner)
        self.act = NewGELU()
        self.dropout = nn.Dropout(0.0)
        self.zero_fc = False

    def forward(self, x):
        h = self.c_fc(x)
        if self.zero_fc:
            h = h * 0
        h = self.act(h)
        h = self.c_proj(h)
        return self.dropout(h)


class GPT2Block(nn.Module):
    def __init__(self, cfg: GPT2Config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.attn = GPT2Attention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.mlp = GPT2MLP(cfg)

    def forward(self, x, ext_mask=None, layer_past=None):
        x = x + self.attn(self.ln_1(x), ext_mask, layer_past)
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT2Model(nn.Module):
    def __init__(self, cfg: GPT2Config):
        super().__init__()
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.n_positions, cfg.n_embd)
        self.drop = nn.Dropout(0.0)
        self.h = nn.ModuleList([GPT2Block(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)


class GPT2LMHeadModel(nn.Module):
    def __init__(self, cfg: GPT2Config):
        super().__init__()
        self.config = cfg
        self.transformer = GPT2Model(cfg)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=cfg.initializer_range / math.sqrt(2 * cfg.n_layer))
        self.lm_head.weight = self.transformer.wte.weight  # tied

    def _init(self, m):
        std = self.config.initializer_range
        if isinstance(m, (nn.Linear, Conv1D)):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=std)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None,
                return_hidden=False):
        """Returns logits [batch, seq, vocab]. With past_key_values (list of (k, v)) returns
        (logits, presents). With return_hidden=True returns (logits, hidden_states) where
        hidden_states follows HF: [embeddings, block0 out, ..., block(L-2) out, ln_f(block(L-1) out)]."""
        t = self.transformer
        seq = input_ids.size(-1)
        past_len = 0 if past_key_values is None else past_key_values[0][0].size(-2)
        if position_ids is None:
            position_ids = torch.arange(past_len, seq + past_len, dtype=torch.long,
                                        device=input_ids.device).unsqueeze(0)
        dtype = t.wte.weight.dtype
        ext = None
        if attention_mask is not None:
            ext = attention_mask[:, None, None, :].to(dtype)
            ext = (1.0 - ext) * torch.finfo(dtype).min
        x = t.wte(input_ids) + t.wpe(position_ids)
        x = t.drop(x)
        hidden = [x]
        presents = []
        for i, block in enumerate(t.h):
            lp = None if past_key_values is None else past_key_values[i]
            x = block(x, ext, lp)
            presents.append(block.attn._present)
            hidden.append(x)
        x = t.ln_f(x)
        hidden[-1] = x
        logits = self.lm_head(x)
        if past_key_values is not None:
            return logits, presents
        if return_hidden:
            return logits, hidden
        return logits

