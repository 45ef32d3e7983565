// Every probe equals an independent implementation: PyTorch with hooks, one prompt at a
// time, the way the paper's notebook computes each analysis (scripts/make_expected_probes.py
// → generated/tiny-gpt2/expected/probes.json, the first 40 facts).

import test, { type ExecutionContext } from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Results } from '../../src/measure/schema.js';
import { runSource, tinyGpt2, tinyGpt2Program, valueAt } from './helpers.js';

type PerLayer = number[];
interface Fact {
  case_id: number;
  t: number;
  attributes_rate: Record<string, (number | null)[]>;
  sublayer_knockout: Record<string, number | null | (number | null)[]>;
  extraction: {
    attention: { event: PerLayer; target_rank: PerLayer; tie: boolean[] };
    mlp: { event: PerLayer; target_rank: PerLayer; tie: boolean[] };
    heads: { top1: number[][]; target_rank: number[][] };
    hidden_subject_last_target_rank: PerLayer;
    attention_weight_subject_to_last: PerLayer;
  };
  control_a: Record<string, { event: PerLayer }>;
  control_b: Record<string, { event: PerLayer; p: PerLayer }>;
  logit_lens: Record<'embedding' | 'final_norm_unembedding', number[][]>;
  hidden_norm: Record<'subject_last' | 'last' | 'subject', number[]>;
}
const expected = JSON.parse(readFileSync(join(tinyGpt2, 'expected/probes.json'), 'utf8')) as {
  n_facts: number; layers: number; heads: number; facts: Fact[];
};
const vocab = JSON.parse(readFileSync(join(tinyGpt2, 'tokenizer.json'), 'utf8')).model.vocab as Record<string, number>;
const N = expected.n_facts;
const L = expected.layers;

async function run(body: string, extra = ''): Promise<Results> {
  const attributes = `attributes json "${join(tinyGpt2, 'attributes.json')}" candidates 100 keep 10 min_length 3 stopwords english`;
  return (await runSource({ source: `${tinyGpt2Program(attributes, extra)}\n${body}\n`, limit: N })).results;
}

function compare(t: ExecutionContext, got: number | undefined, want: number | null, what: string, tol = 0): void {
  if (want === null) { t.is(got, undefined, what); return; }
  if (got === undefined) { t.fail(`${what}: no value, expected ${want}`); return; }
  t.true(Math.abs(got - want) <= tol, `${what}: ${got} vs ${want}`);
}

test.serial('the same facts are measured', async (t) => {
  const r = await run('experiment clean {\n  measure probability\n}');
  t.deepEqual(r.examples.map((e) => Number(e.id)), expected.facts.map((f) => f.case_id));
  r.examples.forEach((e, i) => t.is(e.cleanTop1.id, expected.facts[i]!.t));
});

test.serial('attributes rate per hidden state and position', async (t) => {
  const r = await run(`experiment enrichment {
  for h in hidden all
  for p in positions subject_last, subject_first, subject_next, last
  measure attributes_rate of hidden h at p
}`);
  for (const f of expected.facts) {
    for (const [pos, rates] of Object.entries(f.attributes_rate)) {
      rates.forEach((want, h) => compare(t, valueAt(r, 0, f.case_id, { h, p: pos }, 'attributes_rate of hidden h at p'), want, `${f.case_id} ${pos} h${h}`, 0.01));
    }
  }
});

const sublayerModes = [
  ['mlp_zero_preactivation', 'mlp', 'choose cancel_mlp = zero_preactivation'],
  ['mlp_zero_update', 'mlp', 'choose cancel_mlp = zero_update'],
  ['attention_uniform', 'attention', 'choose cancel_attention = uniform'],
  ['attention_zero_update', 'attention', 'choose cancel_attention = zero_update'],
] as const;

for (const [mode, sublayer, choice] of sublayerModes) {
  test.serial(`sublayer knockout, ${mode}`, async (t) => {
    const r = await run(`experiment cancel {
  for start in layers 0..5
  cancel ${sublayer} at layers start..start + 1 within 0..5
  measure attributes_rate of hidden 7 at subject_last
}
experiment none {
  measure attributes_rate of hidden 7 at subject_last
}`, choice);
    for (const f of expected.facts) {
      (f.sublayer_knockout[mode] as (number | null)[]).forEach((want, start) =>
        compare(t, valueAt(r, 0, f.case_id, { start }, 'attributes_rate of hidden 7 at subject_last'), want, `${f.case_id} start ${start}`, 0.01));
      compare(t, valueAt(r, 1, f.case_id, {}, 'attributes_rate of hidden 7 at subject_last'), f.sublayer_knockout['none'] as number, `${f.case_id} none`, 0.01);
    }
  });
}

test.serial('extraction events, target ranks, per-head decisions and attention weights', async (t) => {
  const r = await run(`experiment extraction {
  for l in layers all
  measure extraction of attention l, extraction of mlp l, extraction of heads l
  measure target_rank of attention l at last, target_rank of mlp l at last, target_rank of heads l
  measure target_rank of hidden l + 1 at subject_last
  measure attention_weight subject -> last at layer l
  summarize extraction
}`);
  let ties = 0;
  for (const f of expected.facts) {
    const x = f.extraction;
    for (let l = 0; l < L; l++) {
      const at = (m: string) => valueAt(r, 0, f.case_id, { l }, m);
      compare(t, at('extraction of attention l'), x.attention.event[l]!, `${f.case_id} attention l${l}`);
      compare(t, at('extraction of mlp l'), x.mlp.event[l]!, `${f.case_id} mlp l${l}`);
      compare(t, at('target_rank of attention l at last'), x.attention.target_rank[l]!, `${f.case_id} attention rank l${l}`);
      compare(t, at('target_rank of mlp l at last'), x.mlp.target_rank[l]!, `${f.case_id} mlp rank l${l}`);
      compare(t, at('target_rank of hidden l + 1 at subject_last'), x.hidden_subject_last_target_rank[l]!, `${f.case_id} hidden rank l${l}`);
      compare(t, at('attention_weight subject -> last at layer l'), x.attention_weight_subject_to_last[l]!, `${f.case_id} weight l${l}`, 1e-5);
      for (let h = 0; h < expected.heads; h++) {
        compare(t, at(`extraction of heads l [head ${h}]`), x.heads.top1[l]![h] === f.t ? 1 : 0, `${f.case_id} head ${l}.${h}`);
        compare(t, at(`target_rank of heads l [head ${h}]`), x.heads.target_rank[l]![h]!, `${f.case_id} head rank ${l}.${h}`);
      }
      if (x.attention.tie[l] || x.mlp.tie[l]) ties++;
    }
  }
  t.is(r.experiments[0]!.ties ?? 0, ties);
  // The summary's per-example rate: facts with an attention event at some layer.
  const withEvent = expected.facts.filter((f) => f.extraction.attention.event.some((e) => e === 1)).length;
  const s = r.experiments[0]!.extraction![0]!.probes.find((p) => p.probe === 'extraction of attention l')!;
  t.true(Math.abs(s.rateAnyLayer! - (100 * withEvent) / N) < 1e-9);
  // The attention × MLP table and the share whose first attention event is no later than the first MLP one.
  const first = (events: PerLayer) => events.findIndex((e) => e === 1);
  const cells = { both: 0, attentionOnly: 0, mlpOnly: 0, neither: 0, attentionFirst: 0 };
  let eventLayers = 0;
  for (const f of expected.facts) {
    const a = first(f.extraction.attention.event);
    const m = first(f.extraction.mlp.event);
    eventLayers += f.extraction.attention.event.filter((e) => e === 1).length;
    if (a >= 0 && m >= 0) { cells.both++; if (a <= m) cells.attentionFirst++; }
    else if (a >= 0) cells.attentionOnly++;
    else if (m >= 0) cells.mlpOnly++;
    else cells.neither++;
  }
  const cross = r.experiments[0]!.extraction![0]!.cross!;
  for (const k of ['both', 'attentionOnly', 'mlpOnly', 'neither'] as const) t.true(Math.abs(cross[k]! - (100 * cells[k]) / N) < 1e-9, k);
  if (cells.both) t.true(Math.abs(cross.attentionFirst! - (100 * cells.attentionFirst) / cells.both) < 1e-9);
  t.true(Math.abs(s.meanEventLayersAll! - eventLayers / N) < 1e-9);
  // The rank analysis: the last subject token's rank of the prediction where attention extracts it.
  const diffs = expected.facts.flatMap((f) => f.extraction.attention.target_rank
    .flatMap((r, l) => (r === 0 ? [f.extraction.hidden_subject_last_target_rank[l]!] : [])));
  const ranks = r.experiments[0]!.extraction![0]!.ranks!;
  t.is(ranks.rows, diffs.length);
  t.true(diffs.length > 0);
  t.true(Math.abs(ranks.mean! - diffs.reduce((a, b) => a + b, 0) / diffs.length) < 1e-9);
  t.is(ranks.max, Math.max(...diffs));
});

test.serial('control A: edges blocked at the extraction layer, propagated to the end', async (t) => {
  const r = await run(`experiment blocked {
  for l in layers all
  for blocked in positions subject, subject_last, nonsubject, nonsubject + last, last
  block blocked -> last at layers l
  measure extraction of attention l
}`);
  for (const f of expected.facts) {
    for (const [set, { event }] of Object.entries(f.control_a)) {
      const label = set === 'nonsubject+last' ? 'nonsubject + last' : set;
      event.forEach((want, l) => compare(t, valueAt(r, 0, f.case_id, { l, blocked: label }, 'extraction of attention l'), want, `${f.case_id} ${set} l${l}`));
    }
  }
});

test.serial('control B: subject positions patched with early hidden states', async (t) => {
  const r = await run(`experiment patched {
  for l in layers all
  for source in hidden 0, 1, 2
  patch hidden l at positions subject with hidden source
  measure extraction of attention l, probability
}`);
  for (const f of expected.facts) {
    for (const [source, { event, p }] of Object.entries(f.control_b)) {
      for (let l = 0; l < L; l++) {
        const key = { l, source: Number(source) };
        compare(t, valueAt(r, 0, f.case_id, key, 'extraction of attention l'), event[l]!, `${f.case_id} src ${source} l${l}`);
        const got = valueAt(r, 0, f.case_id, key, 'probability')!;
        t.true(Math.abs(got - p[l]!) <= 1e-5 * Math.max(p[l]!, 1e-6) + 1e-7, `${f.case_id} p src ${source} l${l}: ${got} vs ${p[l]}`);
      }
    }
  }
});

test.serial('the L2 norm of each hidden state, at one position and averaged over the subject', async (t) => {
  const r = await run(`experiment norms {
  for h in hidden all
  for p in positions subject_last, last, subject
  measure norm of hidden h at p
}`);
  for (const f of expected.facts) {
    for (const [pos, norms] of Object.entries(f.hidden_norm)) {
      norms.forEach((want, h) => {
        const got = valueAt(r, 0, f.case_id, { h, p: pos }, 'norm of hidden h at p')!;
        t.true(Math.abs(got - want) <= 1e-5 * want, `${f.case_id} ${pos} h${h}: ${got} vs ${want}`);
      });
    }
  }
});

for (const projection of ['embedding', 'final_norm_unembedding'] as const) {
  test.serial(`logit lens with the ${projection} projection`, async (t) => {
    const r = await run(`experiment lens {
  for h in hidden all
  measure top_tokens 5 of hidden h at last
}`, `choose projection = ${projection}`);
    const tokens = r.experiments[0]!.tokens!;
    for (const f of expected.facts) {
      f.logit_lens[projection].forEach((want, h) => {
        const got = tokens.find((x) => x.example === String(f.case_id) && x.key['h'] === h)!;
        t.deepEqual(got.tokens.map((s) => vocab[s]), want, `${f.case_id} h${h}`);
      });
    }
  });
}
