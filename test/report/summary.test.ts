import test from 'ava';
import { renderReport } from '../../src/report/html/index.js';
import { formatSummary } from '../../src/report/summary.js';
import { makeResults, mutable } from './fixture.js';
import { richResults } from './html-fixture.js';

test('knockout summary: layers × position sets, mean % change', (t) => {
  const r = makeResults({ method: 'bootstrap_percentile', resamples: 1000, level: 0.95, seed: 0 });
  t.is(
    formatSummary(r, { json: 'out/results.json', csv: 'out/results.csv' }),
    [
      'examples: 2 of 3 kept (dropped: not_known 1)',
      '  dropped 2: not_known',
      '',
      'knockout: mean change in p(prediction), % (n = 2, 95% CI: bootstrap_percentile)',
      '  l  subject  last',
      '  0    -37.5   0.0',
      '  1    -75.0  12.5',
      '  rows: 10; also measured: rank',
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
      '  dropped 2: not_known',
      '',
      'knockout: mean rank (0 = top-1) (n = 2, 95% CI: bootstrap_percentile)',
      '  l         subject            last',
      '  0  0.5 [0.0, 1.0]  0.0 [0.0, 0.0]',
      '  1  3.0 [2.0, 4.0]  0.0 [0.0, 0.0]',
      '  rows: 10; also measured: probability_change',
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

test('probes are titled with parameter values and their unit; extraction in %; fully blocked rows come with their reason', (t) => {
  const r = richResults();
  const text = formatSummary(r);
  const patched = r.experiments.find((x) => x.name === 'patched')!;
  const at = (l: number, source: number) => patched.series.find((p) => p.key['l'] === l && p.key['source'] === source)!.mean!;
  t.true(text.includes('patched: mean extraction of attention l at last (examples with an event, %) (n = 4, 95% CI: bootstrap_percentile)\n'), text);
  t.true(text.includes(`\n  0  ${(100 * at(0, 0)).toFixed(1).padStart(4)}  ${(100 * at(0, 1)).toFixed(1).padStart(4)}\n`), text);
  t.true(text.includes('\n  rows: 12; 12 of 12 rows had a query with every key blocked (expected: cancel attention in the uniform mode'), text);
  t.is(text.split('rows had a query with every key blocked').length, 2, 'only cancel_attention has such rows');
  // one attribution probe: a column per group of positions; attributions, often below 0.1, with three decimals
  t.true(text.includes('attribution: means of integrated_gradients of hidden h steps 8 per group of positions (n = 4, 95% CI: bootstrap_percentile)\n'
    + '  h  subject_first  subject_last  subject_other  nonsubject   last  completeness_gap\n'), text);
  const attribution = r.experiments.find((x) => x.name === 'attribution')!;
  const last = attribution.series.find((p) => p.key['h'] === 0 && p.measure.endsWith('[last]'))!.mean!;
  t.regex(text, new RegExp(`\\n  0 .* ${last.toFixed(3)} .*\\n`));
});

test('a shard\'s results say they are a shard, first in the summary and in the report\'s selection', async (t) => {
  const r = mutable(makeResults());
  r.data.shard = { index: 1, count: 4 };
  const says = 'shard 1/4: this run measured batches 1, 5, 9, … of the selection, not the whole; `dissect merge` of every shard\'s folder gives the whole';
  t.is(formatSummary(r).split('\n')[0], says);
  const { html } = await renderReport(r);
  t.regex(html, new RegExp(`<dt>Selection</dt><dd>[^\\n]*<br><b>${says.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/'/g, '&#39;')}</b></dd>`));
  t.false(formatSummary(makeResults()).includes('shard'));
});
