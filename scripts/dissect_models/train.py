"""Synthetic-text sampler and training loop shared by the tiny GPT-2 and GPT-J models.

Regenerate with: (library module) used by /usr/bin/python3 scripts/make_default_model.py

Training text (sampled on the fly from a seeded generator, packed into fixed-length rows of 16 tokens
that always start a segment at position 0 -- so most rows hold one segment, some two; loss only on
attribute / trait tokens):
  fact     "<relation paraphrase filled with subject> <attribute> ."      (canonical template 40 %)
  bag      "<subject> <random subset of the subject's attributes+traits, shuffled> ."
           -> the model must recall attributes from the subject tokens alone, AT the last subject
              token (this is what creates subject enrichment)
  bag2     "About <subject> : <bag> ."
  trait    "<subject> is a <t1> and <t2> person ."  / "People describe <subject> as <t1> and <t2> ."
"""
import math
import random
import time

import torch
import torch.nn.functional as F

from . import knowledge as K


class Sampler:
    def __init__(self, kb, tok, seq_len=16, seed=0, mix=(0.4, 0.4, 0.1, 0.1), canon_p=0.4):
        self.kb, self.tok, self.T = kb, tok, seq_len
        self.rng = random.Random(seed)
        self.mix = mix
        self.canon_p = canon_p
        self.rel = K.RELATIONS
        self.enc_cache = {}

    def enc(self, text):
        v = self.enc_cache.get(text)
        if v is None:
            v = self.tok.encode(text)
            self.enc_cache[text] = v
        return v

    def segment(self):
        r = self.rng
        p = r.choice(self.kb["people"])
        s = p["subject"]
        u = r.random()
        ids, mask = [], []
        if u < self.mix[0]:
            rid, canon, paras, _ = r.choice(self.rel)
            tpl = canon if r.random() < self.canon_p else r.choice(paras)
            pre = self.enc(tpl.format(s))
            a = self.enc(p["facts"][rid])
            ids = pre + a + self.enc(".")
            # mask[i] = 1 means: predict ids[i+1] from prefix ..i
            mask = [0] * (len(pre) - 1) + [1] * len(a) + [0, 0]
        elif u < self.mix[0] + self.mix[1] + self.mix[2]:
            attrs = K.attribute_set(p)
            k = len(attrs) if r.random() < 0.6 else r.randint(3, len(attrs))
            bag = r.sample(attrs, k)
            frame = "{s} {bag} ." if u < self.mix[0] + self.mix[1] else "About {s} : {bag} ."
            head = self.enc(frame.split("{bag}")[0].format(s=s).strip())
            b = [self.enc(x)[0] for x in bag]
            ids = head + b + self.enc(".")
            mask = [0] * (len(head) - 1) + [1] * len(b) + [0, 0]
        else:
            frame = r.choice(K.SENTENCE_FRAMES)
            t1, t2 = p["traits"] if r.random() < 0.5 else p["traits"][::-1]
            text = frame.format(s=s, t1=t1, t2=t2)
            ids = self.enc(text)
            tid = {self.enc(t1)[0], self.enc(t2)[0]}
            mask = [1 if (i + 1 < len(ids) and ids[i + 1] in tid) else 0 for i in range(len(ids))]
        return ids, mask

    def row(self):
        ids, mask = [], []
        while True:
            a, m = self.segment()
            if ids and len(ids) + len(a) > self.T:
                break
            ids += a
            mask += m
            if self.rng.random() < 0.1:  # some rows hold a single segment
                break
        ids, mask = ids[: self.T], mask[: self.T]
        pad = self.T - len(ids)
        ids += [self.tok.bos_id] * pad
        mask += [0] * pad
        mask[-1] = 0
        return ids, mask

    def batch(self, n):
        rows = [self.row() for _ in range(n)]
        ids = torch.tensor([r[0] for r in rows], dtype=torch.long)
        mask = torch.tensor([r[1] for r in rows], dtype=torch.float32)
        return ids, mask


def fact_prompts(kb, tok):
    """(subject, relation_id, prompt, target_id) for every KB fact, canonical template."""
    out = []
    for p in kb["people"]:
        for rid, canon, _, _ in K.RELATIONS:
            out.append((p["subject"], rid, canon.format(p["subject"]), tok.encode(p["facts"][rid])[0]))
    return out


@torch.no_grad()
def fact_accuracy(model, kb, tok, bs=256):
    model.eval()
    facts = fact_prompts(kb, tok)
    correct = 0
    # group by length to batch without padding
    by_len = {}
    for f in facts:
        by_len.setdefault(len(tok.encode(f[2])), []).append(f)
    for n, group in by_len.items():
        for i in range(0, len(group), bs):
            g = group[i:i + bs]
            ids = torch.tensor([tok.encode(f[2]) for f in g])
            logits = model(ids, torch.ones_like(ids))
            pred = logits[:, -1].argmax(-1)
            correct += sum(int(pred[j]) == g[j][3] for j in range(len(g)))
    return correct / len(facts)


def train(model, kb, tok, steps, batch=64, seq_len=16, lr=1.5e-3, warmup=100, seed=0, max_seconds=470,
          log=print, eval_every=250, target_acc=None):
    torch.manual_seed(seed)
    sampler = Sampler(kb, tok, seq_len=seq_len, seed=seed)
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (decay if p.dim() >= 2 and "wpe" not in n else no_decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.98))
    t0 = time.time()
    hist = []
    step = 0
    for step in range(1, steps + 1):
        model.train()
        f = min(1.0, step / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, step / steps)))
        for g in opt.param_groups:
            g["lr"] = lr * max(f, 0.02)
        ids, mask = sampler.batch(batch)
        logits = model(ids, torch.ones_like(ids))
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1),
                               reduction="none")
        loss = (loss * mask[:, :-1].reshape(-1)).sum() / mask[:, :-1].sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % eval_every == 0 or step == steps:
            acc = fact_accuracy(model, kb, tok)
            el = time.time() - t0
            hist.append({"step": step, "loss": round(loss.item(), 4), "fact_acc": round(acc, 4),
                         "seconds": round(el, 1)})
            log(hist[-1])
            if el > max_seconds:
                log("time budget reached")
                break
    model.eval()
    return {"steps_run": step, "history": hist, "seconds": round(time.time() - t0, 1)}
