"""Expected values for the dissect probes on the tiny GPT-2, computed in PyTorch with hooks.

Regenerate with: /usr/bin/python3 scripts/make_expected_probes.py   (from the repo root; needs generated/tiny-gpt2/;
about a minute on one core)

Writes generated/tiny-gpt2/expected/probes.json and (re)writes the "probes.json" section at the end of
generated/tiny-gpt2/expected/README.md.

Independent of the TypeScript side and of the training code, in the style of the paper's notebook:
weights read back from generated/tiny-gpt2/model.onnx into the HF-equivalent PyTorch GPT-2
(scripts/dissect_models/gpt2.py, used with all of its own intervention switches OFF), the word-level
tokenizer of make_expected.py, one prompt per forward pass (batch 1, float32, no BOS), and every
reading or intervention done by forward hooks, forward pre-hooks or a wrapper around each block's
attention `_attn` (the notebook's way of masking scores). Measurements, per fact (first 40 known):

  (a) attributes rate of hidden h (0..L) at subject_last / subject_first / subject_next / last;
  (b) sublayer knockout: the rate of hidden 7 at subject_last with MLP or attention cancelled in a
      2-layer window, 4 cancel modes;
  (c) extraction of the attention / MLP / per-head updates at last, with ranks, the rank of the target
      in hidden l+1 at subject_last and the attention weight subject -> last;
  (d) control A: edges last <- set blocked at one layer, the attention update's extraction event there;
  (e) control B: block l's input at the subject positions patched with the clean hidden 0/1/2;
  (f) logit lens: top-5 ids of hidden h at last under both projections;
  (g) control A, local form (the notebook's): at one layer, the attention update at last rebuilt from
      the clean probabilities of row N-1 with some keys removed (two modes), nothing propagated;
  (h) the embedding baseline of the attributes rate: the mean of the subject tokens' wte rows;
  (i) patching from a corrupted prompt: block l's input at the subject positions replaced by hidden 0 of
      the same template filled with another subject (same token count); the pairs also go to
      generated/tiny-gpt2/expected/pairs.jsonl (see PATCH_CORRUPTED);
  (j) the L2 norm of hidden h (0..L) at subject_last, last and averaged over the subject positions.
The precise definitions are in SEMANTICS below, which is also written into the JSON.
"""
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_expected import WordTok, load_model, subject_range  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_DIR = os.path.join(ROOT, "generated", "tiny-gpt2")
OUT = os.path.join(MODEL_DIR, "expected")
N_FACTS = 40
CANDIDATES = 100
KEEP = 10
MIN_LENGTH = 3
AR_POSITIONS = ("subject_last", "subject_first", "subject_next", "last")
SUBLAYER_HIDDEN = 7
SUBLAYER_STARTS = range(0, 6)
SUBLAYER_TOP = 5           # windows start..min(start+1, 5)
SUBLAYER_MODES = ("mlp_zero_preactivation", "mlp_zero_update", "attention_uniform", "attention_zero_update")
CONTROL_A_SETS = ("subject", "subject_last", "nonsubject", "nonsubject+last", "last")
CONTROL_B_SOURCES = (0, 1, 2)
# (g): the notebook's removed-key sets, named by the dissect position expression that gives them
LOCAL_SETS = ("subject", "last", "subject_last", "subject_last + last", "nonsubject + last", "nonsubject",
              "all - [0]", "all - last", "all - subject_last", "all - (subject_last + last)", "all")
LOCAL_MODES = ("renormalise", "paper_resoftmax")
LENS_K = 5
NORM_POSITIONS = ("subject_last", "last", "subject")
PROBES_MARKER = "\n## probes.json"
CORRUPTED_STEP = 6         # facts come 6 per subject: the fact 6 records later has the next subject
CORRUPTED_SOURCE = 0
PATCH_CORRUPTED = (
    "(i), a separate key so the other entries stay as they were. For each of the facts: the corrupted "
    "prompt = requested_rewrite.prompt of THIS fact with '{}' replaced by the subject of facts.json record "
    f"k+{CORRUPTED_STEP}, k+{2 * CORRUPTED_STEP}, ... (k = this fact's index in facts.json), the first whose "
    "token count equals the prompt's; none found -> facts[i].patch_corrupted = null and no pair. Else "
    f"patch_corrupted = {{corrupted_prompt, event[l], p[l]}}: a forward pre-hook on block l replaces its input at "
    f"the subject positions with hidden {CORRUPTED_SOURCE} of the corrupted prompt's clean run at the same token "
    "indices; p = softmax(logits[N-1])[t], event = extraction event of attention l at last (as c_extraction) "
    "under that patch. pairs.jsonl: one line per pair {prompt, subject, target (= target_true.str), "
    "corrupted_prompt, case_id}, in facts order"
)

# NLTK's English stopword list (corpora/stopwords/english as shipped with NLTK 3.4-3.8), written out
# here so nothing is downloaded.
NLTK_ENGLISH_STOPWORDS = frozenset("""
i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself yourselves
he him his himself she she's her hers herself it it's its itself they them their theirs themselves
what which who whom this that that'll these those am is are was were be been being have has had
having do does did doing a an the and but if or because as until while of at by for with about
against between into through during before after above below to from up down in out on off over
under again further then once here there when where why how all any both each few more most other
some such no nor not only own same so than too very s t can will just don don't should should've
now d ll m o re ve y ain aren aren't couldn couldn't didn didn't doesn doesn't hadn hadn't hasn
hasn't haven haven't isn isn't ma mightn mightn't mustn mustn't needn needn't shan shan't shouldn
shouldn't wasn wasn't weren weren't won won't wouldn wouldn't
""".split())
assert len(NLTK_ENGLISH_STOPWORDS) == 179

SEMANTICS = {
    "model": "generated/tiny-gpt2/model.onnx weights (L = 8 blocks, H = 4 heads, d_head 32, vocab V = 264), "
             "float32 PyTorch with HF GPT2LMHeadModel maths, batch 1, attention_mask all ones, positions "
             "arange(N), dropout off",
    "tokenization": "word-level: regex \\w+|[^\\w\\s]+ over the prompt, each piece looked up in tokenizer.json's "
                    "WordLevel vocab ([UNK] if missing); NO BOS token. Decoding a token id = its vocab string "
                    "itself (specials included, e.g. '<|endoftext|>')",
    "prompt": "requested_rewrite.prompt with '{}' replaced by requested_rewrite.subject",
    "facts": f"the FIRST {N_FACTS} facts of facts.json (in file order) whose clean top-1 at N-1 equals "
             "int(target_true.id)",
    "target": "t = clean top-1 token at the last position N-1 (descending logit, ties to the lower id); "
              "p0 = softmax(logits[N-1])[t] in float32",
    "positions": "N tokens, subject range [s, e) = tokens overlapping the FIRST occurrence of the subject "
                 "string (partial overlap included). subject = s..e-1; subject_first = s; subject_last = e-1; "
                 "subject_next = e if e <= N-1 else null (it may equal N-1); last = N-1; nonsubject = "
                 "{0..N-2} minus subject; nonsubject+last = nonsubject union {N-1}; all = 0..N-1",
    "hidden": "hidden 0 = embedding output wte[ids] + wpe[0..N-1]; hidden l (1..L) = residual stream after "
              "block l-1 (= input of block l); hidden L = output of the last block WITHOUT ln_f (unlike HF's "
              "hidden_states[L]). Read with a forward hook on transformer.drop (hidden 0) and on each block",
    "updates": "attention l = output of block l's attn module (c_proj of the merged heads, INCLUDING c_proj.bias, "
               "before the residual add); mlp l = output of block l's mlp module (incl. its c_proj bias); "
               "head h's share of attention l at position q = (sum_k A^h[q,k] v^h_k) @ c_proj.weight[h*32:(h+1)*32, :] "
               "(Conv1D weight is [in, out]; NO bias), so the H shares + c_proj.bias = attention l",
    "projection": "embedding: scores = x @ wte^T (float32, no norm, no bias); final_norm_unembedding: "
                  "ln_f(x) @ wte^T (tied head, GPT-2 has no lm_head bias). Token order: descending score, ties "
                  "to the lower id. rank(t) = number of ids whose score is STRICTLY greater than t's. top1 = "
                  "first id in that order; tie = (score of the 1st == score of the 2nd in that order); margin = "
                  "score(1st) - score(2nd) as float32 widened to float64",
    "attributes_rate": f"from the embedding projection of the vector: take the top {CANDIDATES} ids in token "
                       "order, decode each; drop c if c.strip().lower() is in NLTK's 179-word English stopword "
                       f"list or len(c.strip()) < {MIN_LENGTH}; keep the first {KEEP} survivors K (a list). "
                       "A_s = attributes.json[subject]: each string tokenized with the word tokenizer, each "
                       "token decoded on its own, duplicates removed, a dropped if a.strip() is a stopword "
                       f"(case-SENSITIVE) or len(a.strip()) < {MIN_LENGTH}. rate = 100 * |set(K) & A_s| / len(K) "
                       "(float64); null when K is empty or the position does not exist (subject_next)",
    "a_attributes_rate": "attributes_rate[pos][h] for h = 0..L on the CLEAN run; attributes_kept[pos][h] = the "
                         "ids of K in order (null where the rate is null)",
    "b_sublayer_knockout": f"rate of hidden {SUBLAYER_HIDDEN} at subject_last (projection embedding) with "
                           f"cancelled layers = start..min(start+1, {SUBLAYER_TOP}) (inclusive) for start = "
                           f"0..{SUBLAYER_TOP}, at ALL positions, later layers untouched. Modes: "
                           "mlp_zero_preactivation = forward hook on mlp.c_fc returns zeros (the MLP then writes "
                           "its c_proj bias); mlp_zero_update = forward hook on mlp returns zeros; "
                           "attention_uniform = in those layers every causal pre-softmax score of EVERY query row "
                           "is replaced by finfo(float32).min and every future score by -inf, so each row is "
                           "uniform 1/(q+1) over keys 0..q (attn still writes c_proj(mean of values) + bias); "
                           "attention_zero_update = forward hook on attn returns zeros (no bias either). "
                           f"none = the clean rate of hidden {SUBLAYER_HIDDEN} at subject_last",
    "c_extraction": "for each layer l on the CLEAN run, at last: attention/mlp: top1, event (1 if top1 == t else "
                    "0), tie, margin, target_rank of the embedding projection of the update; heads: per head h "
                    "the top1 and target_rank of its share (embedding projection); "
                    "hidden_subject_last_target_rank[l] = rank of t in the embedding projection of hidden l+1 at "
                    "subject_last; attention_weight_subject_to_last[l] = (1/H) sum_h sum_{k in subject} "
                    "A^h[N-1, k] of block l (post-softmax, float32 weights summed in float64, keys ascending)",
    "d_control_a": "for each layer l and set S: in block l ONLY, all heads, the pre-softmax scores at (query N-1, "
                   "key k) for k in S are REPLACED by finfo(float32).min (after /sqrt(d_head) and the causal "
                   "where); the run goes to the end (later layers see the change, nothing else is altered). "
                   "event[l] = 1 if top1 of the embedding projection of attention l at N-1 == t (the CLEAN t); "
                   "target_rank[l] = t's rank there",
    "e_control_b": "for each layer l and source s: a forward pre-hook on block l replaces its input x at the "
                   "subject positions by the CLEAN run's hidden s at the same positions (block l's residual and "
                   "ln_1 both see the patched x; s > l allowed; s == l is a no-op). event[l] = extraction event "
                   "of attention l at N-1 (top1 == t); p[l] = softmax(logits[N-1])[t] in float32 at the output",
    "f_logit_lens": f"top {LENS_K} ids (token order) of hidden h at last for h = 0..L, per projection; with "
                    "final_norm_unembedding, h = L gives the model's own logits",
    "g_control_a_local": "for each layer l, mode and removed set S (keys of row N-1; the names are dissect position "
                         "expressions: 'a + b' union, 'a - b' difference, [0] = position 0, all = 0..N-1): on the "
                         "CLEAN run, P = the attention probabilities of block l at query N-1, [H, N] (recorded by "
                         "the _attn wrapper), V = the values [H, N, dh] read by a forward hook on attn.c_attn (its "
                         "output split into q|k|v, v split into heads, as the notebook does). P' per mode: "
                         "renormalise: P with the entries in S set to 0, each head's row divided by its sum "
                         "(a row whose sum is 0, e.g. S = all, stays 0); paper_resoftmax: the notebook's code: P "
                         "with the entries in S set to -1e6 (for the 'all - X' sets: a row of -1e6 with the kept "
                         "entries copied from P), then softmax over the N keys, so the survivors get weights "
                         "proportional to exp(p); S = all gives P' = 0 (the notebook's 'block all' is zeros_like, "
                         "no softmax). out = addmm(c_proj.bias, merge_heads(P'[:, None, :] @ V), c_proj.weight), "
                         "float32, at layer l only; event[l] = 1 if top1 of the embedding projection of out == t, "
                         "target_rank[l] = t's rank there, tie[l] as in c_extraction. Check: P' = P gives the "
                         "clean attention l at N-1 (atol 1e-5)",
    "h_attributes_rate_embedding": "the mean over the subject positions s..e-1 of wte[input_ids[q]] (token "
                                   "embedding rows only, no wpe), then attributes_rate as above (embedding "
                                   "projection, same cleaning and attribute set); null when nothing is kept; "
                                   "embedding_baseline.top5 / .target_rank: the top 5 ids and t's rank of that "
                                   "projection",
    "j_hidden_norm": "hidden_norm.<pos>[h] for h = 0..L on the CLEAN run: the Euclidean norm (torch.linalg."
                     "vector_norm, float32 widened to float64) of hidden h at subject_last or last; for subject, "
                     "the mean of the norms over the subject positions s..e-1",
    "summary": "means over the stored facts, skipping nulls: attributes_rate[pos][h]; sublayer_knockout[mode]"
               "[start] and none; extraction per-layer event rates of attention and mlp; per-example rate = share "
               "of facts with >= 1 event over layers 0..L-1; control_a[set][l] and control_b[source][l] event "
               "rates and per-example rates; control_a_local[mode][set][l] the same",
    "floats": "Python repr (shortest round-trip) of float64 values; float32 quantities are widened exactly",
}

README_SECTION = """
## probes.json

Regenerate: `/usr/bin/python3 scripts/make_expected_probes.py` (from the repo root, ~1 min). Made the
same independent way (weights from `../model.onnx`, word-level tokenizer, batch 1, hooks on the PyTorch
GPT-2 with its own switches off), for the first {n} known facts. The top-level `semantics` object states
every definition; in short: `hidden h` = h-th residual stream (0 = wte+wpe, L = after the last block,
no ln_f), projection `embedding` = x·wteᵀ, ranks count strictly greater scores, ties go to the lower id,
t = the clean top-1. Key paths (`[l]` = layer 0..7, `[h]` = hidden 0..8, `[k]` = 0..H-1):

- `semantics`, `model`, `layers` (8), `heads` (4), `vocab` (264), `n_facts` ({n}),
  `attributes_rate_params` {{candidates 100, keep 10, min_length 3, stopwords}},
  `sublayer` {{hidden 7, position, starts, windows (the cancelled layers per start), modes}},
  `control_a_sets`, `control_b_sources`, `control_a_local_sets`, `control_a_local_modes`,
  `summary` (means; see `semantics.summary`).
- `facts[i]`: `case_id`, `prompt`, `subject`, `input_ids`, `n_tokens`, `subject_range` [s, e),
  `positions` {{subject_first, subject_last, subject_next (null if none), last, subject[], nonsubject[]}},
  `t`, `p0`, `logits_top5` (clean ids at N-1), then
  - (a) `attributes_rate.<pos>[h]` (float or null) and `attributes_kept.<pos>[h]` (ids kept, or null),
    pos ∈ subject_last, subject_first, subject_next, last;
  - (b) `sublayer_knockout.none` and `sublayer_knockout.<mode>[start]`, start 0..5, mode ∈
    mlp_zero_preactivation, mlp_zero_update, attention_uniform, attention_zero_update;
  - (c) `extraction.attention.{{top1,event,tie,margin,target_rank}}[l]`, the same under
    `extraction.mlp`, `extraction.heads.{{top1,target_rank}}[l][k]`,
    `extraction.hidden_subject_last_target_rank[l]` (hidden l+1), `extraction.attention_weight_subject_to_last[l]`;
  - (d) `control_a.<set>.{{event,target_rank}}[l]`, set ∈ subject, subject_last, nonsubject, nonsubject+last, last;
  - (e) `control_b.<source>.{{event,p}}[l]`, source ∈ "0", "1", "2";
  - (f) `logit_lens.embedding[h]` and `logit_lens.final_norm_unembedding[h]`: 5 ids each;
  - (g) `control_a_local.<mode>.<set>.{{event,target_rank,tie}}[l]`, mode ∈ renormalise, paper_resoftmax,
    set ∈ the `control_a_local_sets` (dissect position expressions, e.g. "subject_last + last", "all - [0]");
  - (h) `attributes_rate_embedding` (float or null): the rate of the mean wte row of the subject tokens;
    `embedding_baseline.{{top5,target_rank}}`: that vector's top 5 ids and t's rank (embedding projection);
  - (i) `patch_corrupted` (null when no corrupted prompt of equal length): `corrupted_prompt`, `event[l]`,
    `p[l]`, block l's input at the subject positions patched with hidden 0 of the corrupted prompt (the
    top-level `patch_corrupted` says how); the pairs are in `pairs.jsonl`;
  - (j) `hidden_norm.<pos>[h]`: the L2 norm of hidden h, pos ∈ subject_last, last, subject (the mean of
    the subject positions' norms).

Events are 0/1 integers, `tie` a boolean, every other float full precision.
"""


class Probe:
    """Hooks on the PyTorch GPT-2: records hidden states, sublayer updates, attention probabilities
    and values per layer; applies the interventions set in `self.cfg` for one forward pass."""

    def __init__(self, model):
        self.model = model
        self.L = len(model.transformer.h)
        self.cfg = {}
        self.rec = {}
        t = model.transformer
        t.drop.register_forward_hook(lambda m, i, o: self._put("hidden", 0, o))
        for l, block in enumerate(t.h):
            assert block.attn.block is None and not block.attn.uniform and not block.mlp.zero_fc
            block.attn._attn = self._wrap_attn(block.attn, l)
            block.register_forward_pre_hook(self._pre_block(l))
            block.register_forward_hook(lambda m, i, o, l=l: self._put("hidden", l + 1, o))
            block.attn.register_forward_hook(self._sublayer_hook("attention", l))
            block.mlp.register_forward_hook(self._sublayer_hook("mlp", l))
            block.mlp.c_fc.register_forward_hook(self._c_fc_hook(l))
            block.attn.c_attn.register_forward_hook(self._c_attn_hook(block.attn, l))

    def _put(self, kind, l, value):
        self.rec.setdefault(kind, {})[l] = value.detach().clone()

    def _pre_block(self, l):
        def hook(module, args):
            patch = self.cfg.get("patch")
            if patch is None or patch[0] != l:
                return None
            _, positions, source = patch
            x = args[0].clone()
            x[0, positions] = source[0, positions]
            return (x,) + tuple(args[1:])
        return hook

    def _sublayer_hook(self, kind, l):
        def hook(module, inputs, output):
            if l in self.cfg.get(kind + "_zero_update", ()):
                output = torch.zeros_like(output)
            self._put(kind, l, output)
            return output
        return hook

    def _c_fc_hook(self, l):
        def hook(module, inputs, output):
            if l in self.cfg.get("mlp_zero_preactivation", ()):
                return torch.zeros_like(output)
            return None
        return hook

    def _c_attn_hook(self, attn, l):
        """The notebook's read of V: split c_attn's output into q|k|v, then v into heads [H, N, dh]."""
        def hook(module, inputs, output):
            d = output.shape[-1] // 3
            v = output[0].split(d, dim=1)[2]
            v = v.view(v.shape[0], attn.num_heads, d // attn.num_heads).permute(1, 0, 2)
            self._put("c_attn_value", l, v)
        return hook

    def _wrap_attn(self, attn, l):
        def _attn(q, k, v, ext_mask):
            scores = torch.matmul(q, k.transpose(-1, -2)) / torch.full([], v.size(-1) ** 0.5, dtype=q.dtype)
            n_q, n_k = q.size(-2), k.size(-2)
            causal = torch.tril(torch.ones(n_k, n_k, dtype=torch.bool))[n_k - n_q:n_k, :n_k]
            fmin = torch.full([], torch.finfo(scores.dtype).min)
            scores = torch.where(causal, scores, fmin)
            edges = self.cfg.get("block", {}).get(l, [])
            if edges:
                m = torch.zeros(n_q, n_k, dtype=torch.bool)
                for r, c in edges:
                    m[r, c] = True
                scores = torch.where(m, fmin, scores)
            if l in self.cfg.get("attention_uniform", ()):
                scores = torch.where(causal, fmin, torch.full([], float("-inf"))).expand_as(scores)
            if ext_mask is not None:
                scores = scores + ext_mask
            probs = torch.softmax(scores, dim=-1)
            probs = attn.attn_dropout(probs)
            self._put("probs", l, probs)
            self._put("values", l, v)
            return torch.matmul(probs, v), probs
        return _attn

    @torch.no_grad()
    def run(self, ids, **cfg):
        self.cfg = cfg
        self.rec = {}
        x = torch.tensor([ids])
        logits = self.model(x, torch.ones_like(x))[0, -1]
        rec, self.cfg, self.rec = self.rec, {}, {}
        rec["logits"] = logits.detach().clone()
        return rec


def order(scores):
    """Token order: descending score, ties to the lower id (numpy, on the float32 scores)."""
    s = scores.detach().numpy()
    return np.lexsort((np.arange(s.shape[0]), -s))


def rank_of(scores, t):
    return int((scores > scores[t]).sum())


def top_info(scores, t):
    o = order(scores)
    s = scores.detach().numpy()
    top1 = int(o[0])
    return {"top1": top1, "event": int(top1 == t), "tie": bool(s[o[0]] == s[o[1]]),
            "margin": float(s[o[0]] - s[o[1]]), "target_rank": rank_of(scores, t)}


def main():
    t0 = time.time()
    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    tok = WordTok(os.path.join(MODEL_DIR, "tokenizer.json"))
    id2str = {i: s for s, i in tok.vocab.items()}
    facts = json.load(open(os.path.join(MODEL_DIR, "facts.json")))
    attributes = json.load(open(os.path.join(MODEL_DIR, "attributes.json")))
    model = load_model(os.path.join(MODEL_DIR, "model.onnx"))
    L, H = len(model.transformer.h), model.config.n_head
    dh = model.config.n_embd // H
    E = model.transformer.wte.weight.detach()
    ln_f = model.transformer.ln_f
    assert E.shape[0] == len(id2str)
    probe = Probe(model)

    def emb(x):
        return x @ E.T

    def lens(x):
        with torch.no_grad():
            return ln_f(x) @ E.T

    def clean_strings(strings, lower):
        out = []
        for c in strings:
            cs = c.strip()
            if (cs.lower() if lower else cs) in NLTK_ENGLISH_STOPWORDS or len(cs) < MIN_LENGTH:
                continue
            out.append(c)
        return out

    def attr_set(subject):
        toks = [id2str[i] for a in attributes[subject] for (i, _, _) in tok.encode_with_offsets(a)]
        return set(clean_strings(list(dict.fromkeys(toks)), lower=False))

    def attr_rate(vec, A):
        cand = [int(i) for i in order(emb(vec))[:CANDIDATES]]
        kept_ids = []
        for i in cand:
            if clean_strings([id2str[i]], lower=True):
                kept_ids.append(i)
                if len(kept_ids) == KEEP:
                    break
        if not kept_ids:
            return None, None
        kept = [id2str[i] for i in kept_ids]
        return 100.0 * len(set(kept) & A) / len(kept), kept_ids

    out_facts = []
    pairs = []
    for fact_index, fc in enumerate(facts):
        if len(out_facts) == N_FACTS:
            break
        rr = fc["requested_rewrite"]
        prompt = rr["prompt"].replace("{}", rr["subject"])
        toks = tok.encode_with_offsets(prompt)
        ids = [x[0] for x in toks]
        n = len(ids)
        s, e = subject_range(toks, prompt, rr["subject"])
        clean = probe.run(ids)
        logits = clean["logits"]
        t = int(order(logits)[0])
        assert t == int(torch.argmax(logits))
        if t != int(rr["target_true"]["id"]):
            continue
        p0 = float(torch.softmax(logits, -1)[t])
        subject = list(range(s, e))
        nonsubject = [q for q in range(n - 1) if not (s <= q < e)]
        pos = {"subject_first": s, "subject_last": e - 1, "subject_next": e if e <= n - 1 else None, "last": n - 1}
        sets = {"subject": subject, "subject_last": [e - 1], "nonsubject": nonsubject,
                "nonsubject+last": sorted(set(nonsubject) | {n - 1}), "last": [n - 1]}
        A = attr_set(rr["subject"])
        hid = clean["hidden"]
        assert len(hid) == L + 1
        # consistency of the hooks with the model's own forward
        assert torch.allclose(ln_f(hid[L][0, -1]) @ E.T, logits, atol=1e-5)
        row = {"case_id": fc["case_id"], "prompt": prompt, "subject": rr["subject"], "input_ids": ids, "n_tokens": n,
               "subject_range": [s, e], "positions": {**pos, "subject": subject, "nonsubject": nonsubject},
               "t": t, "p0": p0, "logits_top5": [int(i) for i in order(logits)[:LENS_K]]}

        # (a) attributes rate on the clean run
        ar, kept = {}, {}
        for pname in AR_POSITIONS:
            ar[pname], kept[pname] = [], []
            for h in range(L + 1):
                if pos[pname] is None:
                    r, k = None, None
                else:
                    r, k = attr_rate(hid[h][0, pos[pname]], A)
                ar[pname].append(r)
                kept[pname].append(k)
        row["attributes_rate"] = ar
        row["attributes_kept"] = kept

        # (b) sublayer knockout
        sk = {"none": ar["subject_last"][SUBLAYER_HIDDEN]}
        for mode in SUBLAYER_MODES:
            sk[mode] = []
            for start in SUBLAYER_STARTS:
                layers = list(range(start, min(start + 1, SUBLAYER_TOP) + 1))
                rec = probe.run(ids, **{mode: layers})
                sk[mode].append(attr_rate(rec["hidden"][SUBLAYER_HIDDEN][0, e - 1], A)[0])
        row["sublayer_knockout"] = sk

        # (c) extraction on the clean run
        ex = {"attention": {}, "mlp": {}, "heads": {"top1": [], "target_rank": []},
              "hidden_subject_last_target_rank": [], "attention_weight_subject_to_last": []}
        for kind in ("attention", "mlp"):
            infos = [top_info(emb(clean[kind][l][0, n - 1]), t) for l in range(L)]
            for key in infos[0]:
                ex[kind][key] = [x[key] for x in infos]
        for l in range(L):
            blk = model.transformer.h[l].attn
            W, b = blk.c_proj.weight.detach(), blk.c_proj.bias.detach()
            P, V = clean["probs"][l][0], clean["values"][l][0]     # [H, N, N], [H, N, dh]
            shares = [(P[h, n - 1] @ V[h]) @ W[h * dh:(h + 1) * dh] for h in range(H)]
            assert torch.allclose(sum(shares) + b, clean["attention"][l][0, n - 1], atol=1e-5)
            sc = [emb(x) for x in shares]
            ex["heads"]["top1"].append([int(order(x)[0]) for x in sc])
            ex["heads"]["target_rank"].append([rank_of(x, t) for x in sc])
            ex["hidden_subject_last_target_rank"].append(rank_of(emb(hid[l + 1][0, e - 1]), t))
            Pd = P.double()
            ex["attention_weight_subject_to_last"].append(
                float(sum(sum(Pd[h, n - 1, k] for k in subject) for h in range(H)) / H))
        row["extraction"] = ex

        # (d) control A: block last <- set at layer l only, propagated
        ca = {}
        for sname in CONTROL_A_SETS:
            ca[sname] = {"event": [], "target_rank": []}
            for l in range(L):
                edges = [(n - 1, k) for k in sets[sname]]
                rec = probe.run(ids, block={l: edges})
                info = top_info(emb(rec["attention"][l][0, n - 1]), t)
                ca[sname]["event"].append(info["event"])
                ca[sname]["target_rank"].append(info["target_rank"])
        row["control_a"] = ca

        # (e) control B: patch block l's input at the subject positions with clean hidden src
        cb = {}
        for src in CONTROL_B_SOURCES:
            cb[str(src)] = {"event": [], "p": []}
            for l in range(L):
                rec = probe.run(ids, patch=(l, subject, hid[src]))
                cb[str(src)]["event"].append(top_info(emb(rec["attention"][l][0, n - 1]), t)["event"])
                cb[str(src)]["p"].append(float(torch.softmax(rec["logits"], -1)[t]))
                if src == l:
                    assert torch.equal(rec["logits"], logits)
        row["control_b"] = cb

        # (f) logit lens
        row["logit_lens"] = {
            "embedding": [[int(i) for i in order(emb(hid[h][0, n - 1]))[:LENS_K]] for h in range(L + 1)],
            "final_norm_unembedding": [[int(i) for i in order(lens(hid[h][0, n - 1]))[:LENS_K]]
                                       for h in range(L + 1)],
        }
        assert row["logit_lens"]["final_norm_unembedding"][L] == row["logits_top5"]

        # (g) control A, local form: the notebook's recomputation at one layer from the clean P and V
        local_sets = {
            "subject": subject, "last": [n - 1], "subject_last": [e - 1],
            "subject_last + last": sorted({e - 1, n - 1}), "nonsubject + last": nonsubject + [n - 1],
            "nonsubject": nonsubject,
            "all - [0]": [q for q in range(n) if q != 0], "all - last": list(range(n - 1)),
            "all - subject_last": [q for q in range(n) if q != e - 1],
            "all - (subject_last + last)": [q for q in range(n) if q not in (e - 1, n - 1)],
            "all": list(range(n)),
        }
        assert tuple(local_sets) == LOCAL_SETS
        loc = {m: {k: {"event": [], "target_rank": [], "tie": []} for k in LOCAL_SETS} for m in LOCAL_MODES}
        for l in range(L):
            c_proj = model.transformer.h[l].attn.c_proj
            val = clean["c_attn_value"][l]                      # [H, N, dh]
            assert torch.equal(val, clean["values"][l][0])
            weight = clean["probs"][l][0][:, n - 1, :].unsqueeze(1)  # [H, 1, N]

            def rebuild(w):
                a = torch.matmul(w, val)                         # [H, 1, dh]
                a = a.permute(1, 0, 2).contiguous().view(1, H * dh)
                return torch.addmm(c_proj.bias, a, c_proj.weight).squeeze()

            assert torch.allclose(rebuild(weight), clean["attention"][l][0, n - 1], atol=1e-5)
            for sname, removed in local_sets.items():
                kept = [q for q in range(n) if q not in removed]
                # renormalise: removed weights 0, the rest divided by their sum (per head)
                w = weight.clone()
                w[:, :, removed] = 0
                total = w.sum(-1, keepdim=True)
                w = torch.where(total > 0, w / torch.where(total > 0, total, torch.ones_like(total)), torch.zeros_like(w))
                ws = {"renormalise": w}
                # paper_resoftmax: the notebook's cell, literally
                if not kept:
                    w = torch.zeros_like(weight)
                elif sname.startswith("all - "):
                    w = torch.zeros_like(weight) - 1e6
                    for q in kept:
                        w[:, :, q] = weight[:, :, q]
                    w = torch.softmax(w, dim=-1)
                else:
                    w = weight.detach().clone()
                    for q in removed:
                        w[:, :, q] = -1e6
                    w = torch.softmax(w, dim=-1)
                ws["paper_resoftmax"] = w
                for mode in LOCAL_MODES:
                    info = top_info(emb(rebuild(ws[mode])), t)
                    for key in ("event", "target_rank", "tie"):
                        loc[mode][sname][key].append(info[key])
        row["control_a_local"] = loc

        # (h) embedding baseline: the mean of the subject tokens' wte rows (no position embedding)
        subject_mean = E[ids[s:e]].mean(dim=0)
        row["attributes_rate_embedding"] = attr_rate(subject_mean, A)[0]
        row["embedding_baseline"] = {"top5": [int(i) for i in order(emb(subject_mean))[:LENS_K]],
                                     "target_rank": rank_of(emb(subject_mean), t)}

        # (j) the L2 norm of each hidden state (the `norm` probe)
        norm_positions = {"subject_last": [e - 1], "last": [n - 1], "subject": subject}
        row["hidden_norm"] = {p: [sum(float(torch.linalg.vector_norm(hid[h][0, q])) for q in qs) / len(qs)
                                  for h in range(L + 1)]
                              for p, qs in norm_positions.items()}
        assert tuple(row["hidden_norm"]) == NORM_POSITIONS

        # (i) patching from a corrupted prompt (the same template, another subject, same token count)
        row["patch_corrupted"] = None
        for j in range(fact_index + CORRUPTED_STEP, len(facts), CORRUPTED_STEP):
            other = facts[j]["requested_rewrite"]["subject"]
            if other == rr["subject"]:
                continue
            cprompt = rr["prompt"].replace("{}", other)
            cids = [x[0] for x in tok.encode_with_offsets(cprompt)]
            if len(cids) != n:
                continue
            csrc = probe.run(cids)["hidden"][CORRUPTED_SOURCE]
            pc = {"corrupted_prompt": cprompt, "event": [], "p": []}
            for l in range(L):
                rec = probe.run(ids, patch=(l, subject, csrc))
                pc["event"].append(top_info(emb(rec["attention"][l][0, n - 1]), t)["event"])
                pc["p"].append(float(torch.softmax(rec["logits"], -1)[t]))
            row["patch_corrupted"] = pc
            pairs.append({"prompt": prompt, "subject": rr["subject"], "target": rr["target_true"]["str"],
                          "corrupted_prompt": cprompt, "case_id": fc["case_id"]})
            break
        out_facts.append(row)

    def mean(xs):
        xs = [x for x in xs if x is not None]
        return sum(xs) / len(xs) if xs else None

    def per_example(rows_events):
        return mean([float(any(ev)) for ev in rows_events])

    F = out_facts
    summary = {
        "attributes_rate": {p: [mean([f["attributes_rate"][p][h] for f in F]) for h in range(L + 1)]
                            for p in AR_POSITIONS},
        "sublayer_knockout": {"none": mean([f["sublayer_knockout"]["none"] for f in F]),
                              **{m: [mean([f["sublayer_knockout"][m][i] for f in F]) for i in range(len(SUBLAYER_STARTS))]
                                 for m in SUBLAYER_MODES}},
        "extraction_rate": {k: [mean([f["extraction"][k]["event"][l] for f in F]) for l in range(L)]
                            for k in ("attention", "mlp")},
        "extraction_per_example": {k: per_example([f["extraction"][k]["event"] for f in F])
                                   for k in ("attention", "mlp")},
        "control_a_rate": {s_: [mean([f["control_a"][s_]["event"][l] for f in F]) for l in range(L)]
                           for s_ in CONTROL_A_SETS},
        "control_a_per_example": {s_: per_example([f["control_a"][s_]["event"] for f in F]) for s_ in CONTROL_A_SETS},
        "control_b_rate": {str(s_): [mean([f["control_b"][str(s_)]["event"][l] for f in F]) for l in range(L)]
                           for s_ in CONTROL_B_SOURCES},
        "control_b_per_example": {str(s_): per_example([f["control_b"][str(s_)]["event"] for f in F])
                                  for s_ in CONTROL_B_SOURCES},
        "control_a_local_rate": {m: {s_: [mean([f["control_a_local"][m][s_]["event"][l] for f in F]) for l in range(L)]
                                     for s_ in LOCAL_SETS} for m in LOCAL_MODES},
        "control_a_local_per_example": {m: {s_: per_example([f["control_a_local"][m][s_]["event"] for f in F])
                                            for s_ in LOCAL_SETS} for m in LOCAL_MODES},
    }
    doc = {
        "semantics": SEMANTICS,
        "model": "generated/tiny-gpt2/model.onnx",
        "layers": L, "heads": H, "vocab": int(E.shape[0]), "n_facts": len(F),
        "attributes_rate_params": {"candidates": CANDIDATES, "keep": KEEP, "min_length": MIN_LENGTH,
                                   "stopwords": "english (NLTK, 179 words)", "positions": list(AR_POSITIONS),
                                   "hidden": list(range(L + 1))},
        "sublayer": {"hidden": SUBLAYER_HIDDEN, "position": "subject_last", "starts": list(SUBLAYER_STARTS),
                     "windows": [list(range(st, min(st + 1, SUBLAYER_TOP) + 1)) for st in SUBLAYER_STARTS],
                     "modes": list(SUBLAYER_MODES)},
        "control_a_sets": list(CONTROL_A_SETS),
        "control_b_sources": [str(x) for x in CONTROL_B_SOURCES],
        "control_a_local_sets": list(LOCAL_SETS),
        "control_a_local_modes": list(LOCAL_MODES),
        "summary": summary,
        "facts": F,
        "patch_corrupted": PATCH_CORRUPTED,
    }
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "probes.json")
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    with open(os.path.join(OUT, "pairs.jsonl"), "w") as f:
        for pr in pairs:
            f.write(json.dumps(pr) + "\n")
    readme = os.path.join(OUT, "README.md")
    text = open(readme).read() if os.path.exists(readme) else ""
    i = text.find(PROBES_MARKER)
    if i >= 0:
        text = text[:i]
    with open(readme, "w") as f:
        f.write(text.rstrip("\n") + "\n" + README_SECTION.format(n=len(F)))
    print(f"{len(F)} facts, {os.path.getsize(path)} bytes, {time.time() - t0:.1f} s")
    for k, v in summary.items():
        print(k, json.dumps(v, default=lambda x: x)[:400])


if __name__ == "__main__":
    main()
