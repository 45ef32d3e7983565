// Extraction summaries and the rank analysis on three facts small enough to count by hand.

import test from 'ava';
import { extractionSummary, rankAnalysis } from '../../src/measure/results.js';
import type { ValueRow } from '../../src/measure/schema.js';
import { planned } from '../report/fixture.js';

const { measures } = planned(`experiment x {
  for l in layers 0..3
  measure extraction of attention l, extraction of mlp l, extraction of heads l
  measure target_rank of hidden l + 1 at subject_last, target_rank of attention l at last
  summarize extraction in layers 2..3
}`);

const ATT = 'extraction of attention l';
const MLP = 'extraction of mlp l';
const HEAD = (h: number) => `extraction of heads l [head ${h}]`;
const RANK_H = 'target_rank of hidden l + 1 at subject_last';
const RANK_A = 'target_rank of attention l at last';

/** Per fact, the layers where each probe fires, and the ranks of some rows. */
const events: Record<string, Record<string, number[]>> = {
  A: { [ATT]: [1, 3], [MLP]: [0], [HEAD(1)]: [2] },
  B: { [MLP]: [2, 3] },
  C: { [ATT]: [0], [HEAD(0)]: [0], [HEAD(1)]: [0] }, // two heads at one layer: one event layer
};
// (fact, layer) → [attention rank, hidden rank (absent: no value)]
const ranks: Record<string, [number, number?]> = { 'A1': [0, 4], 'A3': [0, 10], 'C0': [0, 1], 'B2': [0] };

const values: ValueRow[] = Object.entries(events).flatMap(([fact, fired]) => [0, 1, 2, 3].map((l) => {
  const row: Record<string, number> = {};
  for (const id of [ATT, MLP, HEAD(0), HEAD(1), HEAD(2)]) row[id] = fired[id]?.includes(l) ? 1 : 0;
  const [a, h] = ranks[`${fact}${l}`] ?? [5, 7];
  row[RANK_A] = a;
  if (h !== undefined) row[RANK_H] = h;
  return { example: fact, key: { l }, values: row };
}));

const third = 100 / 3;

test('per-probe rates: any layer, in the summary\'s layers, and event layers per fact', (t) => {
  const s = extractionSummary(measures, 'l', {}, values, [2, 3]);
  t.is(s.examples, 3);
  t.deepEqual(s.probes.map((p) => [p.probe, p.site, p.rateAnyLayer, p.rateInLayers, p.meanEventLayers, p.meanEventLayersAll]), [
    // attention: A {1, 3}, C {0}; in 2..3 only A
    [ATT, 'attention', 2 * third, third, 1.5, 1],
    // mlp: A {0}, B {2, 3}; in 2..3 only B
    [MLP, 'mlp', 2 * third, third, 1.5, 1],
    // heads: A {2}, C {0} (heads 0 and 1 at one layer count once)
    ['extraction of heads l', 'heads', 2 * third, third, 1, 2 / 3],
  ]);
  // A: both, its first attention event (1) after its first MLP event (0); B: MLP only; C: attention only
  t.deepEqual(s.cross, { both: third, attentionOnly: third, mlpOnly: third, neither: 0, attentionFirst: 0 });
});

test('without `in layers` the in-layers rate is null', (t) => {
  t.true(extractionSummary(measures, 'l', {}, values, null).probes.every((p) => p.rateInLayers === null));
});

test('rank analysis: hidden − attention rank over rows where attention ranks the prediction first', (t) => {
  // rows with attention rank 0 and a hidden rank: A1 (4), A3 (10), C0 (1); B2 has no hidden rank
  t.deepEqual(rankAnalysis(measures, values), { hidden: RANK_H, attention: RANK_A, rows: 3, mean: 5, median: 4, min: 1, max: 10 });
  t.is(rankAnalysis(measures.filter((d) => d.id !== RANK_H), values), null, 'needs one hidden and one attention target_rank');
});
