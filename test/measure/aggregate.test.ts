import test from 'ava';
import type { Sweep } from '../../src/lang/program.js';
import { aggregateSeries, AggregateInputError, bindings, keyId, sweepAxes } from '../../src/measure/aggregate.js';
import type { ValueRow } from '../../src/measure/schema.js';

const span = { file: 'x.dissect', line: 1, column: 1 };
const sweeps: Sweep[] = [
  { kind: 'layers', variable: 'l', values: [0, 1], span },
  {
    kind: 'positions',
    variable: 'blocked',
    values: [
      { label: 'subject', set: { kind: 'named', name: 'subject' } },
      { label: 'last', set: { kind: 'named', name: 'last' } },
    ],
    span,
  },
];
const axes = sweepAxes(sweeps);

test('sweepAxes keeps layer numbers and position labels', (t) => {
  t.deepEqual(axes, [
    { variable: 'l', kind: 'layers', values: [0, 1] },
    { variable: 'blocked', kind: 'positions', values: ['subject', 'last'] },
  ]);
});

test('bindings: outermost sweep varies slowest', (t) => {
  t.deepEqual(bindings(axes), [
    { l: 0, blocked: 'subject' },
    { l: 0, blocked: 'last' },
    { l: 1, blocked: 'subject' },
    { l: 1, blocked: 'last' },
  ]);
  t.deepEqual(bindings([]), [{}]);
  t.is(keyId(axes, { blocked: 'last', l: 1 }), keyId(axes, { l: 1, blocked: 'last' }));
  t.throws(() => keyId(axes, { l: 1 }), { instanceOf: AggregateInputError });
});

test('aggregateSeries: means and n per binding and measure', (t) => {
  const rows: ValueRow[] = [
    { example: 'a', key: { l: 0, blocked: 'subject' }, values: { probability_change: -50, rank: 2 } },
    { example: 'b', key: { l: 0, blocked: 'subject' }, values: { probability_change: -20, rank: 0 } },
    { example: 'a', key: { l: 0, blocked: 'last' }, values: { probability_change: 10, rank: 0 } },
    { example: 'b', key: { l: 0, blocked: 'last' }, values: { probability_change: 0 } },
    { example: 'a', key: { l: 1, blocked: 'subject' }, values: { probability_change: -70, rank: 5 } },
  ];
  const s = aggregateSeries(axes, ['probability_change', 'rank'], rows, { method: 'none' });
  t.deepEqual(s, [
    { key: { l: 0, blocked: 'subject' }, measure: 'probability_change', mean: -35, ci: null, n: 2 },
    { key: { l: 0, blocked: 'subject' }, measure: 'rank', mean: 1, ci: null, n: 2 },
    { key: { l: 0, blocked: 'last' }, measure: 'probability_change', mean: 5, ci: null, n: 2 },
    { key: { l: 0, blocked: 'last' }, measure: 'rank', mean: 0, ci: null, n: 1 },
    { key: { l: 1, blocked: 'subject' }, measure: 'probability_change', mean: -70, ci: null, n: 1 },
    { key: { l: 1, blocked: 'subject' }, measure: 'rank', mean: 5, ci: null, n: 1 },
    { key: { l: 1, blocked: 'last' }, measure: 'probability_change', mean: null, ci: null, n: 0 },
    { key: { l: 1, blocked: 'last' }, measure: 'rank', mean: null, ci: null, n: 0 },
  ]);
  const boot = aggregateSeries(axes, ['probability_change'], rows, { method: 'bootstrap_percentile', resamples: 1000, level: 0.95, seed: 0 });
  t.deepEqual(boot[0]!.ci, [-50, -20]); // {−50, −20}: each end has probability ¼ ≫ 2.5 %
  t.deepEqual(boot[2]!.ci, [-70, -70]);
  t.is(boot[3]!.ci, null);
});

test('aggregateSeries rejects rows outside the sweep', (t) => {
  const rows: ValueRow[] = [{ example: 'a', key: { l: 7, blocked: 'subject' }, values: { rank: 1 } }];
  t.throws(() => aggregateSeries(axes, ['rank'], rows, { method: 'none' }), { instanceOf: AggregateInputError, message: /not in the sweep/ });
});
