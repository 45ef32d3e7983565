// The planner: sweeps expand to rows, layer sets become the paper's layer lists, and the
// variant request asks for exactly what the rows use.

import test from 'ava';
import { frontEnd } from '../../src/lang/index.js';
import type { ModelShape, Program } from '../../src/lang/program.js';
import { windowLayers } from '../../src/lang/evaluate.js';
import { planProgram } from '../../src/plan/plan.js';

const gpt2xl: ModelShape = { layers: 48, heads: 25, vocab: 50257 };

function program(body: string, shape: ModelShape = gpt2xl): Program {
  const source = ['model "m.onnx" tokenizer "t.json"', 'dataset counterfact "f.json"', 'attributes json "a.json"', body].join('\n');
  const out = frontEnd(source, '/virtual/p.dissect', { shapeOf: () => shape });
  if (!out.program) throw new Error(out.diagnostics.map((d) => `${d.span.line}:${d.span.column} ${d.message}`).join('\n'));
  return out.program;
}

test("the knockout window is the paper's: centred, clipped at both ends", (t) => {
  const span = (l: number, k: number) => { const w = windowLayers('centred_clipped', l, k, 48); return [w[0], w[w.length - 1], w.length]; };
  t.deepEqual(span(0, 9), [0, 4, 5]);
  t.deepEqual(span(20, 9), [16, 24, 9]);
  t.deepEqual(span(47, 9), [43, 47, 5]);
  t.deepEqual(span(20, 10), [15, 24, 10]); // even k: one more layer below (the single-example heatmap)
  t.deepEqual(span(3, 1), [3, 3, 1]);
});

test('summary layers are listed by the planner, windows and within included (the layer-set rules of every other layer set)', (t) => {
  const plan = planProgram(program(`
experiment e {
  for l in layers all
  measure extraction of attention l
  summarize extraction
  summarize extraction in layers 40..47
  summarize extraction in layers window(0, 9)
  summarize extraction in layers window(20, 4) within 19..20
}`), gpt2xl);
  t.deepEqual(plan.experiments[0]!.summaries.map((s) => s.layers), [null, [40, 41, 42, 43, 44, 45, 46, 47], [0, 1, 2, 3, 4], [19, 20]]);
});

test('a sweep expands to one row per binding, outermost first, with window layers per row', (t) => {
  const plan = planProgram(program(`
experiment flow {
  for l in layers 0, 20, 47
  for blocked in positions subject, last
  block blocked -> last at layers window(l, 9)
  measure probability_change
}`), gpt2xl);
  const rows = plan.experiments[0]!.rows;
  t.deepEqual(rows.map((r) => r.key), [
    { l: 0, blocked: 'subject' }, { l: 0, blocked: 'last' }, { l: 20, blocked: 'subject' },
    { l: 20, blocked: 'last' }, { l: 47, blocked: 'subject' }, { l: 47, blocked: 'last' },
  ]);
  t.deepEqual(rows[2]!.knockouts[0]!.layers, [16, 17, 18, 19, 20, 21, 22, 23, 24]);
  t.deepEqual(rows[2]!.knockouts[0]!.source, { kind: 'named', name: 'subject' });
  t.is(plan.passesPerExample, 7);
  t.deepEqual(plan.variant, { knockout: 'replace_half_min', logits: false });
  t.is(plan.knockoutHeads, 1);
});

test("the paper's sublayer windows: 11 layers from start, clipped below the measured layer", (t) => {
  const plan = planProgram(program(`
choose cancel_mlp = zero_preactivation
experiment sublayers {
  for start in layers 0, 29, 35
  cancel mlp at layers start..start + 10 within 0..39
  measure attributes_rate of hidden 41 at subject_last
}`), gpt2xl);
  const rows = plan.experiments[0]!.rows;
  t.deepEqual(rows.map((r) => r.gates[0]!.layers.length), [11, 11, 5]);
  t.deepEqual(rows[2]!.gates[0]!.layers, [35, 36, 37, 38, 39]);
  t.deepEqual(rows[0]!.gates[0]!.positions, { kind: 'named', name: 'all' });
  t.deepEqual(plan.variant.gates, { mlp: 'zero_preactivation' });
  t.deepEqual(plan.variant.projections, [{ site: 'hidden', via: 'embedding', k: 500, vocabLimit: 50257, layers: [41] }]);
});

test("cancelling attention in the paper's mode is a knockout of every key; zero_update is a gate", (t) => {
  const body = (mode: string) => `
choose cancel_attention = ${mode}
experiment a {
  cancel attention at layers 2..3
  measure probability
}`;
  const uniform = planProgram(program(body('uniform')), gpt2xl);
  t.deepEqual(uniform.experiments[0]!.rows[0]!.knockouts, [
    { layers: [2, 3], heads: 'all', source: { kind: 'named', name: 'all' }, target: { kind: 'named', name: 'all' } },
  ]);
  t.is(uniform.variant.gates, undefined);
  const zero = planProgram(program(body('zero_update')), gpt2xl);
  t.deepEqual(zero.experiments[0]!.rows[0]!.knockouts, []);
  t.deepEqual(zero.variant.gates, { attention: 'zero_update' });
});

test('projections gather the layers and the largest k each site needs; extraction reads two for ties', (t) => {
  const plan = planProgram(program(`
experiment x {
  for l in layers 3, 5
  measure extraction of attention l, target_rank of attention l at last, extraction of heads l
  measure top_tokens 7 of hidden l + 1 at last
  measure attention_weight subject -> last at layer l
}`), gpt2xl);
  const bySite = Object.fromEntries((plan.variant.projections ?? []).map((p) => [p.site, p]));
  t.deepEqual(bySite['attention'], { site: 'attention', via: 'embedding', k: 2, vocabLimit: 50257, layers: [3, 5] });
  t.deepEqual(bySite['heads']?.layers, [3, 5]);
  t.deepEqual(bySite['hidden'], { site: 'hidden', via: 'embedding', k: 7, vocabLimit: 50257, layers: [4, 6] });
  t.true(plan.variant.attentionProbs);
  t.false(plan.variant.knockout);
});

test('a patch from another layer asks for hidden states and the patch inputs', (t) => {
  const plan = planProgram(program(`
experiment b {
  for l in layers 2
  for src in hidden 0, 1
  patch hidden l at positions subject with hidden src
  measure extraction of attention l
}`), gpt2xl);
  t.deepEqual(plan.experiments[0]!.rows.map((r) => r.patch), [
    { layer: 2, positions: { kind: 'named', name: 'subject' }, source: { kind: 'hidden', index: 0 } },
    { layer: 2, positions: { kind: 'named', name: 'subject' }, source: { kind: 'hidden', index: 1 } },
  ]);
  t.true(plan.variant.patch);
  t.true(plan.variant.hiddenStates);
});

test('every measure of an experiment is a typed descriptor; a per-head probe gives one per head', (t) => {
  const plan = planProgram(program(`
experiment ex {
  for l in layers 0..2
  for removed in positions subject, all - (subject_last + last)
  block subject -> last at layers l
  measure rank
  measure extraction of heads l, target_rank of hidden l + 1 at subject_last
  measure attention_weight subject + [0] -> last at layer l - 1 + 1 heads each
  measure top_tokens 3 of attention l without removed
}`, { layers: 4, heads: 2, vocab: 500 }), { layers: 4, heads: 2, vocab: 500 });
  const [exp] = plan.experiments;
  const l = { constant: 0, variables: { l: 1 } };
  t.deepEqual(exp!.measures.map(({ label: _label, ...d }) => d), [
    { id: 'rank', probe: 'rank', site: 'logits', layer: null, positions: 'last' },
    { id: 'extraction of heads l [head 0]', probe: 'extraction', site: 'heads', layer: l, positions: 'last', head: 0 },
    { id: 'extraction of heads l [head 1]', probe: 'extraction', site: 'heads', layer: l, positions: 'last', head: 1 },
    { id: 'target_rank of hidden l + 1 at subject_last', probe: 'target_rank', site: 'hidden', layer: { constant: 1, variables: { l: 1 } }, positions: 'subject_last' },
    { id: 'attention_weight subject + [0] -> last at layer l - 1 + 1 heads each [head 0]', probe: 'attention_weight', site: 'attention_probs', layer: l, positions: 'last', keys: 'subject + [0]', head: 0 },
    { id: 'attention_weight subject + [0] -> last at layer l - 1 + 1 heads each [head 1]', probe: 'attention_weight', site: 'attention_probs', layer: l, positions: 'last', keys: 'subject + [0]', head: 1 },
    { id: 'top_tokens 3 of attention l without removed', probe: 'top_tokens', site: 'recomputed', layer: l, positions: 'last', without: 'removed', k: 3 },
  ]);
  t.deepEqual(exp!.interventions, ['block']);
  // each row's probes write exactly these ids
  t.deepEqual(exp!.rows[0]!.probes.flatMap((p) => p.ids), exp!.measures.slice(1).map((d) => d.id));
});

test('each intervention is written back with parameter values, for the report', (t) => {
  const plan = planProgram(program(`
param window = 9
param measured = 7
experiment a {
  for l in layers all
  for p in positions subject, all - (subject_last + last)
  block p -> last at layers window(l, window) heads 0, 3
  cancel attention at layers l..l + 10 within 0..39
  cancel mlp at layers measured at positions subject_last + [-1]
  patch hidden l at positions subject with mean hidden measured - 1
  measure probability
}`), gpt2xl);
  t.deepEqual(plan.experiments[0]!.interventionText, [
    'block p -> last at layers window(l, 9) heads 0, 3',
    'cancel attention at layers l..l + 10 within 0..39',
    'cancel mlp at layers 7 at positions subject_last + [-1]',
    'patch hidden l at positions subject with mean hidden 6',
  ]);
});
