"""onnxruntime (Python, CPUExecutionProvider) checks of every export against transformers.

Errors: max_abs_err = max |ort - transformers| over every compared logit; max_rel_err = max_abs_err /
max |transformers logits| (over the same entries).
"""
import numpy as np
import onnxruntime as ort
import torch

from expected import PROMPTS


def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def _err(o, r):
    o = np.asarray(o, np.float64)
    r = np.asarray(r, np.float64)
    a = float(np.abs(o - r).max())
    return a, a / float(np.abs(r).max())


class Acc:
    def __init__(self):
        self.a = 0.0
        self.r = 0.0
        self.nan = False

    def add(self, o, r):
        if not np.all(np.isfinite(o)):
            self.nan = True
        a, rr = _err(o, r)
        self.a = max(self.a, a) if np.isfinite(a) else float("inf")
        self.r = max(self.r, rr) if np.isfinite(rr) else float("inf")


def verify_plain(path, ref_logits):
    """ref_logits: {prompt name: np [T, V]} from transformers (same dtype as the export)."""
    s = session(path)
    acc, accb = Acc(), Acc()
    for p in PROMPTS:
        o = s.run(["logits"], {"input_ids": np.array([p["input_ids"]], np.int64),
                               "attention_mask": np.array([p["attention_mask"]], np.int64)})[0]
        acc.add(o[0].astype(np.float32), ref_logits[p["name"]])
    # one batched run: all prompts right-padded to the longest; compare the unpadded positions
    L = max(len(p["input_ids"]) for p in PROMPTS)
    ids = np.zeros((len(PROMPTS), L), np.int64)
    am = np.zeros((len(PROMPTS), L), np.int64)
    for i, p in enumerate(PROMPTS):
        ids[i, :len(p["input_ids"])] = p["input_ids"]
        am[i, :len(p["input_ids"])] = p["attention_mask"]
    o = s.run(["logits"], {"input_ids": ids, "attention_mask": am})[0]
    for i, p in enumerate(PROMPTS):
        n = p["last"] + 1
        accb.add(o[i, :n].astype(np.float32), ref_logits[p["name"]][:n])
    return dict(max_abs_err=acc.a, max_rel_err=acc.r, batched_max_abs_err=accb.a, batched_max_rel_err=accb.r,
                nonfinite=acc.nan or accb.nan)


def _hf_cache(model, ids):
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), use_cache=True)
    kv = []
    for layer in out.past_key_values.layers:
        kv += [layer.keys.numpy(), layer.values.numpy()]
    return out.logits[0].float().numpy(), kv


def verify_past(path, model, ref_logits, n_new=2, merged=False):
    """Optimum layout: the past of the first T-2 tokens comes from transformers (use_cache=True);
    the graph gets the last 2 tokens + that past; logits vs the clean reference, presents vs
    transformers' cache of the whole prompt. Merged graphs: also the use_cache_branch=False branch on
    the whole prompt (past inputs fed with length-1 dummies, unused by that branch)."""
    s = session(path)
    names = [i.name for i in s.get_inputs()]
    dt = np.float16 if next(model.parameters()).dtype == torch.float16 else np.float32
    acc, accp, accn = Acc(), Acc(), Acc()
    n_layers = model.config.num_hidden_layers
    for p in PROMPTS:
        ids = p["input_ids"][:p["last"] + 1]
        T = len(ids)
        k = T - n_new
        _, past = _hf_cache(model, ids[:k])
        _, full = _hf_cache(model, ids)
        feed = {"input_ids": np.array([ids[k:]], np.int64), "attention_mask": np.ones((1, T), np.int64),
                "position_ids": np.arange(k, T, dtype=np.int64)[None]}
        for i in range(n_layers):
            feed[f"past_key_values.{i}.key"] = past[2 * i]
            feed[f"past_key_values.{i}.value"] = past[2 * i + 1]
        if merged:
            feed["use_cache_branch"] = np.array([True])
        feed = {k2: v for k2, v in feed.items() if k2 in names}
        outs = s.run(None, feed)
        acc.add(outs[0][0].astype(np.float32), ref_logits[p["name"]][k:T])
        for j in range(2 * n_layers):
            accp.add(outs[1 + j].astype(np.float32), full[j].astype(np.float32))
        if merged:
            feed = {"input_ids": np.array([ids], np.int64), "attention_mask": np.ones((1, T), np.int64),
                    "position_ids": np.arange(T, dtype=np.int64)[None], "use_cache_branch": np.array([False])}
            for i in range(n_layers):
                shp = list(past[2 * i].shape)
                shp[2] = 1
                feed[f"past_key_values.{i}.key"] = np.zeros(shp, dt)
                feed[f"past_key_values.{i}.value"] = np.zeros(shp, dt)
            outs = s.run(None, feed)
            accn.add(outs[0][0].astype(np.float32), ref_logits[p["name"]][:T])
            for j in range(2 * n_layers):
                accn.add(outs[1 + j].astype(np.float32), full[j].astype(np.float32))
    r = dict(max_abs_err=acc.a, max_rel_err=acc.r, present_max_abs_err=accp.a, nonfinite=acc.nan or accp.nan)
    if merged:
        r["no_cache_branch_max_abs_err"] = accn.a
        r["nonfinite"] = r["nonfinite"] or accn.nan
    return r
