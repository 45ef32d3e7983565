"""GPT-J in plain PyTorch with the maths and module names of Hugging Face's GPTJForCausalLM (4.30).

Regenerate with: (library module) used by /usr/bin/python3 scripts/make_default_model.py --arch gptj

  transformer.wte (rows may exceed the tokenizer vocab), transformer.drop,
  transformer.h[i].ln_1 (one LayerNorm feeding BOTH attention and MLP: x + attn(ln_1 x) + mlp(ln_1 x)),
  .attn.q_proj/.k_proj/.v_proj/.out_proj (no bias), rotary (GPT-J interleaved rotate_every_two) on the
  first rotary_dim dims of each head, .attn.attn_dropout (probabilities), .mlp.fc_in/.fc_out (bias),
  gelu_new, transformer.ln_f, lm_head (untied, WITH bias).
Attention order as in HF GPTJAttention._attn:
  s = Q K^T ; s = where(causal, s, finfo.min) ; s = s / sqrt(d_head)
  [knockout: s = where(block, finfo.min, s)] ; s = s + (1 - mask) * finfo.min ; softmax
Intervention switches have the same names as gpt2.py: attn.block, attn.uniform, mlp.zero_fc.
"""
import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn

from .gpt2 import NewGELU


@dataclass
class GPTJConfig:
    vocab_size: int = 64          # embedding rows (padded)
    n_positions: int = 64
    n_embd: int = 96
    n_layer: int = 6
    n_head: int = 3
    rotary_dim: int = 16
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02

    def to_dict(self):
        return asdict(self)


def create_sinusoidal_positions(num_pos, dim):
    inv_freq = 1.0 / (10000 ** (torch.arange(0, dim, 2) / dim))
    sinusoid_inp = torch.einsum("i , j -> i j", torch.arange(num_pos, dtype=torch.float), inv_freq).float()
    return torch.cat((torch.sin(sinusoid_inp), torch.cos(sinusoid_inp)), dim=1)


def rotate_every_two(x):
    x1 = x[:, :, :, ::2]
    x2 = x[:, :, :, 1::2]
    x = torch.stack((-x2, x1), dim=-1)
    return x.flatten(-2)


def apply_rotary_pos_emb(tensor, sin, cos):
    sin = torch.repeat_interleave(sin[:, :, None, :], 2, 3)
    cos = torch.repeat_interleave(cos[:, :, None, :], 2, 3)
    return (tensor * cos) + (rotate_every_two(tensor) * sin)


class GPTJAttention(nn.Module):
    def __init__(self, cfg: GPTJConfig):
        super().__init__()
        n = cfg.n_positions
        self.register_buffer("bias", torch.tril(torch.ones((n, n), dtype=torch.bool)).view(1, 1, n, n),
                             persistent=False)
        self.embed_dim = cfg.n_embd
        self.num_attention_heads = cfg.n_head
        self.head_dim = cfg.n_embd // cfg.n_head
        self.scale_attn = math.sqrt(self.head_dim)
        self.rotary_dim = cfg.rotary_dim
        self.k_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=False)
        self.v_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=False)
        self.q_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=False)
        self.out_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=False)
        self.attn_dropout = nn.Dropout(0.0)
        self.resid_dropout = nn.Dropout(0.0)
        self.register_buffer("embed_positions", create_sinusoidal_positions(n, cfg.rotary_dim), persistent=False)
        self.block = None
        self.uniform = False

    def _split_heads(self, t, rotary):
        t = t.view(t.size()[:-1] + (self.num_attention_heads, self.head_dim))
        return t if rotary else t.permute(0, 2, 1, 3)

    def _merge_heads(self, t):
        t = t.permute(0, 2, 1, 3).contiguous()
        return t.view(t.size()[:-2] + (self.num_attention_heads * self.head_dim,))

    def _attn(self, q, k, v, ext_mask):
        q_len, k_len = q.size(-2), k.size(-2)
        causal = self.bias[:, :, k_len - q_len:k_len, :k_len]
        q = q.to(torch.float32)
        k = k.to(torch.float32)
        w = torch.matmul(q, k.transpose(-1, -2))
        mask_value = torch.tensor(torch.finfo(w.dtype).min, dtype=w.dtype)
        w = torch.where(causal, w, mask_value)
        w = w / self.scale_attn
        if self.block is not None:
            w = torch.where(self.block, mask_value, w)
        if self.uniform:
            w = torch.where(causal, mask_value, torch.tensor(float("-inf"), dtype=w.dtype))
        if ext_mask is not None:
            w = w + ext_mask
        w = nn.functional.softmax(w, dim=-1)
        w = w.to(v.dtype)
        w = self.attn_dropout(w)
        return torch.matmul(w, v), w

    def forward(self, x, ext_mask, position_ids, layer_past=None):
        q = self._split_heads(self.q_proj(x), True)
        k = self._split_heads(self.k_proj(x), True)
        v = self._split_heads(self.v_proj(x), False)
        sincos = self.embed_positions[position_ids]
        sin, cos = torch.split(sincos, sincos.shape[-1] // 2, dim=-1)
        r = self.rotary_dim
        k = torch.cat([apply_rotary_pos_emb(k[:, :, :, :r], sin, cos), k[:, :, :, r:]], dim=-1)
        q = torch.cat([apply_rotary_pos_emb(q[:, :, :, :r], sin, cos), q[:, :, :, r:]], dim=-1)
        k = k.permute(0, 2, 1, 3)
        q = q.permute(0, 2, 1, 3)
        if layer_past is not None:
            pk, pv = layer_past
            k = torch.cat((pk, k), dim=-2)
            v = torch.cat((pv, v), dim=-2)
        self._present = (k, v)
        a, _ = self._attn(q, k, v, ext_mask)
        a = self._merge_heads(a)
        a = self.out_proj(a)
        return self.resid_dropout(a)


class GPTJMLP(nn.Module):
    def __init__(self, cfg: GPTJConfig):
        super().__init__()
        inner = 4 * cfg.n_embd
        self.fc_in = nn.Linear(cfg.n_embd, inner)
        self.fc_out = nn.Linear(inner, cfg.n_embd)
        self.act = NewGELU()
        self.dropout = nn.Dropout(0.0)
        self.zero_fc = False

    def forward(self, x):
        h = self.fc_in(x)
        if self.zero_fc:
            h = h * 0
        h = self.act(h)
        return self.dropout(self.fc_out(h))


class GPTJBlock(nn.Module):
    def __init__(self, cfg: GPTJConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.attn = GPTJAttention(cfg)
        self.mlp = GPTJMLP(cfg)

    def forward(self, x, ext_mask, position_ids, layer_past=None):
        h = self.ln_1(x)
        return self.attn(h, ext_mask, position_ids, layer_past) + self.mlp(h) + x


class GPTJModel(nn.Module):
    def __init__(self, cfg: GPTJConfig):
        super().__init__()
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.drop = nn.Dropout(0.0)
        self.h = nn.ModuleList([GPTJBlock(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)


class GPTJForCausalLM(nn.Module):
    def __init__(self, cfg: GPTJConfig):
        super().__init__()
        self.config = cfg
        self.transformer = GPTJModel(cfg)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size)
        self.apply(self._init)

    def _init(self, m):
        std = self.config.initializer_range
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=std)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, return_hidden=False):
        """Returns logits [batch, seq, vocab]; with past_key_values (list of (k, v) [b, h, past, dh],
        concatenated before the keys and values of the new positions; pass position_ids then)
        returns (logits, presents), with return_hidden=True (logits, hidden_states)."""
        t = self.transformer
        seq = input_ids.size(-1)
        if position_ids is None:
            position_ids = torch.arange(0, seq, dtype=torch.long, device=input_ids.device).unsqueeze(0)
        dtype = t.wte.weight.dtype
        ext = None
        if attention_mask is not None:
            ext = attention_mask[:, None, None, :].to(dtype)
            ext = (1.0 - ext) * torch.finfo(dtype).min
        x = t.drop(t.wte(input_ids))
        hidden = [x]
        presents = []
        for i, block in enumerate(t.h):
            x = block(x, ext, position_ids, None if past_key_values is None else past_key_values[i])
            presents.append(block.attn._present)
            hidden.append(x)
        x = t.ln_f(x)
        hidden[-1] = x
        logits = self.lm_head(x).to(torch.float32)
        if past_key_values is not None:
            return logits, presents
        if return_hidden:
            return logits, hidden
        return logits
