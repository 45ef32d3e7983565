import test from 'ava';
import {
  knockoutExampleRows,
  knockoutMeasure,
  knockoutValues,
  MeasureInputError,
  probabilityChange,
} from '../../src/measure/knockout.js';

// Probabilities chosen as exact binary fractions so the expected values are exact.
test('probability_change is the relative change in percent', (t) => {
  t.is(probabilityChange(0.5, 0.125), -75);
  t.is(probabilityChange(0.25, 0.375), 50);
  t.is(probabilityChange(0.5, 0.5), 0);
  t.is(probabilityChange(0.5, 0), -100);
});

test('knockoutValues gives all three measures of a row', (t) => {
  const clean = { p0: 0.5, targetId: 4960 };
  t.deepEqual(knockoutValues(clean, { pNew: 0.125, rank: 3 }), { probability_change: -75, probability: 0.125, rank: 3 });
  t.is(knockoutMeasure('probability', clean, { pNew: 0.0625, rank: 0 }), 0.0625);
  t.is(knockoutMeasure('rank', clean, { pNew: 0.0625, rank: 12 }), 12);
  t.is(knockoutMeasure('probability_change', clean, { pNew: 0.75, rank: 0 }), 50);
});

test('bad raw numbers are rejected', (t) => {
  const row = { pNew: 0.1, rank: 0 };
  t.throws(() => knockoutValues({ p0: 0, targetId: 1 }, row), { instanceOf: MeasureInputError, message: /p0/ });
  t.throws(() => knockoutValues({ p0: Number.NaN, targetId: 1 }, row), { instanceOf: MeasureInputError });
  t.throws(() => knockoutValues({ p0: 1.5, targetId: 1 }, row), { instanceOf: MeasureInputError });
  t.throws(() => knockoutValues({ p0: 0.5, targetId: -1 }, row), { message: /target id/ });
  t.throws(() => knockoutValues({ p0: 0.5, targetId: 1 }, { pNew: -0.1, rank: 0 }), { message: /pNew/ });
  t.throws(() => knockoutValues({ p0: 0.5, targetId: 1 }, { pNew: 0.1, rank: 1.5 }), { message: /rank/ });
  t.throws(() => knockoutValues({ p0: 0.5, targetId: 1 }, { pNew: 0.1, rank: -1 }), { message: /rank/ });
});

test('knockoutExampleRows keeps the keys and only the requested measures, in order', (t) => {
  const rows = knockoutExampleRows(
    'ex7',
    { p0: 0.5, targetId: 1 },
    [
      { key: { l: 0, blocked: 'subject' }, pNew: 0.25, rank: 1 },
      { key: { l: 0, blocked: 'last' }, pNew: 0.625, rank: 0 },
    ],
    ['rank', 'probability_change'],
  );
  t.deepEqual(rows, [
    { example: 'ex7', key: { l: 0, blocked: 'subject' }, values: { rank: 1, probability_change: -50 } },
    { example: 'ex7', key: { l: 0, blocked: 'last' }, values: { rank: 0, probability_change: 25 } },
  ]);
  t.deepEqual(Object.keys(rows[0]!.values), ['rank', 'probability_change']);
});
