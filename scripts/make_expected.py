"""Expected values for the tiny GPT-2 and GPT-J: known facts and attention knockout, computed in PyTorch.

Regenerate with: /usr/bin/python3 scripts/make_expected.py              (from the repo root; needs generated/tiny-gpt2/)
            and: /usr/bin/python3 scripts/make_expected.py --arch gptj  (needs generated/tiny-gptj/)

Independent of the TypeScript side and of the training code: the weights are read back from the
committed generated/<model>/model.onnx (GPT-2: initializer names = PyTorch parameter names; GPT-J: the
exporter's anonymous MatMul initializers are matched to their Linear layers through the scope names of
the MatMul nodes, e.g. /h.0/attn/q_proj/MatMul, and transposed back), the prompt is tokenized by the
small word-level tokenizer below (reads tokenizer.json), and knockout is done the way the paper's
notebook does it: per prompt (batch 1), by wrapping each block's attention so that the pre-softmax
scores of the blocked edges are replaced by finfo(float32).min.
"""
import argparse
import json
import os
import re
import sys

import numpy as np
import onnx
import torch
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dissect_models.gpt2 import GPT2Config, GPT2LMHeadModel  # noqa: E402
from dissect_models.gptj import GPTJConfig, GPTJForCausalLM  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# windows: k = 9 is the paper code's value for GPT-2 XL, k = 5 the value reported for GPT-J.
# max_known: how many known facts knockout.json keeps (None = all); GPT-J's is capped to keep
# generated/ small.
ARCHS = {
    "gpt2": dict(dir="tiny-gpt2", windows=(3, 9), max_known=None),
    "gptj": dict(dir="tiny-gptj", windows=(3, 5), max_known=60),
}
PROBES_MARKER = "\n## probes.json"  # make_expected_probes.py's README section, kept on rewrite
SETS = ("subject", "nonsubject", "last")
N_LOGIT_FACTS = 5
N_RANK_FACTS = 2

SEMANTICS_COMMON = {
    "model": "generated/tiny-gpt2/model.onnx weights, float32, PyTorch (HF GPT2LMHeadModel maths), batch 1, "
             "attention_mask all ones, positions arange(N)",
    "tokenization": "word-level: regex \\w+|[^\\w\\s]+ over the prompt (= HF Whitespace pre-tokenizer), each "
                    "piece looked up in tokenizer.json's WordLevel vocab ([UNK] if missing); NO BOS token",
    "prompt": "requested_rewrite.prompt with '{}' replaced by requested_rewrite.subject",
    "subject_range": "[start, end) token indices of the tokens whose character span overlaps the FIRST "
                     "occurrence of the subject string in the prompt (partly overlapping tokens included)",
    "clean": "top1 = argmax of logits at the last position N-1; p0 = softmax(logits[N-1])[top1] in float32; "
             "known = (top1 == int(target_true.id)), target_true.id being the token id of the attribute's "
             "first (only) word",
}

SEMANTICS_KNOCKOUT = {
    **SEMANTICS_COMMON,
    "facts": "only the facts with known == true (see known.json)",
    "position_sets": "N tokens; subject = range(start, end); nonsubject = {0..N-2} minus subject; "
                     "last = {N-1}",
    "window": "for window size k and layer l (0-based, L layers): blocked layers = "
              "range(max(0, l - k//2), min(L, l - (-k//2))) i.e. l-floor(k/2) .. l+ceil(k/2)-1 clipped",
    "block": "in every blocked layer and in ALL heads, the pre-softmax attention score at (query row N-1, "
             "key column t) for every t in the set is REPLACED by finfo(float32).min, after QK^T/sqrt(d_head) "
             "and after the causal where(causal, s, finfo.min), before adding the (all-zero) padding mask and "
             "the softmax. Other rows are unchanged. A set with no positions gives p_new = p0.",
    "p_new": "softmax(logits[N-1])[top1] with the knockout applied (top1 = the CLEAN top-1 token)",
    "rel": "(p_new - p0) / p0 * 100, computed in float64 from the float32 probabilities",
    "floats": "Python repr (shortest round-trip) of float64 values; probabilities are float32 values widened "
              "exactly to float64",
    "rank": "number of vocabulary entries whose logit at N-1 is strictly greater than the logit of the clean "
            "top-1 token, after knockout (0 = still top-1)",
    "mean": "mean of rel over the known facts, per window/set/layer",
}

SEMANTICS_COMMON_GPTJ = {
    **SEMANTICS_COMMON,
    "model": "generated/tiny-gptj/model.onnx weights, float32, PyTorch (HF GPTJForCausalLM maths: rotary on "
             "the first rotary_dim dims of each head, parallel block x + attn(ln_1 x) + mlp(ln_1 x), untied "
             "lm_head with bias), batch 1, attention_mask all ones, positions arange(N)",
    "clean": SEMANTICS_COMMON["clean"] + "; the logits have one entry per embedding row (272 = padded; the "
             "tokenizer has 264 tokens), and argmax / ranks run over all of them",
}


def semantics_knockout(arch, n_known_all, max_known):
    if arch == "gpt2":
        return SEMANTICS_KNOCKOUT
    sem = {**SEMANTICS_KNOCKOUT, **SEMANTICS_COMMON_GPTJ}
    sem["block"] = ("in every blocked layer and in ALL heads, the pre-softmax attention score at (query row "
                    "N-1, key column t) for every t in the set is REPLACED by finfo(float32).min, in HF GPT-J's "
                    "order: s = Q K^T in float32, s = where(causal, s, finfo.min), s = s / sqrt(d_head), THEN "
                    "the replacement, then + the (all-zero) padding mask and the softmax. Other rows are "
                    "unchanged (row N-1 has no future keys, and no set blocks every key, so the replacement "
                    "value being below the scaled causal fill finfo.min/sqrt(d_head) never matters). A set "
                    "with no positions gives p_new = p0.")
    sem["rank"] = ("number of logit entries at N-1 (all 272 embedding rows) strictly greater than the logit of "
                   "the clean top-1 token, after knockout (0 = still top-1)")
    if max_known is not None and n_known_all > max_known:
        sem["facts"] = (f"only the FIRST {max_known} facts with known == true, in facts.json order (of "
                        f"{n_known_all} known; capped to keep generated/ under its size budget; see known.json "
                        "for all)")
        sem["mean"] = f"mean of rel over those {max_known} known facts, per window/set/layer"
    return sem


README = """# Expected values for tiny-gpt2 (PyTorch reference)

Regenerate (from the repo root, after generated/tiny-gpt2/ exists): `/usr/bin/python3 scripts/make_expected.py`

Made by `scripts/make_expected.py`, independently of the TypeScript code and of the training code:
weights are read back from `../model.onnx` (initializers named like the PyTorch parameters) into the
HF-equivalent PyTorch GPT-2 (`scripts/dissect_models/gpt2.py`); prompts are tokenized by a ten-line
word-level tokenizer reading `../tokenizer.json` (regex `\\w+|[^\\w\\s]+`, no BOS); every forward pass is
one prompt (batch 1, float32, attention_mask all ones); knockout wraps each block's attention the
way the paper's notebook patches `attn.forward`.

- `known.json`: all {n} facts of `../facts.json`: token ids, subject range [start, end), clean top-1
  id, its probability p0, `known` ({k} of {n} are known), and the full last-position logits for the
  first 5 facts.
- `knockout.json`: for the known facts, windows k = 3 and 9 over the {L} layers, sets subject /
  nonsubject / last, every layer l: `p_new` and `rel` (full float64 repr); `rank` (number of logits
  strictly greater than the clean top-1's) for the first 2 known facts; `mean_rel` over the facts;
  `windows_layers` lists the blocked layers per (k, l).

Each JSON file has a top-level `semantics` object stating exactly what was computed.
"""

README_GPTJ = """# Expected values for tiny-gptj (PyTorch reference)

Regenerate (from the repo root, after generated/tiny-gptj/ exists): `/usr/bin/python3 scripts/make_expected.py --arch gptj`

Made by `scripts/make_expected.py --arch gptj`, independently of the TypeScript code and of the
training code: weights are read back from `../model.onnx` into the HF-equivalent PyTorch GPT-J
(`scripts/dissect_models/gptj.py`); the exporter names the Linear weights `onnx::MatMul_*`, so each
is matched to its layer through the scope name of the MatMul node that reads it
(`/h.<i>/attn/q_proj/MatMul`, ..., `/lm_head/MatMul`) and transposed back. Prompts are tokenized by
the same word-level tokenizer as for tiny-gpt2 (`../tokenizer.json`, no BOS); every forward pass is
one prompt (batch 1, float32, attention_mask all ones); knockout wraps each block's attention `_attn`
with HF GPT-J's order (Q K^T in fp32, causal `where` with finfo.min, / sqrt(d_head), then blocked
scores replaced by finfo.min, softmax).

- `known.json`: all {n} facts of `../facts.json`, same layout as tiny-gpt2's: token ids, subject
  range [start, end), clean top-1 id, p0, `known` ({k} of {n} are known), and the full last-position
  logits (all {V} rows of the padded head) for the first 5 facts.
- `knockout.json`: same layout as tiny-gpt2's, for {m} known facts{cap}, windows k = 3 and 5
  over the {L} layers, sets subject / nonsubject / last, every layer l: `p_new` and `rel`; `rank` for
  the first 2 known facts; `mean_rel` over the stored facts; `windows_layers`.

Each JSON file has a top-level `semantics` object stating exactly what was computed.
"""


class WordTok:
    RE = re.compile(r"\w+|[^\w\s]+")

    def __init__(self, path):
        with open(path) as f:
            j = json.load(f)
        self.vocab = j["model"]["vocab"]
        self.unk = self.vocab[j["model"]["unk_token"]]

    def encode_with_offsets(self, text):
        return [(self.vocab.get(m.group(0), self.unk), m.start(), m.end()) for m in self.RE.finditer(text)]


def subject_range(toks, prompt, subject):
    c0 = prompt.index(subject)
    c1 = c0 + len(subject)
    hit = [i for i, (_, s, e) in enumerate(toks) if s < c1 and e > c0]
    return hit[0], hit[-1] + 1


def load_model(onnx_path, arch="gpt2"):
    if arch == "gptj":
        return load_gptj(onnx_path)
    m = onnx.load(onnx_path)
    inits = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in m.graph.initializer}
    wte = inits["transformer.wte.weight"]
    L = len({k.split(".")[2] for k in inits if k.startswith("transformer.h.")})
    d = wte.shape[1]
    heads = json.load(open(os.path.join(os.path.dirname(onnx_path), "card.json")))["heads"]
    cfg = GPT2Config(vocab_size=wte.shape[0], n_positions=inits["transformer.wpe.weight"].shape[0], n_embd=d,
                     n_layer=L, n_head=heads)
    model = GPT2LMHeadModel(cfg)
    sd = model.state_dict()
    for k in sd:
        if k == "lm_head.weight":
            continue
        assert k in inits, k
        sd[k] = inits[k]
    model.load_state_dict(sd)
    model.eval()
    return model


def load_gptj(onnx_path):
    m = onnx.load(onnx_path)
    arrays = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in m.graph.initializer}
    params = {k: v for k, v in arrays.items() if not k.startswith("onnx::")}
    # MatMul(x, W^T) nodes carry the module scope in their name: /h.0/attn/q_proj/MatMul, /lm_head/MatMul
    for node in m.graph.node:
        if node.op_type != "MatMul" or node.input[1] not in arrays or not node.input[1].startswith("onnx::"):
            continue
        parts = node.name.strip("/").split("/")
        assert parts[-1] == "MatMul", node.name
        scope = parts[:-1]
        if scope[0].startswith("h."):
            scope = ["transformer", "h", scope[0][2:]] + scope[1:]
        name = ".".join(scope) + ".weight"
        assert name not in params, name
        params[name] = arrays[node.input[1]].t().contiguous()
    card = json.load(open(os.path.join(os.path.dirname(onnx_path), "card.json")))
    wte = params["transformer.wte.weight"]
    L = len({k.split(".")[2] for k in params if k.startswith("transformer.h.")})
    assert L == card["layers"]
    cfg = GPTJConfig(vocab_size=wte.shape[0], n_positions=card["n_positions"], n_embd=wte.shape[1], n_layer=L,
                     n_head=card["heads"], rotary_dim=card["rotary_dim"])
    model = GPTJForCausalLM(cfg)
    sd = model.state_dict()
    assert set(sd) == set(params), (set(sd) ^ set(params))
    for k in sd:
        assert sd[k].shape == params[k].shape, k
    model.load_state_dict(params)
    model.eval()
    return model


class Knockout:
    """Wraps every block's attention `_attn` (paper-notebook style monkey patch) so that the scores of
    the edges in `blocked[layer]` (list of (row, col)) are replaced by finfo.min before softmax."""

    def __init__(self, model, arch="gpt2"):
        self.model = model
        self.blocked = {}
        for i, block in enumerate(model.transformer.h):
            block.attn._attn = (self._wrap if arch == "gpt2" else self._wrap_gptj)(block.attn, i)

    def _block_mask(self, layer, n_q, n_k):
        edges = self.blocked.get(layer, [])
        if not edges:
            return None
        m = torch.zeros(n_q, n_k, dtype=torch.bool)
        for r, c in edges:
            m[r, c] = True
        return m

    def _wrap_gptj(self, attn, layer):
        def _attn(q, k, v, ext_mask):
            # HF GPTJAttention._attn (4.30): fp32 scores, causal where, THEN the 1/sqrt(d_head) scaling
            n_q, n_k = q.size(-2), k.size(-2)
            causal = torch.tril(torch.ones(n_k, n_k, dtype=torch.bool))[n_k - n_q:n_k, :n_k]
            q = q.to(torch.float32)
            k = k.to(torch.float32)
            w = torch.matmul(q, k.transpose(-1, -2))
            fmin = torch.tensor(torch.finfo(w.dtype).min, dtype=w.dtype)
            w = torch.where(causal, w, fmin)
            w = w / attn.scale_attn
            m = self._block_mask(layer, n_q, n_k)
            if m is not None:
                w = torch.where(m, fmin, w)
            if ext_mask is not None:
                w = w + ext_mask
            w = torch.softmax(w, dim=-1).to(v.dtype)
            w = attn.attn_dropout(w)
            return torch.matmul(w, v), w
        return _attn

    def _wrap(self, attn, layer):
        def _attn(q, k, v, ext_mask):
            scores = torch.matmul(q, k.transpose(-1, -2)) / torch.full([], v.size(-1) ** 0.5, dtype=q.dtype)
            n_q, n_k = q.size(-2), k.size(-2)
            causal = torch.tril(torch.ones(n_k, n_k, dtype=torch.bool))[n_k - n_q:n_k, :n_k]
            fmin = torch.finfo(scores.dtype).min
            scores = torch.where(causal, scores, torch.full([], fmin))
            edges = self.blocked.get(layer, [])
            if edges:
                m = torch.zeros(n_q, n_k, dtype=torch.bool)
                for r, c in edges:
                    m[r, c] = True
                scores = torch.where(m, torch.full([], fmin), scores)
            if ext_mask is not None:
                scores = scores + ext_mask
            probs = torch.softmax(scores, dim=-1)
            probs = attn.attn_dropout(probs)
            return torch.matmul(probs, v), probs
        return _attn

    @torch.no_grad()
    def logits_last(self, ids, blocked=None):
        self.blocked = blocked or {}
        x = torch.tensor([ids])
        out = self.model(x, torch.ones_like(x))[0, -1]
        self.blocked = {}
        return out


def window(l, k, L):
    return range(max(0, l - k // 2), min(L, l - (-k // 2)))


def read_readme_tail(path):
    """The probes.json section that make_expected_probes.py appends to README.md (kept on rewrite)."""
    if not os.path.exists(path):
        return ""
    text = open(path).read()
    i = text.find(PROBES_MARKER)
    return text[i:] if i >= 0 else ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", choices=sorted(ARCHS), default="gpt2")
    ap.add_argument("--out", help="output folder (default generated/<model>/expected)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-known", type=int, help="keep at most this many known facts in knockout.json "
                    "(default: all for gpt2, 60 for gptj)")
    args = ap.parse_args()
    arch = args.arch
    model_dir = os.path.join(ROOT, "generated", ARCHS[arch]["dir"])
    out_dir = args.out or os.path.join(model_dir, "expected")
    windows = ARCHS[arch]["windows"]
    max_known = args.max_known if args.max_known is not None else ARCHS[arch]["max_known"]
    torch.set_num_threads(args.threads)
    os.makedirs(out_dir, exist_ok=True)
    tok = WordTok(os.path.join(model_dir, "tokenizer.json"))
    facts = json.load(open(os.path.join(model_dir, "facts.json")))
    model = load_model(os.path.join(model_dir, "model.onnx"), arch)
    L = len(model.transformer.h)
    ko = Knockout(model, arch)

    known_rows = []
    for i, fc in enumerate(facts):
        rr = fc["requested_rewrite"]
        prompt = rr["prompt"].replace("{}", rr["subject"])
        toks = tok.encode_with_offsets(prompt)
        ids = [t[0] for t in toks]
        s, e = subject_range(toks, prompt, rr["subject"])
        logits = ko.logits_last(ids)
        probs = torch.softmax(logits, -1)
        top = int(torch.argmax(logits))
        row = {"case_id": fc["case_id"], "prompt": prompt, "subject": rr["subject"], "input_ids": ids,
               "subject_range": [s, e], "top1": top, "p0": float(probs[top]),
               "target_true_id": int(rr["target_true"]["id"]), "known": top == int(rr["target_true"]["id"])}
        if i < N_LOGIT_FACTS:
            row["logits_last"] = [float(v) for v in logits]
        known_rows.append(row)
    n_known = sum(r["known"] for r in known_rows)
    with open(os.path.join(out_dir, "known.json"), "w") as f:
        json.dump({"semantics": SEMANTICS_COMMON if arch == "gpt2" else SEMANTICS_COMMON_GPTJ,
                   "n_facts": len(known_rows), "n_known": n_known, "facts": known_rows}, f,
                  indent=1 if arch == "gpt2" else None)

    rows = []
    sums = {f"k{k}": {s: np.zeros(L) for s in SETS} for k in windows}
    ranked = 0
    for r in known_rows:
        if not r["known"]:
            continue
        if max_known is not None and len(rows) >= max_known:
            break
        ids, n = r["input_ids"], len(r["input_ids"])
        s, e = r["subject_range"]
        sets = {"subject": list(range(s, e)), "nonsubject": [t for t in range(n - 1) if not (s <= t < e)],
                "last": [n - 1]}
        out = {"case_id": r["case_id"], "n_tokens": n, "subject_range": [s, e], "top1": r["top1"], "p0": r["p0"],
               "positions": sets}
        want_rank = ranked < N_RANK_FACTS
        for k in windows:
            kk = f"k{k}"
            out[kk] = {}
            for sname in SETS:
                ps, rels, ranks = [], [], []
                for l in range(L):
                    edges = [(n - 1, t) for t in sets[sname]]
                    blocked = {j: edges for j in window(l, k, L)} if edges else {}
                    lg = ko.logits_last(ids, blocked)
                    p = float(torch.softmax(lg, -1)[r["top1"]])
                    ps.append(p)
                    rels.append((p - r["p0"]) / r["p0"] * 100.0)
                    if want_rank:
                        ranks.append(int((lg > lg[r["top1"]]).sum()))
                sums[kk][sname] += np.array(rels)
                out[kk][sname] = {"p_new": ps, "rel": rels}
                if want_rank:
                    out[kk][sname]["rank"] = ranks
        ranked += 1
        rows.append(out)
    mean = {kk: {s: (v / max(1, len(rows))).tolist() for s, v in d.items()} for kk, d in sums.items()}
    with open(os.path.join(out_dir, "knockout.json"), "w") as f:
        json.dump({"semantics": semantics_knockout(arch, n_known, max_known), "layers": L, "windows": list(windows),
                   "windows_layers": {f"k{k}": [list(window(l, k, L)) for l in range(L)] for k in windows},
                   "n_known": len(rows), "mean_rel": mean, "facts": rows}, f)
    readme_path = os.path.join(out_dir, "README.md")
    tail = read_readme_tail(readme_path)
    if arch == "gpt2":
        text = README.format(n=len(known_rows), k=n_known, L=L)
    else:
        cap = (f" (the FIRST {len(rows)} of the {n_known} known, in facts.json order, to keep generated/ small)"
               if len(rows) < n_known else "")
        text = README_GPTJ.format(n=len(known_rows), k=n_known, L=L, m=len(rows), cap=cap,
                                  V=model.transformer.wte.weight.shape[0])
    with open(readme_path, "w") as f:
        f.write(text + tail)
    print(f"known {n_known}/{len(known_rows)}; knockout.json holds {len(rows)}")
    for kk in mean:
        for s in SETS:
            print(kk, s, [round(v, 2) for v in mean[kk][s]])


if __name__ == "__main__":
    main()
