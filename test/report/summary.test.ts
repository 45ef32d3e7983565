import test from 'ava';
import { formatSummary } from '../../src/report/summary.js';
import { makeResults, mutable } from './fixture.js';

test('knockout summary: layers × position sets, mean % change', (t) => {
  const r = makeResults({ method: 'bootstrap_percentile', resamples: 1000, level: 0.95, seed: 0 });
  t.is(
    formatSummary(r, { json: 'out/results.json', csv: 'out/results.csv' }),
    [
      'examples: 2 of 3 kept (dropped: not_known 1)',
      '',
      "knockout: mean % change in the target's probability (n = 2, 95% CI: bootstrap_percentile)",
      '  l  subject  last',
      '  0    -37.5   0.0',
      '  1    -75.0  12.5',
      '  rows: 10; fully blocked rows: 0; also measured: rank',
      '',
      'results: out/results.json',
      '         out/results.csv',
      '',
    ].join('\n'),
  );
});

test('summary options: another measure, intervals, no paths', (t) => {
  const r = makeResults({ method: 'bootstrap_percentile', resamples: 1000, level: 0.95, seed: 0 });
  t.is(
    formatSummary(r, undefined, { measure: 'rank', showCi: true }),
    [
      'examples: 2 of 3 kept (dropped: not_known 1)',
      '',
      'knockout: mean rank of the target (0 = top-1) (n = 2, 95% CI: bootstrap_percentile)',
      '  l         subject            last',
      '  0  0.5 [0.0, 1.0]  0.0 [0.0, 0.0]',
      '  1  3.0 [2.0, 4.0]  0.0 [0.0, 0.0]',
      '  rows: 10; fully blocked rows: 0; also measured: probability_change',
      '',
    ].join('\n'),
  );
});

test('one sweep only: one column per measure', (t) => {
  const r = mutable(makeResults());
  const x = r.experiments[0];
  x.sweeps = [x.sweeps[0]];
  x.series = x.series.filter((p: any) => p.key.blocked === 'subject').map((p: any) => ({ ...p, key: { l: p.key.l } }));
  const text = formatSummary(r);
  t.true(text.includes('knockout: means (n = 2, no CI)\n    l  probability_change  rank\n    0               -37.5   0.5\n    1               -75.0   3.0\n'.replace(/^ {2}/gm, '')), text);
});
