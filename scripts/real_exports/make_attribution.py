"""Gradient attributions computed by PyTorch autograd on transformers' own model classes.

For the zoo's GPT-2, GPT-J and Llama (families.build: the exact seeded models the exports were
written from) and the prompts of expected.py, writes generated/real/<family>/attribution.json:

  y = the log-probability | probability | logit of the clean top-1 token at the prompt's last
      real position (expected.PROMPTS' "last"), read from the model's own logits;
  attribution[l][p] = sum_d h_d * dy/dh_d  ("sum")  or  ||h * dy/dh||_2  ("l2_norm")
      for the hidden states h_0 .. h_L: h_l (l < L) is block l's input as the block receives it (a
      forward pre-hook), h_L the final norm's input (the residual stream after the last block).

Integrated gradients (midpoint rule, `steps` points) of hidden state IG_LAYER with the dataset-mean
baseline b (the mean of the clean h over every real position of every prompt): every position of
h is replaced by b + alpha * (h - b) through a forward pre-hook on the block, and
  ig[p] = sum_d (h - b)_d * mean_alpha dy/dx_d,   y(h) and y(b) recorded for the completeness gap.

Run (from the repo root):  /work/venv-real/bin/python scripts/real_exports/make_attribution.py
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402

import expected as X  # noqa: E402
import families as F  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(ROOT, "generated", "real")
FAMILIES = ["gpt2", "gptj", "llama"]
TARGETS = ["log_probability", "probability", "logit"]
IG_LAYER = 1
IG_STEPS = [8, 64]


def y_of(logits, target, token):
    if target == "logit":
        return logits[token]
    lp = torch.log_softmax(logits, -1)[token]
    return lp if target == "log_probability" else lp.exp()


def run(model, family, p, patch=None):
    """The forward pass of prompt p with hooks: returns (logits at last, [h_0 .. h_L] with grads retained).
    patch = (layer, values [seq, d]) replaces that block's input at every position."""
    layers_path, _, _, norm_path = F.PATHS[family]
    blocks = F._get(model, layers_path)
    states = [None] * (len(blocks) + 1)
    hooks = []

    def pre(i):
        def hook(mod, args, kwargs):
            h = args[0] if args else kwargs["hidden_states"]
            # the weights need no gradient, so the graph is made to start at the embedding output
            # (or at the patched state): a leaf that requires grad
            if patch is not None and patch[0] == i:
                h = patch[1].unsqueeze(0).clone()
            elif i == 0:
                h = h.detach()
            if torch.is_grad_enabled():
                if not h.requires_grad:
                    h.requires_grad_(True)
                h.retain_grad()
            args, kwargs = ((h,) + tuple(args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": h})
            states[i] = h
            return args, kwargs
        return hook

    for i, b in enumerate(blocks):
        hooks.append(b.register_forward_pre_hook(pre(i), with_kwargs=True))
    hooks.append(F._get(model, norm_path).register_forward_pre_hook(pre(len(blocks)), with_kwargs=True))
    ids, am = X._tensors(p)
    try:
        logits = model(input_ids=ids, attention_mask=am, use_cache=False).logits[0, p["last"]].float()
    finally:
        for h in hooks:
            h.remove()
    return logits, states


def attributions(model, family, p, token, target):
    model.zero_grad(set_to_none=True)
    logits, states = run(model, family, p)
    y = y_of(logits, target, token)
    y.backward()
    prod = [(h * h.grad)[0].double() for h in states]
    return float(y.detach()), [X.r7(x.sum(-1)) for x in prod], [X.r7(x.norm(dim=-1)) for x in prod]


def integrated(model, family, p, token, baseline, steps):
    with torch.no_grad():
        _, states = run(model, family, p)
    h = states[IG_LAYER][0].detach()
    b = baseline.expand_as(h)
    total = torch.zeros_like(h, dtype=torch.float64)
    for k in range(steps):
        alpha = (k + 0.5) / steps
        logits, st = run(model, family, p, patch=(IG_LAYER, b + alpha * (h - b)))
        y_of(logits, "log_probability", token).backward()
        total += st[IG_LAYER].grad[0].double()
    ig = ((h - b).double() * total / steps).sum(-1)
    with torch.no_grad():
        y_h = float(y_of(run(model, family, p, patch=(IG_LAYER, h))[0], "log_probability", token))
        y_b = float(y_of(run(model, family, p, patch=(IG_LAYER, b.clone()))[0], "log_probability", token))
    return dict(values=X.r7(ig), y_input=y_h, y_baseline=y_b)


def family_record(family):
    model = F.build(family)
    for prm in model.parameters():
        prm.requires_grad_(False)
    prompts = []
    with torch.no_grad():
        clean = [run(model, family, p) for p in X.PROMPTS]
    # the baseline: the mean clean hidden state IG_LAYER over every real position of every prompt
    real = [st[IG_LAYER][0, : p["last"] + 1] for p, (_, st) in zip(X.PROMPTS, clean)]
    baseline = torch.cat(real).mean(0)
    for p, (logits, _) in zip(X.PROMPTS, clean):
        token = int(logits.argmax())
        entry = dict(prompt=p["name"], input_ids=p["input_ids"], attention_mask=p["attention_mask"], last=p["last"],
                     token=token, targets={})
        for target in TARGETS:
            y, s, l2 = attributions(model, family, p, token, target)
            entry["targets"][target] = dict(y=y, sum=s, l2_norm=l2)
        entry["integrated_gradients"] = {str(n): integrated(model, family, p, token, baseline, n) for n in IG_STEPS}
        prompts.append(entry)
    return dict(family=family, semantics=__doc__, ig_layer=IG_LAYER, ig_baseline=X.r7(baseline), prompts=prompts)


def main():
    for family in FAMILIES:
        rec = family_record(family)
        path = os.path.join(OUT, family, "attribution.json")
        with open(path, "w") as f:
            json.dump(rec, f, separators=(",", ":"))
        print(f"[attribution] {family}: {path} ({os.path.getsize(path)} bytes)", flush=True)


if __name__ == "__main__":
    main()
