// Probe values from hand-made outputs: each evaluator reads the right row, layer, head and
// position slot, averages over the positions it reads, and gives no value where it has none.

import test from 'ava';
import type { NamedPositionSet, PositionSet } from '../../src/lang/program.js';
import { MeasureInputError } from '../../src/measure/knockout.js';
import {
  attributionValues, evaluateProbes, siteProbeOutputs, type OutputView, type ProbeContext, type ProbeResult, type SiteProbePlan,
} from '../../src/measure/probes.js';
import { projectionName } from '../../src/onnx/index.js';
import { VariantNames } from '../../src/onnx/variant.js';
import type { AttributionPlan, ProbePlan, SiteKind } from '../../src/plan/plan.js';
import { positionsIn } from '../../src/run/positions.js';

const named = (name: NamedPositionSet): PositionSet => ({ kind: 'named', name });
const none: PositionSet = { kind: 'difference', left: named('last'), right: named('last') };

/** An output of shape `dims` whose element at a multi-index is `f` of it. */
function tensor(dims: readonly number[], f: (index: readonly number[]) => number): OutputView {
  const data: number[] = [];
  const fill = (prefix: number[]): void => {
    if (prefix.length === dims.length) data.push(f(prefix));
    else for (let i = 0; i < dims[prefix.length]!; i++) fill([...prefix, i]);
  };
  fill([]);
  return { dims, data };
}

// six tokens, the subject at 1..3: nonsubject {0, 4}, last 5
const geometry = { n: 6, subject: { start: 1, end: 4 } };
// batch row 1 of two; hidden states 2 and 5 projected at positions 1, 2, 3, 5 (slots 0..3), top 3
const context = (outputs: Record<string, OutputView>, more: Partial<ProbeContext> = {}): ProbeContext => ({
  outputs, row: 1, projectedPositions: [1, 2, 3, 5], heads: 2, positionsOf: positionsIn(geometry), target: 7,
  decode: (id) => ` t${id}`,
  projections: [
    { site: 'hidden', layers: [2, 5], via: 'embedding', k: 3, vocabLimit: 100 },
    { site: 'heads', layers: [4], via: 'embedding', k: 3, vocabLimit: 100 },
    { site: 'recomputed', layers: [4], via: 'embedding', k: 3, vocabLimit: 100, recompute: 'renormalise' },
    { site: 'subject_embeddings', layers: [0], via: 'embedding', k: 3, vocabLimit: 100 },
  ],
  ...more,
});
const siteProbe = (kind: SiteProbePlan['kind'], site: SiteKind, layer: number, at: PositionSet, ids: string[] = [kind]): SiteProbePlan =>
  ({ kind, ids, site, layer, at, k: 3 });

// hidden: [batch 2, layers 2, positions 4, k 3]; row 0 holds 9s everywhere, so reading it would show
const hiddenIds = tensor([2, 2, 4, 3], ([b, l, pi, j]) => (b === 0 ? 9 : [[[7, 1, 2], [3, 7, 4], [7, 5, 6], [8, 7, 0]], [[7, 0, 0], [3, 0, 0], [7, 0, 0], [2, 0, 0]]][l!]![pi!]![j!]!));
const hiddenScores = tensor([2, 2, 4, 3], ([b, l, pi, j]) => (b === 1 && l === 1 && pi === 1 ? [5, 5, 4][j!]! : 9 - j!));
const hidden = {
  [projectionName('hidden', 'ids')]: hiddenIds,
  [projectionName('hidden', 'scores')]: hiddenScores,
  [projectionName('hidden', 'target_rank')]: tensor([2, 2, 4], ([b, l, pi]) => b! * 100 + l! * 10 + pi!),
  [projectionName('hidden', 'norm')]: tensor([2, 2, 4], ([b, l, pi]) => b! + l! + pi! / 4),
};

test('site probes average over their positions in the row, layer and slots they read', (t) => {
  const r = evaluateProbes([
    siteProbe('extraction', 'hidden', 5, named('subject')),
    siteProbe('target_rank', 'hidden', 5, named('last')),
    siteProbe('norm', 'hidden', 2, named('subject_first')),
    siteProbe('top_tokens', 'hidden', 2, named('last')),
  ], context(hidden));
  // hidden 5 top-1 at positions 1, 2, 3 (slots 0..2): 7, 3, 7 against target 7
  t.is(r.values['extraction'], 2 / 3);
  // slot 1 of hidden 5 scores its top two equally: one tie
  t.is(r.ties, 1);
  t.is(r.values['target_rank'], 113);
  t.is(r.values['norm'], 1);
  t.false('top_tokens' in r.values);
  t.deepEqual(r.tokens, [{ measure: 'top_tokens', position: 5, tokens: [' t8', ' t7', ' t0'] }]);
  t.deepEqual(siteProbeOutputs(siteProbe('extraction', 'hidden', 5, named('last'))), [projectionName('hidden', 'ids'), projectionName('hidden', 'scores')]);
});

test('a set empty for the prompt gives no value; a position not projected or a missing output is refused', (t) => {
  t.deepEqual(evaluateProbes([siteProbe('target_rank', 'hidden', 5, none)], context(hidden)).values, {});
  t.throws(() => evaluateProbes([siteProbe('target_rank', 'hidden', 5, named('nonsubject'))], context(hidden)),
    { instanceOf: MeasureInputError, message: 'position 0 was not projected' });
  t.throws(() => evaluateProbes([siteProbe('target_rank', 'hidden', 3, named('last'))], context(hidden)),
    { instanceOf: MeasureInputError, message: 'no projection of hidden 3 in the variant' });
  t.throws(() => evaluateProbes([siteProbe('target_rank', 'heads', 4, named('last'))], context(hidden)),
    { instanceOf: MeasureInputError, message: `output ${projectionName('heads', 'target_rank')} was not fetched` });
});

test('per-head site probes give one value per head; recomputed reads the last position, subject_embeddings its one vector', (t) => {
  const outputs = {
    // heads: [batch 2, layers 1, heads 2, positions 4, k 3]
    [projectionName('heads', 'target_rank')]: tensor([2, 1, 2, 4], ([b, , h, pi]) => b! * 100 + h! * 10 + pi!),
    // recomputed and subject_embeddings: [batch 2, layers 1, positions 1]
    [projectionName('recomputed', 'norm')]: tensor([2, 1, 1], ([b]) => b! + 0.5),
    [projectionName('subject_embeddings', 'ids')]: tensor([2, 1, 1, 3], ([b, , , j]) => b! * 10 + j!),
  };
  const r = evaluateProbes([
    siteProbe('target_rank', 'heads', 4, named('subject_last'), ['h0', 'h1']),
    siteProbe('norm', 'recomputed', 4, named('last')),
    siteProbe('top_tokens', 'subject_embeddings', 0, named('subject')),
  ], context(outputs));
  t.deepEqual(r.values, { h0: 102, h1: 112, norm: 1.5 });
  t.deepEqual(r.tokens, [{ measure: 'top_tokens', position: 1, tokens: [' t10', ' t11', ' t12'] }]);
  t.throws(() => evaluateProbes([siteProbe('norm', 'recomputed', 4, named('subject_last'))], context(outputs)),
    { instanceOf: MeasureInputError, message: 'position 3 was not projected' });
});

test('attributes rate: the kept top tokens that are the subject\'s attributes; none without the subject\'s set', (t) => {
  const spec = { keep: 2, minLength: 3, stopwords: 'none' } as const;
  const probe = siteProbe('attributes_rate', 'hidden', 2, named('subject_first'));
  // hidden 2 at position 1 ranks ids 7, 1, 2
  const words: Readonly<Record<number, string>> = { 7: ' France', 1: ' a', 2: ' Paris' };
  const decode = (id: number): string => words[id]!;
  const rate = (subjectSet: ReadonlySet<string> | undefined): ProbeResult =>
    evaluateProbes([probe], context(hidden, { decode, attributes: { spec, subjectSet } }));
  // candidates ' France', ' a' (dropped: shorter than 3), ' Paris': kept ' France', ' Paris'; one of the two is an attribute
  t.deepEqual(rate(new Set([' Paris'])).values, { attributes_rate: 50 });
  t.deepEqual(rate(undefined).values, {});
  t.throws(() => evaluateProbes([probe], context(hidden)), { instanceOf: MeasureInputError, message: 'attributes_rate without attribute sets' });
});

test('attention weight: per head the mean over queries of the summed keys, then per head or their mean', (t) => {
  // [batch 2, heads 2, queries 6, keys 6]; row 1 holds (h + 1)(10q + k) / 1024 (sums exact in binary)
  const probs = { [`${VariantNames.attnProbsPrefix}3`]: tensor([2, 2, 6, 6], ([b, h, q, k]) => (b === 1 ? ((h! + 1) * (10 * q! + k!)) / 1024 : 9)) };
  const weight = (heads: 'all' | 'each', target: PositionSet, ids: string[]): ProbePlan =>
    ({ kind: 'attention_weight', ids, layer: 3, source: named('subject'), target, heads });
  // query 5, keys 1..3: (h + 1)(51 + 52 + 53) / 1024
  t.deepEqual(evaluateProbes([weight('each', named('last'), ['a0', 'a1'])], context(probs)).values, { a0: 156 / 1024, a1: 312 / 1024 });
  // queries 4 and 5: head 0 sums 126 and 156 (mean 141), head 1 twice that; the mean of the heads
  t.deepEqual(evaluateProbes([weight('all', { kind: 'indices', indices: [4, 5] }, ['a'])], context(probs)).values, { a: (141 + 282) / 2 / 1024 });
  t.deepEqual(evaluateProbes([weight('all', none, ['a'])], context(probs)).values, {});
});

test('attribution: the value at each position read, and per group of positions their mean', (t) => {
  const parts = ['first', 'last_of_subject', 'other', 'nonsubject', 'last', 'gap'];
  const plan = (at: PositionSet, kind: 'attribution' | 'integrated_gradients' = 'attribution'): AttributionPlan =>
    (kind === 'attribution' ? { kind, ids: parts.slice(0, 5), label: 'attr', layer: 2, at }
      : { kind, ids: parts, label: 'ig', layer: 2, at, steps: 4, baseline: 'zero' });
  // [batch 2, hidden states 3, positions 6]: row 1 holds 10l + p
  const outputs = { [VariantNames.attribution]: tensor([2, 3, 6], ([b, l, p]) => (b === 1 ? 10 * l! + p! : 9999)) };
  const all = evaluateProbes([plan(named('all'))], context(outputs));
  t.deepEqual(all.positionValues, [{ measure: 'attr', positions: [0, 1, 2, 3, 4, 5], values: [20, 21, 22, 23, 24, 25] }]);
  t.deepEqual(all.values, { first: 21, last_of_subject: 23, other: 22, nonsubject: 22, last: 25 });
  // the subject's first token and the last only: the other groups have no value
  t.deepEqual(evaluateProbes([plan({ kind: 'union', left: named('subject_first'), right: named('last') })], context(outputs)).values, { first: 21, last: 25 });
  // integrated gradients are reduced by the run stage, then give their gap as the last part
  t.deepEqual(evaluateProbes([plan(named('all'), 'integrated_gradients')], context(outputs)).values, {});
  const result: ProbeResult = { values: {}, tokens: [], positionValues: [], ties: 0 };
  attributionValues(plan(named('subject'), 'integrated_gradients'), positionsIn(geometry), (p) => p * p, result, -0.25);
  t.deepEqual(result.values, { first: 1, last_of_subject: 9, other: 4, gap: -0.25 });
});
