"""Expected values for the tiny GPT-2: known facts and attention knockout, computed in PyTorch.

Regenerate with: /usr/bin/python3 scripts/make_expected.py   (from the repo root; needs generated/tiny-gpt2/)

Independent of the TypeScript side and of the training code: the weights are read back from the
committed generated/tiny-gpt2/model.onnx (initializer names = PyTorch parameter names), the prompt is
tokenized by the small word-level tokenizer below (reads tokenizer.json), and knockout is done the
way the paper's notebook does it: per prompt (batch 1), by wrapping each block's attention so that
the pre-softmax scores of the blocked edges are replaced by finfo(float32).min.
"""
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_DIR = os.path.join(ROOT, "generated", "tiny-gpt2")
OUT = os.path.join(MODEL_DIR, "expected")
WINDOWS = (3, 9)
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


def load_model(onnx_path):
    m = onnx.load(onnx_path)
    inits = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in m.graph.initializer}
    wte = inits["transformer.wte.weight"]
    L = len({k.split(".")[2] for k in inits if k.startswith("transformer.h.")})
    d = wte.shape[1]
    heads = json.load(open(os.path.join(MODEL_DIR, "card.json")))["heads"]
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


class Knockout:
    """Wraps every block's attention `_attn` (paper-notebook style monkey patch) so that the scores of
    the edges in `blocked[layer]` (list of (row, col)) are replaced by finfo.min before softmax."""

    def __init__(self, model):
        self.model = model
        self.blocked = {}
        for i, block in enumerate(model.transformer.h):
            block.attn._attn = self._wrap(block.attn, i)

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


def main():
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    tok = WordTok(os.path.join(MODEL_DIR, "tokenizer.json"))
    facts = json.load(open(os.path.join(MODEL_DIR, "facts.json")))
    model = load_model(os.path.join(MODEL_DIR, "model.onnx"))
    L = len(model.transformer.h)
    ko = Knockout(model)

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
    with open(os.path.join(OUT, "known.json"), "w") as f:
        json.dump({"semantics": SEMANTICS_COMMON, "n_facts": len(known_rows), "n_known": n_known,
                   "facts": known_rows}, f, indent=1)

    rows = []
    sums = {f"k{k}": {s: np.zeros(L) for s in SETS} for k in WINDOWS}
    ranked = 0
    for r in known_rows:
        if not r["known"]:
            continue
        ids, n = r["input_ids"], len(r["input_ids"])
        s, e = r["subject_range"]
        sets = {"subject": list(range(s, e)), "nonsubject": [t for t in range(n - 1) if not (s <= t < e)],
                "last": [n - 1]}
        out = {"case_id": r["case_id"], "n_tokens": n, "subject_range": [s, e], "top1": r["top1"], "p0": r["p0"],
               "positions": sets}
        want_rank = ranked < N_RANK_FACTS
        for k in WINDOWS:
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
    with open(os.path.join(OUT, "knockout.json"), "w") as f:
        json.dump({"semantics": SEMANTICS_KNOCKOUT, "layers": L, "windows": list(WINDOWS),
                   "windows_layers": {f"k{k}": [list(window(l, k, L)) for l in range(L)] for k in WINDOWS},
                   "n_known": len(rows), "mean_rel": mean, "facts": rows}, f)
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write(README.format(n=len(known_rows), k=n_known, L=L))
    print(f"known {n_known}/{len(known_rows)}")
    for kk in mean:
        for s in SETS:
            print(kk, s, [round(v, 2) for v in mean[kk][s]])


if __name__ == "__main__":
    main()
