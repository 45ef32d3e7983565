// The HTML report: self-contained, one section per experiment, the right charts with the
// right number of lines, data tables holding the series numbers, deterministic bytes, and
// `dissect report` rebuilding it from results.json alone.

import test from 'ava';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { allFigures, renderReport, writeReport, type RenderedReport } from '../../src/report/html/index.js';
import { esc } from '../../src/report/html/format.js';
import { renameIds } from '../../src/report/html/render.js';
import { validateResults, type Results } from '../../src/measure/schema.js';
import { makeResults } from './fixture.js';
import { EXAMPLES, richResults } from './html-fixture.js';
import { OutputFolder } from '../../src/output/folder.js';
import { tempDir } from '../temp.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const tmp = () => tempDir('html');

/** Runs the CLI without blocking the other tests of this file. */
function dissect(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ status: code, stdout, stderr });
    });
  });
}

let cached: Promise<RenderedReport> | undefined;
const rich = (): Promise<RenderedReport> => (cached ??= renderReport(richResults()));

/** The HTML of one element, from its opening tag to the matching close of `tag` (no nesting of `tag`). */
function chunk(html: string, open: string, tag: string): string {
  const start = html.indexOf(open);
  if (start < 0) throw new Error(`not found: ${open}`);
  const end = html.indexOf(`</${tag}>`, start);
  return html.slice(start, end + tag.length + 3);
}

const count = (s: string, re: RegExp): number => (s.match(re) ?? []).length;

test('the rich fixture is a valid results object', (t) => {
  t.deepEqual(validateResults(richResults()), []);
});

test('the page is self-contained: no network URL, no script, a CSP that forbids loading', async (t) => {
  const { html } = await rich();
  t.notRegex(html, /\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?\/\//i);
  t.notRegex(html, /url\(\s*["']?(?:https?:)?\/\//i);
  t.notRegex(html, /@import/i);
  t.notRegex(html, /<script/i);
  t.notRegex(html, /<(?:img|link|iframe|object|embed)\b/i);
  t.regex(html, /<meta http-equiv="Content-Security-Policy" content="default-src 'none';/);
  // Every element id is unique (vega's gradient ids are renamed per plot).
  const ids = [...html.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]);
  t.is(new Set(ids).size, ids.length);
});

test('the summary: model, dataset, counts, known-fact accuracy, device and the choices with their meanings', async (t) => {
  const { html } = await rich();
  const summary = chunk(html, '<section class="summary"', 'section');
  t.regex(summary, /<code title="\/m\/gpt2\.onnx">\/m\/gpt2\.onnx<\/code><br>gpt2, 4 layers, 3 heads, vocabulary 50257, sha256 <code>aaaaaaaaaaaa<\/code>/);
  t.regex(summary, /<code title="\/d\/counterfact\.json">\/d\/counterfact\.json<\/code> \(counterfact\)/);
  t.regex(summary, /<b>4<\/b> kept of 7 read, 3 dropped \(not_known: 2, subject_not_found: 1\)/);
  t.regex(summary, /Known-fact accuracy<\/dt><dd>4 \/ 6 = 66\.7% \(of the 6 facts whose prompt could be used\)/);
  t.regex(summary, /<dt>Device<\/dt><dd>cpu, onnxruntime 1\.30\.0/);
  t.regex(summary, /<br>fused onnxruntime ops expanded into standard ops: 4 × Attention, 4 × FastGelu<\/dd>/);
  t.regex(summary, /<dt>Rows<\/dt><dd>last position where possible: rows at the last position ran that token alone \(30 as the last token, 12 over the whole prompt, 6 read from the clean pass\)<\/dd>/);
  t.regex(summary, /<td><code>knockout_window<\/code><\/td><td><code>centred_clipped<\/code><\/td><td>k layers centred on l, clipped at the ends<\/td>/);
  // Text from results.json is escaped.
  t.true(summary.includes('set to 0 &lt;so it still writes its bias&gt;'));
});

test('the summary shows the run\'s files relative to the report\'s folder where that is shorter, the absolute path on hover', async (t) => {
  const r = richResults();
  const home = '/home/someone/src/dissect';
  const results = { ...r, provenance: { ...r.provenance, model: { ...r.provenance.model, path: `${home}/generated/tiny-gpt2/model.onnx` } } };
  const { html } = await renderReport(results, `${home}/out/paper`);
  t.regex(html, /<code title="\/home\/someone\/src\/dissect\/generated\/tiny-gpt2\/model\.onnx">\.\.\/\.\.\/generated\/tiny-gpt2\/model\.onnx<\/code><br>gpt2/);
  // from there, /d/counterfact.json is shorter as it is
  t.regex(html, /<code title="\/d\/counterfact\.json">\/d\/counterfact\.json<\/code>/);
});

test('one section per experiment, in order, plus a combined sublayer-knockout section', async (t) => {
  const r = richResults();
  const { html } = await rich();
  const names = [...html.matchAll(/<section class="experiment" id="exp-([^"]+)" data-experiment="([^"]+)">/g)].map((m) => m[2]);
  t.deepEqual(names, r.experiments.map((x) => x.name));
  const cmp = [...html.matchAll(/<section class="comparison"[^>]* data-experiments="([^"]+)">/g)].map((m) => m[1]);
  t.deepEqual(cmp, ['cancel_mlp cancel_attention no_cancel']);
  // It comes right after no_cancel, the last experiment it draws.
  t.true(html.indexOf('data-experiment="no_cancel"') < html.indexOf('<section class="comparison"'));
  t.true(html.indexOf('<section class="comparison"') < html.indexOf('data-experiment="extraction"'));
});

test('the charts each experiment gets', async (t) => {
  const { figures } = await rich();
  const kinds = figures.map((f) => `${f.figure.experiments.join('+')}:${f.figure.kind}:${f.figure.series.join('|')}`);
  t.deepEqual(kinds, [
    'knockout:line:subject|last', // probability_change (main measure) first
    'knockout:line:subject|last', // rank
    'flow:heatmap:[-5]|[-4]|[-3]|[-2]|[-1]', // layer × token index
    'enrichment:line:subject_last|last',
    // The parameter's value, not its name (`hidden measured`).
    'cancel_mlp:line:attributes_rate of hidden 3 at subject_last',
    'cancel_attention:line:attributes_rate of hidden 3 at subject_last',
    'cancel_mlp+cancel_attention+no_cancel:line:cancel_mlp|cancel_attention|no_cancel (no sweep)',
    'extraction:line:extraction of attention l at last|extraction of mlp l at last',
    'extraction:heatmap:0|1|2', // layer × head
    'patched:bar:0|1', // summarised per hidden source: the % of examples with an event
    'by_position:bar:subject|last',
    // integrated gradients: one line per group of positions, then a hidden state × token heatmap for each of the first 3 facts
    'attribution:line:subject_first|subject_last|subject_other|nonsubject|last|completeness_gap',
    'attribution:heatmap:Subject* [0]|0* [1]|<b>is</b> [2]|in [3]|the [4]',
    'attribution:heatmap:Subject* [0]|1* [1]|<b>is</b> [2]|in [3]|the [4]',
    'attribution:heatmap:Subject* [0]|2* [1]|<b>is</b> [2]|in [3]|the [4]',
  ]);
  t.is(figures[0]!.figure.title, 'knockout: probability_change');
  t.deepEqual(figures[0]!.figure.subtitle, ['block blocked -> last at layers window(l, 3)', 'mean over examples (n = 4), 95% CI: bootstrap percentile']);
  const patched = figures.find((f) => f.figure.id.startsWith('patched'))!.figure;
  t.deepEqual(patched.subtitle, ['patch hidden l at positions subject with hidden source', '% of examples (n = 4) with an extraction event at some l']);
  t.true(patched.tableHtml.includes('<tr><td>0</td><td class="num">25.00</td>') && patched.tableHtml.includes('<tr><td>1</td><td class="num">75.00</td>'), patched.tableHtml);
});

test('each line chart has one line path per series, and CI bands; heatmaps one cell per point', async (t) => {
  const { figures } = await rich();
  for (const { figure, svg } of figures) {
    if (figure.kind === 'line') {
      t.is(count(svg, /aria-roledescription="line mark"/g), figure.series.length, figure.id);
      t.is(count(svg, /aria-roledescription="area mark"/g), figure.series.length, `${figure.id}: CI bands`);
      // vega's SVG, not hand-built: marks carry vega's classes.
      t.regex(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"[^>]* class="marks"/);
    } else if (figure.kind === 'heatmap') {
      const cells = 4 * figure.series.length; // layers × heads or tokens
      t.is(count(svg, /aria-roledescription="rect mark"/g), cells, figure.id);
    } else {
      t.is(count(svg, /aria-roledescription="bar"/g), 2, figure.id);
    }
  }
  // The flat experiment spans the swept range: a line across the three starts.
  const cmp = figures.find((f) => f.figure.id.startsWith('compare'))!;
  const flat = /<path aria-label="[^"]*experiment: no_cancel \(no sweep\)" role="graphics-symbol" aria-roledescription="line mark" d="([^"]+)"/.exec(cmp.svg);
  t.truthy(flat);
  const ys = [...flat![1]!.matchAll(/[ML][\d.]+,([\d.]+)/g)].map((m) => m[1]);
  t.is(ys.length, 3);
  t.is(new Set(ys).size, 1);
});

test('data tables hold the series numbers; figures carry their .dissect source', async (t) => {
  const r = richResults();
  const { html } = await rich();
  const x = r.experiments[0]!;
  const fig = chunk(html, '<figure class="plot" id="fig-knockout--probability_change"', 'figure');
  for (const p of x.series.filter((p) => p.measure === 'probability_change')) {
    const row = `<td>${p.key['l']}</td><td>${p.key['blocked']}</td><td class="num">${p.mean!.toFixed(2)}</td><td class="num">${p.ci![0].toFixed(2)}</td><td class="num">${p.ci![1].toFixed(2)}</td><td class="num">${p.n}</td>`;
    t.true(fig.includes(row), row);
  }
  t.regex(fig, /<details class="data"><summary>Data table<\/summary><table class="data">/);
  t.true(fig.includes('<details class="source"><summary>.dissect source</summary><pre>experiment knockout {\n  for l in layers all\n'));
  t.true(fig.includes('block blocked -&gt; last at layers window(l, 3)'));
  // Extraction's 0/1 events are shown in % of examples, as the summary tables count them.
  const ext = r.experiments.find((x) => x.name === 'extraction')!.series.find((p) => p.measure === 'extraction of mlp l' && p.key['l'] === 2)!;
  const extFig = chunk(html, '<figure class="plot" id="fig-extraction--extraction"', 'figure');
  t.true(extFig.includes(`<td>2</td><td>extraction of mlp l at last</td><td class="num">${(100 * ext.mean!).toFixed(2)}</td>`));
  // The combined chart carries the sources of all three experiments, and the flat one's mean once.
  const cmp = chunk(html, '<section class="comparison"', 'section');
  for (const name of ['cancel_mlp', 'cancel_attention', 'no_cancel']) t.true(cmp.includes(`experiment ${name} {`), name);
  t.true(cmp.includes(`<td>all</td><td>no_cancel (no sweep)</td><td class="num">61.50</td>`));
});

test('an experiment without a sweep gets a visible table; extraction summaries get rate and cross tables', async (t) => {
  const { html } = await rich();
  const flat = chunk(html, '<section class="experiment" id="exp-no_cancel"', 'section');
  t.regex(flat, /<td>attributes_rate of hidden 3 at subject_last<\/td><td class="num">61\.50<\/td>/);
  t.notRegex(flat, /<svg/);
  const ext = chunk(html, '<section class="experiment" id="exp-extraction"', 'section');
  t.regex(ext, /<td><code>extraction of attention l<\/code><\/td><td>attention<\/td><td class="num">4<\/td><td class="num">75\.0%<\/td><td class="num">1\.50<\/td><td class="num">1\.13<\/td>/);
  t.regex(ext, /<tr><td>attention event<\/td><td class="num">25\.0%<\/td><td class="num">50\.0%<\/td><\/tr>/);
  t.regex(ext, /<tr><td>no attention event<\/td><td class="num">25\.0%<\/td><td class="num">0\.0%<\/td><\/tr>/);
  t.regex(ext, /first MLP event in 100\.0%/);
  t.regex(ext, /Ties between the two top scores: 2\./);
});

test('logit-lens tokens: a layer × rank table for the first three examples, escaped, top-1 marked', async (t) => {
  const { html } = await rich();
  const lens = chunk(html, '<section class="experiment" id="exp-lens"', 'section');
  t.is(count(lens, /<table class="tokens">/g), 3);
  t.regex(lens, /The first 3 of 4 examples/);
  t.true(lens.includes('Example 0: Subject 0 &lt;b&gt;is&lt;/b&gt; in'));
  t.false(lens.includes(`Example ${EXAMPLES - 1}:`));
  t.true(lens.includes('<tr><td>0</td><td>&lt;|endoftext|&gt;</td><td> ex0</td><td> layer0</td></tr>'));
  t.true(lens.includes('<tr><td>2</td><td><mark> Target1</mark></td>'));
  t.regex(lens, /at position 4 \(<code> the<\/code>\)/);
});

test('rendering is deterministic; createdAt is the only time in the page', async (t) => {
  const a = await rich();
  const b = await renderReport(richResults());
  t.is(b.html, a.html);
  const later = { ...richResults(), createdAt: '2030-06-01T00:00:00.000Z' } as Results;
  const c = await renderReport(later);
  t.is(c.html.split('2030-06-01T00:00:00.000Z').join('@'), a.html.split('2025-01-31T12:00:00.000Z').join('@'));
  t.notRegex(a.html.split('2025-01-31T12:00:00.000Z').join(''), /\d{4}-\d\d-\d\dT\d\d:\d\d/);
});

test('renameIds renumbers ids and their references in order of appearance', (t) => {
  const svg = '<svg><defs><linearGradient id="gradient_7"/><clipPath id="clip3"/></defs><rect fill="url(#gradient_7)" clip-path="url(#clip3)"/><use href="#clip3"/></svg>';
  t.is(renameIds(svg, 'p'), '<svg><defs><linearGradient id="p-1"/><clipPath id="p-2"/></defs><rect fill="url(#p-1)" clip-path="url(#p-2)"/><use href="#p-2"/></svg>');
});

test('writeReport writes report.html and one standalone SVG (and PNG) per plot', async (t) => {
  const dir = tmp();
  const r = richResults();
  const out = await writeReport(OutputFolder.open(dir), r);
  t.is(out.html, path.join(dir, 'report.html'));
  const figures = allFigures(r, (await rich()).plan);
  t.deepEqual(out.svgs, figures.map((f) => path.join(dir, 'plots', `${f.id}.svg`)));
  for (const f of out.svgs) {
    const text = fs.readFileSync(f, 'utf8');
    t.regex(text, /^<\?xml version="1\.0" encoding="UTF-8"\?>\n<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  }
  if (out.pngSkipped) {
    t.log(`PNG skipped: ${out.pngSkipped}`);
    t.deepEqual(out.pngs, []);
  } else {
    t.is(out.pngs.length, out.svgs.length);
    for (const f of out.pngs) t.deepEqual([...fs.readFileSync(f).subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  }
  // The page links each plot file relative to itself.
  const html = fs.readFileSync(out.html, 'utf8');
  for (const f of figures) t.true(html.includes(`<a href="plots/${f.id}.svg">`), f.id);
});

test('`dissect report results.json` rebuilds the same bytes from results.json alone', async (t) => {
  const dir = tmp();
  const r = richResults();
  await writeReport(OutputFolder.open(path.join(dir, 'run')), r, { png: false });
  const saved = path.join(dir, 'saved', 'results.json');
  fs.mkdirSync(path.dirname(saved));
  fs.writeFileSync(saved, JSON.stringify(r, null, 1));
  const res = await dissect('report', saved);
  t.is(res.status, 0, res.stderr);
  t.regex(res.stderr, new RegExp(`wrote ${path.join(dir, 'saved', 'report.html').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  t.is(fs.readFileSync(path.join(dir, 'saved', 'report.html'), 'utf8'), fs.readFileSync(path.join(dir, 'run', 'report.html'), 'utf8'));
  for (const f of fs.readdirSync(path.join(dir, 'run', 'plots'))) {
    t.is(fs.readFileSync(path.join(dir, 'saved', 'plots', f), 'utf8'), fs.readFileSync(path.join(dir, 'run', 'plots', f), 'utf8'), f);
  }
  // --out puts it elsewhere.
  const other = path.join(dir, 'elsewhere');
  t.is((await dissect('report', saved, '--out', other)).status, 0);
  t.true(fs.existsSync(path.join(other, 'report.html')));
});

test('`dissect report` on an invalid results.json: a clear error, exit 1, nothing written', async (t) => {
  const dir = tmp();
  const bad = makeResults() as unknown as Record<string, any>;
  delete bad['data']['kept'];
  bad['experiments'][0]['series'][0]['mean'] = 123;
  const file = path.join(dir, 'results.json');
  fs.writeFileSync(file, JSON.stringify(bad));
  const res = await dissect('report', file);
  t.is(res.status, 1);
  t.regex(res.stderr, /dissect: error: .*results\.json is not a valid dissect results file \(1 problem\):\n {2}\/data: must have required property 'kept'/);
  t.regex(res.stderr, /hint: .*dissect schema/);
  t.notRegex(res.stderr, /\n\s+at .+:\d+:\d+\)?\n/); // no stack trace
  t.false(fs.existsSync(path.join(dir, 'report.html')));

  // Schema-valid but inconsistent: the cross-field checks speak.
  const inconsistent = makeResults() as unknown as Record<string, any>;
  inconsistent['experiments'][0]['series'][0]['mean'] = 123;
  fs.writeFileSync(file, JSON.stringify(inconsistent));
  const res2 = await dissect('report', file);
  t.is(res2.status, 1);
  t.regex(res2.stderr, /\/experiments\/0\/series\/0\/mean: is 123 but the values' mean is/);

  fs.writeFileSync(file, '{"format": ');
  const res3 = await dissect('report', file);
  t.is(res3.status, 1);
  t.regex(res3.stderr, /results\.json is not JSON/);

  // An older format is named as such, not listed as a hundred schema errors.
  fs.writeFileSync(file, JSON.stringify({ ...makeResults(), format: 'dissect-results/1' }));
  const older = await dissect('report', file);
  t.is(older.status, 1);
  t.regex(older.stderr, /results\.json is dissect-results\/1, written by an older dissect; this version reads dissect-results\/2\n {2}hint: run the program again/);

  const res4 = await dissect('report', path.join(dir, 'missing.json'));
  t.is(res4.status, 1);
  t.regex(res4.stderr, /cannot read .*missing\.json: no such file/);
});

test('the small fixture (no CI) renders too: bands are left out when there is no CI', async (t) => {
  const r = makeResults();
  const { figures, html } = await renderReport(r);
  t.is(figures.length, 2);
  for (const f of figures) {
    t.is(count(f.svg, /aria-roledescription="line mark"/g), 2);
    t.is(count(f.svg, /aria-roledescription="area mark"/g), 0);
  }
  t.regex(html, /<dt>Confidence intervals<\/dt><dd>none<\/dd>/);
});

test('head mappings get a section: flagged heads first, with their pairs', async (t) => {
  const pair = (from: number, to: number) => ({ from, to, fromToken: `a${from}`, toToken: `b${to}`, score: from + to });
  const results = {
    ...richResults(),
    headMappings: {
      side: 'unembedding', subjectToken: 'last', normalisation: 'none', top: 2,
      heads: [
        { layer: 0, head: 0, pairs: [pair(1, 2), pair(3, 4)], subjectAttributeFacts: [] },
        { layer: 1, head: 1, pairs: [pair(5, 6), pair(7, 8)], subjectAttributeFacts: [richResults().examples[0]!.id] },
      ],
    },
  } as const;
  t.deepEqual(validateResults(results), []);
  const { html } = await renderReport(results);
  const section = html.slice(html.indexOf('<section class="mappings"'));
  t.regex(section, /1 of 2 heads map a fact's last subject token to its prediction/);
  const rows = [...section.matchAll(/<tr>(.*?)<\/tr>/gs)].map((m) => m[1]!);
  t.is(rows.length, 3); // header + two heads
  t.regex(rows[1]!, /<code>a5<\/code> → <code>b6<\/code>/); // the flagged head comes first
});

/** The horizontal rules of a chart's own marks (not its axes), as [aria-label, dashed]. */
const markRules = (svg: string): [string, boolean][] =>
  [...svg.matchAll(/<line aria-label="([^"]*)" role="graphics-symbol" aria-roledescription="rule mark"[^>]*?(stroke-dasharray="[^"]*")?\/>/g)]
    .map((m) => [m[1]!, m[2] !== undefined]);

const axisTitles = (svg: string): string[] =>
  [...svg.matchAll(/class="mark-text role-axis-title"[^>]*><text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]!);

test('axes: titles in words with units, linear axes reach 0 and draw it, ranks on a log axis', async (t) => {
  const { figures } = await rich();
  const svgOf = (id: string) => figures.find((f) => f.figure.id === id)!.svg;
  t.deepEqual(axisTitles(svgOf('knockout--probability_change')), ['layer (l)', 'change in p(prediction), %']);
  t.deepEqual(markRules(svgOf('knockout--probability_change')), [['change in p(prediction), %: 0', false]]);
  t.deepEqual(axisTitles(svgOf('knockout--rank')), ['layer (l)', 'rank (0 = top-1)']);
  t.deepEqual(markRules(svgOf('knockout--rank')), [], 'no zero rule on the log axis');
  t.regex(JSON.stringify(figures.find((f) => f.figure.id === 'knockout--rank')!.figure.spec), /"scale":\{"type":"symlog"\}/);
  // The attributes rate (30–60 here) is drawn from 0, with the rule at 0.
  t.deepEqual(markRules(svgOf('cancel_mlp--attributes_rate')), [['attributes rate, %: 0', false]]);
  t.deepEqual(axisTitles(svgOf('extraction--extraction')), ['layer (l)', 'examples with an event, %']);
  t.deepEqual(axisTitles(svgOf('patched--extraction-of-attention-l--examples')), ['hidden state (source)', 'examples with an event, %']);
});

test('the enrichment chart draws the subject-embedding baseline as a dashed reference line', async (t) => {
  const { figures } = await rich();
  const svg = figures.find((f) => f.figure.id.startsWith('enrichment'))!.svg;
  // The baseline experiment's mean over examples 0..3 of 5 + ex.
  t.deepEqual(markRules(svg), [['attributes rate, %: 0', false], ['attributes rate, %: 6.5', true]]);
  t.true(svg.includes('>subject embeddings (baseline): 6.5</text>'));
  // Only attributes-rate charts over hidden states get it (not the sublayer knockout's fixed hidden 3).
  t.deepEqual(markRules(figures.find((f) => f.figure.id === 'knockout--probability_change')!.svg).filter(([, dashed]) => dashed), []);
  t.deepEqual(markRules(figures.find((f) => f.figure.id === 'cancel_mlp--attributes_rate')!.svg).filter(([, dashed]) => dashed), []);
});

test('the per-token heatmap of one example (--example) labels its rows with the prompt\'s tokens, subject tokens starred', async (t) => {
  const one = await renderReport(richResults(1));
  const flow = one.figures.find((f) => f.figure.id.startsWith('flow'))!;
  t.deepEqual(flow.figure.series, ['Subject* [-5]', '0* [-4]', '<b>is</b> [-3]', 'in [-2]', 'the [-1]']);
  t.deepEqual(flow.figure.subtitle, ['block t -> last at layers l', 'example 0: "Subject 0 <b>is</b> in" → "Target0"', '* a subject token']);
  for (const label of ['Subject* [-5]', '0* [-4]', '&lt;b&gt;is&lt;/b&gt; [-3]', 'in [-2]', 'the [-1]']) t.true(flow.svg.includes(`>${label}</text>`), label);
  // Over several examples an index is a different token in each: it stays an index.
  const { figures } = await rich();
  t.deepEqual(figures.find((f) => f.figure.id.startsWith('flow'))!.figure.series, ['[-5]', '[-4]', '[-3]', '[-2]', '[-1]']);
});

test('attribution: a hidden state × position heatmap per fact with its values and tokens, the named choices in every caption', async (t) => {
  const r = richResults();
  const x = r.experiments.find((e) => e.name === 'attribution')!;
  const { figures, html } = await rich();
  const mine = figures.filter((f) => f.figure.experiments.includes('attribution'));
  const choices = 'choices: attribution_target = log_probability, attribution_reduction = sum; integrated_gradients steps = 8, baseline = mean';
  for (const { figure } of mine) {
    t.is(figure.caption, choices, figure.id);
    t.true(figure.subtitle.includes(choices), figure.id);
    t.true(html.includes(`${esc(figure.title)}. ${choices}. File:`), `${figure.id}: the caption under the figure`);
  }
  const heatmap = mine.find((f) => f.figure.kind === 'heatmap')!;
  t.is(heatmap.figure.title, 'attribution: integrated_gradients of hidden h steps 8 baseline mean at all, per position (example 0)');
  t.deepEqual(heatmap.figure.subtitle, [
    'no intervention', 'example 0: "Subject 0 <b>is</b> in" → "Target0"',
    "one of the first 3 of 4 facts; every fact's values are in results.json (positionValues)", choices, '* a subject token',
  ]);
  // Cell (hidden 2, position 3) is the fact's value there.
  const value = x.positionValues!.find((v) => v.example === 0 && v.key['h'] === 2)!.values[3]!;
  t.true(heatmap.svg.includes(`aria-label="hidden state: 2; token (position): in [3]; integrated gradients: ${value}"`));
  // Under --example the one fact gets its heatmap, and no note about other facts.
  const one = await renderReport(richResults(1));
  const only = one.figures.filter((f) => f.figure.kind === 'heatmap' && f.figure.experiments.includes('attribution'));
  t.is(only.length, 1);
  t.false(only[0]!.figure.subtitle.some((s) => s.includes('facts')));
});

test('sections say what their rows did; the contents list every section, tables where there is no plot', async (t) => {
  const { html } = await rich();
  const cancel = chunk(html, '<section class="experiment" id="exp-cancel_attention"', 'section');
  t.true(cancel.includes('<br><code>cancel attention at layers start..start + 1 within 0..2</code></p>'));
  t.true(cancel.includes('<p class="note">12 of 12 rows had a query with every key blocked (expected: cancel attention in the uniform mode cancels'), cancel);
  const nav = chunk(html, '<nav>', 'nav');
  t.regex(nav, /<a href="#exp-lens">lens<\/a> <span class="note">\(tables: top tokens\)<\/span>/);
  t.regex(nav, /<a href="#exp-no_cancel">no_cancel<\/a> <span class="note">\(tables: means\)<\/span>/);
  t.notRegex(nav, /0 plots/);
  const withMappings = await renderReport({
    ...richResults(),
    headMappings: { side: 'unembedding', subjectToken: 'last', normalisation: 'none', top: 2, heads: [{ layer: 0, head: 1, pairs: [], subjectAttributeFacts: [] }] },
  });
  t.regex(chunk(withMappings.html, '<nav>', 'nav'), /<li><a href="#head-mappings">head mappings<\/a> <span class="note">\(1 head\)<\/span><\/li>/);
});

test('a heatmap of values of both signs is coloured by sign around zero (red above, blue below); one-signed values keep viridis', async (t) => {
  const { figures } = await rich();
  const colour = (svg: string, label: string): [number, number, number] => {
    const at = svg.indexOf(`aria-label="${label}"`);
    const tag = svg.slice(svg.lastIndexOf('<', at), svg.indexOf('>', at));
    const m = /fill="rgb\((\d+), (\d+), (\d+)\)"/.exec(tag);
    if (at < 0 || !m) throw new Error(`no coloured cell ${label}: ${tag}`);
    return [Number(m[1]), Number(m[2]), Number(m[3])];
  };
  const signed = figures.find((f) => f.figure.kind === 'heatmap' && f.figure.experiments.includes('attribution'))!;
  const cells = [...signed.svg.matchAll(/aria-label="(hidden state: [^"]*; integrated gradients: ([−\d.e-]+))"/g)].map((m) => ({ label: m[1]!, v: Number(m[2]!.replace('−', '-')) }));
  const top = cells.reduce((a, b) => (b.v > a.v ? b : a));
  const bottom = cells.reduce((a, b) => (b.v < a.v ? b : a));
  t.true(top.v > 0 && bottom.v < 0, 'the fixture has values of both signs');
  const [r1, , b1] = colour(signed.svg, top.label);
  const [r2, , b2] = colour(signed.svg, bottom.label);
  t.true(r1 > b1, `largest value ${top.v} is red`);
  t.true(b2 > r2, `smallest value ${bottom.v} is blue`);
  // Viridis would colour the smallest value dark purple too, but never a value near zero white.
  const middle = cells.reduce((a, b) => (Math.abs(b.v) < Math.abs(a.v) ? b : a));
  t.true(colour(signed.svg, middle.label).every((c) => c > 200), `${middle.v} is near white`);
  for (const { figure } of figures.filter((f) => f.figure.kind === 'heatmap')) {
    const values = (figure.spec as { data: { values: { mean: number }[] } }).data.values.map((v) => v.mean);
    const both = Math.min(...values) < 0 && Math.max(...values) > 0;
    t.is(JSON.stringify(figure.spec).includes(both ? '"domainMid":0' : '"scheme":"viridis"'), true, figure.id);
  }
});
