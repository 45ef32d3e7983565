"""Expected values computed by transformers itself, one prompt per forward pass (batch 1)."""
import torch

import families as F
from knockout import knockout

# Token-id prompts (ids < 128, the shared vocabulary). The last one is right-padded: attention_mask
# zeros at the end, pad id 0. "last" is the last position whose attention_mask is 1: the position the
# knockout / hidden-state / sublayer values are recorded at.
PROMPTS = [
    dict(name="p5", input_ids=[17, 42, 99, 5, 120], attention_mask=[1] * 5),
    dict(name="p7", input_ids=[3, 41, 59, 26, 53, 58, 97], attention_mask=[1] * 7),
    dict(name="p8", input_ids=[110, 8, 77, 123, 64, 31, 9, 80], attention_mask=[1] * 8),
    dict(name="p9", input_ids=[12, 34, 56, 78, 90, 21, 43, 65, 87], attention_mask=[1] * 9),
    dict(name="p8pad", input_ids=[101, 102, 33, 44, 55, 66, 0, 0], attention_mask=[1, 1, 1, 1, 1, 1, 0, 0]),
]
for _p in PROMPTS:
    _p["last"] = max(i for i, m in enumerate(_p["attention_mask"]) if m == 1)


def r7(x):
    """Round a tensor to 7 significant digits, as nested lists of floats."""
    x = x.detach().to(torch.float64)
    if x.dim() == 0:
        return float(f"{x.item():.7g}")
    return [r7(v) for v in x] if x.dim() > 1 else [float(f"{v:.7g}") for v in x.tolist()]


def _tensors(p):
    return torch.tensor([p["input_ids"]]), torch.tensor([p["attention_mask"]])


def forward(model, p, **kw):
    ids, am = _tensors(p)
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=am, use_cache=False, **kw)


def clean_logits(model):
    out = []
    for p in PROMPTS:
        out.append(dict(prompt=p["name"], logits=r7(forward(model, p).logits[0].float())))
    return out


def source_sets(p):
    t = p["last"]
    return {"subject": [0, 1], "previous": [t - 1]}


def knockout_cases(family, model):
    n_layers = model.config.num_hidden_layers
    n_heads = model.config.num_attention_heads
    cases, dps, rel = [], [], []
    for p in PROMPTS:
        t = p["last"]
        clean = forward(model, p).logits[0, t].float()
        clean_lp = torch.log_softmax(clean, -1)
        top = int(clean.argmax())
        p_clean = float(clean_lp[top].exp())
        for sname, srcs in source_sets(p).items():
            plans = [(f"layer{l}", {l: None}) for l in range(n_layers)]
            plans.append(("all_layers", {l: None for l in range(n_layers)}))
            for l in (n_layers - 1,):
                for h in range(n_heads):
                    plans.append((f"layer{l}_head{h}", {l: [h]}))
            for cname, layers in plans:
                plan = {"layers": layers, "edges": [(t, s) for s in srcs]}
                with knockout(model, family, plan) as st:
                    logits = forward(model, p).logits[0, t].float()
                    assert st["calls"] == n_layers, st
                lp = torch.log_softmax(logits, -1)
                pk = float(lp[top].exp())
                dps.append(abs(pk - p_clean))
                rel.append(abs(pk - p_clean) / p_clean)
                cases.append(dict(prompt=p["name"], sources=sname, case=cname, target_position=t,
                                  source_positions=srcs,
                                  layers={str(k): v for k, v in layers.items()},
                                  clean_top1=top, p_top1_clean=float(f"{p_clean:.7g}"),
                                  p_top1=float(f"{pk:.7g}"), top1=int(logits.argmax()),
                                  logsoftmax_last=r7(lp)))
    # sanity: a plan that blocks nothing reproduces the clean forward bit for bit
    p = PROMPTS[0]
    ref = forward(model, p).logits
    with knockout(model, family, {"layers": {l: None for l in range(n_layers)}, "edges": []}):
        same = torch.equal(forward(model, p).logits, ref)
    assert same, "empty knockout differs from clean forward"
    return dict(cases=cases, mean_abs_dp=float(f"{sum(dps) / len(dps):.4g}"),
                mean_rel_dp=float(f"{sum(rel) / len(rel):.4g}"),
                max_abs_dp=float(f"{max(dps):.4g}"),
                mean_abs_dp_all_layers_subject=float(f"{_mean([abs(c['p_top1'] - c['p_top1_clean']) for c in cases if c['case'] == 'all_layers' and c['sources'] == 'subject']):.4g}"))


def _mean(xs):
    return sum(xs) / max(len(xs), 1)


def _module(model, path):
    return F._get(model, path)


def hidden_and_sublayers(family, model):
    layers_path, attn_attr, mlp_attr, norm_path = F.PATHS[family]
    layers = _module(model, layers_path)
    # sandwich / post norms (Gemma 2; OLMo 2's only per-layer norms sit after the sublayers)
    extra = ["post_attention_layernorm", "post_feedforward_layernorm"] if family in ("gemma2", "olmo2") else []
    res = []
    for p in PROMPTS:
        t = p["last"]
        rec = {"attn": {}, "mlp": {}, "final_norm_in": None, "final_norm_out": None}
        for e in extra:
            rec[e] = {}
        hooks = []

        def grab(store, key):
            def h(mod, inp, out):
                o = out[0] if isinstance(out, tuple) else out
                store[key] = o[0, t].float()
            return h
        for i, layer in enumerate(layers):
            hooks.append(F._get(layer, attn_attr).register_forward_hook(grab(rec["attn"], i)))
            hooks.append(F._get(layer, mlp_attr).register_forward_hook(grab(rec["mlp"], i)))
            for e in extra:
                hooks.append(getattr(layer, e).register_forward_hook(grab(rec[e], i)))
        norm = _module(model, norm_path)
        hooks.append(norm.register_forward_pre_hook(lambda m, a: rec.__setitem__("final_norm_in", a[0][0, t].float())))
        hooks.append(norm.register_forward_hook(lambda m, a, o: rec.__setitem__("final_norm_out", o[0, t].float())))
        try:
            out = forward(model, p, output_hidden_states=True)
        finally:
            for h in hooks:
                h.remove()
        hs = [h[0, t].float() for h in out.hidden_states]
        entry = dict(prompt=p["name"], position=t,
                     hidden_states=[r7(h) for h in hs],
                     last_hidden_is_after_final_norm=bool(torch.allclose(hs[-1], rec["final_norm_out"], atol=1e-6)),
                     final_norm_input=r7(rec["final_norm_in"]),
                     final_norm_output=r7(rec["final_norm_out"]),
                     attn_out=[r7(rec["attn"][i]) for i in range(len(layers))],
                     mlp_out=[r7(rec["mlp"][i]) for i in range(len(layers))])
        for e in extra:
            entry[e + "_out"] = [r7(rec[e][i]) for i in range(len(layers))]
        res.append(entry)
    return res
