// Where rows begin (startLayerOf) and what a plan costs per prompt in clean forward passes
// (cleanForwardEquivalents), on GPT-2 XL's shape: the paper's information-flow sweep (window 9,
// three position sets, every layer) as the paper's code runs it, as last-position rows, and as
// last-position rows from their first blocked block.

import test from 'ava';
import { frontEnd } from '../../src/lang/index.js';
import type { ModelShape } from '../../src/lang/program.js';
import { cleanForwardEquivalents, costNotice, type CostShape } from '../../src/plan/cost.js';
import { planProgram, startLayerOf, type Plan } from '../../src/plan/plan.js';

const XL: CostShape = { layers: 48, heads: 25, dModel: 1600, dMlp: 6400, vocab: 50257 };

function plan(body: string, shape: ModelShape = XL): Plan {
  const source = ['model "m.onnx" tokenizer "t.json"', 'dataset counterfact "f.json"', body].join('\n');
  const out = frontEnd(source, '/virtual/p.dissect', { shapeOf: () => shape });
  if (!out.program) throw new Error(out.diagnostics.map((d) => `${d.span.line}:${d.span.column} ${d.message}`).join('\n'));
  return planProgram(out.program, shape);
}

const flow = plan(`
experiment flow {
  for l in layers all
  for blocked in positions subject, nonsubject, last
  block blocked -> last at layers window(l, 9)
  measure probability_change
}`);

test('a row begins at the first block it blocks, cancels, patches or reads', (t) => {
  t.deepEqual(flow.experiments[0]!.rows.filter((_, i) => i % 3 === 0).map((r) => startLayerOf(r, 48)).slice(0, 8), [0, 0, 0, 0, 0, 1, 2, 3]);
  const mixed = plan(`
experiment mixed {
  for l in layers 10, 30
  cancel mlp at layers l + 2
  patch hidden l + 5 at positions subject with mean hidden 0
  measure target_rank of hidden l + 3 at last, target_rank of attention l + 4 at last
}
experiment lens {
  for h in hidden 40, 48
  block subject -> last at layers 47
  measure target_rank of hidden h at last
}
experiment weights {
  block subject -> last at layers 47
  measure attention_weight subject -> last at layer 20, target_rank of subject_embeddings
}
experiment nothing {
  block subject -> last at layers 47
  measure target_rank of subject_embeddings
}`);
  const starts = mixed.experiments.map((e) => e.rows.map((r) => startLayerOf(r, 48)));
  t.deepEqual(starts, [[12, 32], [40, 47], [20], [47]]);
});

test('the paper\'s information flow on GPT-2 XL\'s shape: 145 clean forwards as the paper runs it, fewer as last-position rows, fewer still from the first blocked block', (t) => {
  const tokens = 12;
  const paper = cleanForwardEquivalents(flow, XL, tokens, { lastPosition: false, startLayer: false, shareClean: false });
  const last = cleanForwardEquivalents(flow, XL, tokens, { lastPosition: true, startLayer: false, shareClean: true });
  const started = cleanForwardEquivalents(flow, XL, tokens, { lastPosition: true, startLayer: true, shareClean: true });
  t.is(paper, 145);
  // a row: every block over one token against 12 keys plus the LM head, over a clean forward of 12 tokens
  const block = (q: number, k: number): number => q * (2 * (4 * 1600 ** 2 + 2 * 1600 * 6400) + 4 * k * 1600);
  const clean = 48 * block(12, 12) + 2 * 1600 * 50257;
  const close = (a: number, b: number): boolean => Math.abs(a - b) <= 1e-12 * b;
  t.true(close(last, 1 + (144 * (48 * block(1, 12) + 2 * 1600 * 50257)) / clean), `${last}`);
  // rows of layer l start at max(0, l − 4): Σ over l of the blocks run, three position sets each
  const blocksRun = Array.from({ length: 48 }, (_, l) => 48 - Math.max(0, l - 4)).reduce((a, b) => a + b, 0);
  t.true(close(started, 1 + (3 * (blocksRun * block(1, 12) + 48 * 2 * 1600 * 50257)) / clean), `${started}`);
  t.true(started < 0.65 * last, `${started} vs ${last}`);
  t.is(costNotice({ tokens, cleanForwardEquivalents: started }),
    'cost: 8.7 clean forward passes per prompt of 12.0 tokens (FLOPs of the clean pass and the rows as they ran; spec.md, "What a run costs")');
});

test('rows read from another row\'s backward pass cost nothing more: attribution of every hidden state costs one row', (t) => {
  const one = plan('experiment g {\n  measure attribution of hidden 3\n}');
  const every = plan('experiment g {\n  for h in hidden all\n  measure attribution of hidden h\n}');
  t.is(every.experiments[0]!.rows.length, 49);
  const modes = { lastPosition: true, startLayer: true, shareClean: true };
  const cost = (p: Plan) => cleanForwardEquivalents(p, XL, 12, modes);
  t.true(cost(one) > 1.5, `${cost(one)}`);
  t.is(cost(every), cost(one));
});

test('a row pays the LM head once and one projection to the vocabulary per probe, per head for heads', (t) => {
  const lens = plan(`
experiment lens {
  block subject -> last at layers 47
  measure target_rank of hidden 40 at last, extraction of heads 47
}`);
  const [row] = lens.experiments[0]!.rows;
  t.is(startLayerOf(row!, 48), 40);
  const block = (q: number, k: number): number => q * (2 * (4 * 1600 ** 2 + 2 * 1600 * 6400) + 4 * k * 1600);
  const head = 2 * 1600 * 50257;
  const clean = 48 * block(12, 12) + head;
  // blocks 40 … 47 for one token against 12 keys; the LM head, hidden 40's projection and the 25 heads' of block 47
  const expected = 1 + (8 * block(1, 12) + (1 + 1 + 25) * head) / clean;
  const cost = cleanForwardEquivalents(lens, XL, 12, { lastPosition: true, startLayer: true, shareClean: true });
  t.true(Math.abs(cost - expected) <= 1e-12 * expected, `${cost} vs ${expected}`);
});
