"""Paper measurements (Geva et al. 2023) on a model from gpt2.py / gptj.py, one prompt at a time.

Regenerate with: (library module) used by make_default_model.py / make_gptj_model.py for the model cards

Hidden-state convention follows HF: hidden[0] = embeddings, hidden[l] = output of block l-1, and
hidden[L] = ln_f(output of the last block).
"""
import numpy as np
import torch

from . import knowledge as K

# NLTK's English stopword list (the subset that can matter for this vocabulary plus the usual ones)
STOPWORDS = set("""i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she
her hers herself it its itself they them their theirs themselves what which who whom this that these those am is
are was were be been being have has had having do does did doing a an the and but if or because as until while of
at by for with about against between into through during before after above below to from up down in out on off
over under again further then once here there when where why how all any both each few more most other some such
no nor not only own same so than too very s t can will just don should now""".split())


def prompt_info(tok, prompt, subject):
    ids = tok.encode(prompt)
    s, e = K.find_token_range(prompt, subject)
    n = len(ids)
    return {"ids": ids, "range": (s, e), "n": n,
            "subject": list(range(s, e)),
            "nonsubject": [i for i in range(n - 1) if not (s <= i < e)],
            "last": [n - 1]}


def window_layers(l, k, L):
    return list(range(max(0, l - k // 2), min(L, l - (-k // 2))))


def layers_of(model):
    if hasattr(model, "transformer"):
        return model.transformer.h
    raise ValueError


def clear(model):
    for b in layers_of(model):
        b.attn.block = None
        b.attn.uniform = False
        b.mlp.zero_fc = False


@torch.no_grad()
def run(model, ids, hidden=False):
    x = torch.tensor([ids])
    return model(x, torch.ones_like(x), return_hidden=hidden)


@torch.no_grad()
def knockout_curve(model, info, k):
    """rel. change (%) of p(clean top-1) when edges last->set are blocked in a k-layer window."""
    L = len(layers_of(model))
    clear(model)
    logits = run(model, info["ids"])[0, -1]
    probs = torch.softmax(logits, -1)
    top = int(logits.argmax())
    p0 = float(probs[top])
    n = info["n"]
    out = {}
    for name in ("subject", "nonsubject", "last"):
        cols = info[name]
        curve = []
        for l in range(L):
            if not cols:
                curve.append(0.0)
                continue
            blk = torch.zeros(n, n, dtype=torch.bool)
            blk[n - 1, cols] = True
            for j in window_layers(l, k, L):
                layers_of(model)[j].attn.block = blk
            p = float(torch.softmax(run(model, info["ids"])[0, -1], -1)[top])
            clear(model)
            curve.append((p - p0) / p0 * 100)
        out[name] = curve
    return top, p0, out


def clean_top(tok, scores, m, k=500):
    order = torch.argsort(-scores)[:k].tolist()
    out = []
    for i in order:
        w = tok.inv.get(i)
        if w is None:  # padded embedding rows (GPT-J style) have no token
            continue
        if w in tok.SPECIALS or w.strip().lower() in STOPWORDS or len(w.strip()) <= 2:
            continue
        out.append(w)
        if len(out) == m:
            break
    return out


def attr_rate(tok, E, h, attrs, m):
    top = clean_top(tok, h @ E.T, m)
    return 100.0 * len(set(top) & set(attrs)) / max(1, len(top))


@torch.no_grad()
def attributes_rate(model, tok, E, info, attrs, m=10):
    """AR per hidden-state index for positions subject-first/last, subject-subsequent, input-last."""
    clear(model)
    _, hid = run(model, info["ids"], hidden=True)
    s, e = info["range"]
    pos = {"subj_first": s, "subj_last": e - 1, "subj_subseq": e if e < info["n"] - 1 else None,
           "input_last": info["n"] - 1}
    out = {}
    for name, p in pos.items():
        if p is None:
            continue
        out[name] = [attr_rate(tok, E, hid[l][0, p], attrs, m) for l in range(len(hid))]
    return out


@torch.no_grad()
def sublayer_knockout_ar(model, tok, E, info, attrs, measure_block, width, m=10):
    """AR at hidden[measure_block+1] (subject-last) when MLP (c_fc pre-acts zeroed) or MHSA (notebook's
    uniform-attention 'opposite' mask) are cancelled in layers range(start, min(start+width, measure_block))."""
    p = info["range"][1] - 1
    res = {"none": None, "mlp": [], "attn": []}
    clear(model)
    _, hid = run(model, info["ids"], hidden=True)
    res["none"] = attr_rate(tok, E, hid[measure_block + 1][0, p], attrs, m)
    for kind in ("mlp", "attn"):
        for start in range(measure_block):
            for j in range(start, min(start + width, measure_block)):
                b = layers_of(model)[j]
                if kind == "mlp":
                    b.mlp.zero_fc = True
                else:
                    b.attn.uniform = True
            _, hid = run(model, info["ids"], hidden=True)
            clear(model)
            res[kind].append(attr_rate(tok, E, hid[measure_block + 1][0, p], attrs, m))
    return res


@torch.no_grad()
def extraction_events(model, E, info, target):
    """Per layer: is `target` the top-1 of the MHSA / MLP update at the last position projected with E^T?"""
    clear(model)
    blocks = layers_of(model)
    store = {}
    hs = []
    for i, b in enumerate(blocks):
        hs.append(b.attn.register_forward_hook(lambda mod, inp, out, i=i: store.__setitem__(("attn", i), out[0, -1])))
        hs.append(b.mlp.register_forward_hook(lambda mod, inp, out, i=i: store.__setitem__(("mlp", i), out[0, -1])))
    try:
        run(model, info["ids"])
    finally:
        for h in hs:
            h.remove()
    res = {"attn": [], "mlp": []}
    for kind in res:
        for i in range(len(blocks)):
            sc = store[(kind, i)] @ E.T
            res[kind].append(int((sc > sc[target]).sum()) == 0)
    return res


def summarize(model, tok, kb, facts, E, measure_block, width, m=10, ks=(3,)):
    """facts: list of (subject, prompt, target_id, attrs). Returns the card's measurement dict."""
    L = len(layers_of(model))
    known = []
    for subj, prompt, tgt, attrs in facts:
        info = prompt_info(tok, prompt, subj)
        clear(model)
        top = int(run(model, info["ids"])[0, -1].argmax())
        if top == tgt:
            known.append((subj, prompt, tgt, attrs, info))
    out = {"n_facts": len(facts), "n_known": len(known), "knockout": {}}
    for k in ks:
        sums = {n: np.zeros(L) for n in ("subject", "nonsubject", "last")}
        for _, _, _, _, info in known:
            _, _, c = knockout_curve(model, info, k)
            for n in sums:
                sums[n] += np.array(c[n])
        out["knockout"][f"k{k}"] = {n: (v / max(1, len(known))).round(2).tolist() for n, v in sums.items()}
    ar = {}
    cnt = {}
    for _, _, _, attrs, info in known:
        r = attributes_rate(model, tok, E, info, attrs, m)
        for n, v in r.items():
            ar[n] = ar.get(n, 0) + np.array(v)
            cnt[n] = cnt.get(n, 0) + 1
    out["attributes_rate"] = {"m": m, "index": "hidden_states[l], l=0 embeddings .. L (ln_f applied)",
                              **{n: (ar[n] / cnt[n]).round(2).tolist() for n in ar}}
    for n in ("subj_first", "subj_last", "subj_subseq", "input_last"):
        out["attributes_rate"].setdefault(n, [0.0] * (L + 1))
    sk = {"none": 0.0, "mlp": np.zeros(measure_block), "attn": np.zeros(measure_block)}
    for _, _, _, attrs, info in known:
        r = sublayer_knockout_ar(model, tok, E, info, attrs, measure_block, width, m)
        sk["none"] += r["none"]
        sk["mlp"] += np.array(r["mlp"])
        sk["attn"] += np.array(r["attn"])
    nk = max(1, len(known))
    out["sublayer_knockout"] = {"measure": f"AR at subject-last, hidden_states[{measure_block + 1}]",
                                "window": f"layers range(start, min(start+{width}, {measure_block}))",
                                "none": round(sk["none"] / nk, 2),
                                "mlp_by_start": (sk["mlp"] / nk).round(2).tolist(),
                                "attn_by_start": (sk["attn"] / nk).round(2).tolist()}
    ev = {"attn": np.zeros(L), "mlp": np.zeros(L)}
    any_ev = {"attn": 0, "mlp": 0}
    for _, _, tgt, _, info in known:
        r = extraction_events(model, E, info, tgt)
        for kind in ev:
            ev[kind] += np.array(r[kind], dtype=float)
            any_ev[kind] += int(any(r[kind]))
    out["extraction"] = {"per_layer_rate_attn": (ev["attn"] / nk).round(3).tolist(),
                         "per_layer_rate_mlp": (ev["mlp"] / nk).round(3).tolist(),
                         "per_example_rate_attn": round(any_ev["attn"] / nk, 3),
                         "per_example_rate_mlp": round(any_ev["mlp"] / nk, 3)}
    clear(model)
    return out
