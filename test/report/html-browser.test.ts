// report.html in a real browser (test/browser.ts): the page loads from disk and every section
// and plot must be there and drawn, with no console error, no page error and no request
// other than the page itself.

import * as fs from 'node:fs';
import { pathToFileURL } from 'node:url';
import { browserTest } from '../browser.js';
import { allFigures, planFigures, writeReport } from '../../src/report/html/index.js';
import { richResults } from './html-fixture.js';
import { OutputFolder } from '../../src/output/folder.js';
import { tempDir } from '../temp.js';
import { photographReport, REPORT_PNG_WIDTH } from '../../scripts/report-png.js';

/** A PNG's width and height, from its IHDR chunk. */
const pngSize = (file: string) => {
  const bytes = fs.readFileSync(file);
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
};

browserTest('report.html renders in headless Chromium: every section and plot, no console errors', async (t, browser) => {
  const results = richResults();
  const dir = tempDir('browser');
  const written = await writeReport(OutputFolder.open(dir), results, { png: false });
  const plan = planFigures(results);
  const figures = allFigures(results, plan);

  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const problems: string[] = [];
  const requests: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('request', (r) => requests.push(r.url()));
  const url = pathToFileURL(written.html).href;
  await page.goto(url, { waitUntil: 'load' });

  const seen = await page.evaluate(() => {
    const box = (e: Element) => { const r = e.getBoundingClientRect(); return { w: r.width, h: r.height }; };
    return {
      experiments: [...document.querySelectorAll('section.experiment')].map((s) => ({
        name: s.getAttribute('data-experiment') ?? '',
        heading: s.querySelector('h2')?.textContent ?? '',
        ...box(s),
      })),
      comparisons: document.querySelectorAll('section.comparison').length,
      sections: document.querySelectorAll('section').length,
      figures: [...document.querySelectorAll('figure.plot')].map((f) => {
        const svg = f.querySelector('svg');
        return {
          id: f.getAttribute('data-plot'),
          kind: f.getAttribute('data-kind'),
          series: Number(f.getAttribute('data-series')),
          svgs: f.querySelectorAll('svg').length,
          ...(svg ? box(svg) : { w: 0, h: 0 }),
          lines: f.querySelectorAll('g.mark-line path').length,
          cells: f.querySelectorAll('g.mark-rect path').length,
          // A line drawn is a path with a non-empty geometry.
          drawnLines: [...f.querySelectorAll('g.mark-line path')].filter((p) => (p as SVGPathElement).getTotalLength() > 0).length,
          hasTable: !!f.querySelector('details.data table'),
          hasSource: !!f.querySelector('details.source pre')?.textContent?.includes('experiment '),
        };
      }),
      svgs: document.querySelectorAll('svg').length,
    };
  });

  t.deepEqual(seen.experiments.map((e) => e.name), results.experiments.map((x) => x.name));
  for (const e of seen.experiments) {
    t.is(e.heading, e.name);
    t.true(e.w > 0 && e.h > 0, `section ${e.name} is laid out`);
  }
  t.is(seen.comparisons, plan.comparisons.length);
  t.is(seen.sections, 1 + results.experiments.length + plan.comparisons.length + 1); // summary, experiments, comparisons, program
  t.deepEqual(seen.figures.map((f) => f.id), figures.map((f) => f.id));
  t.is(seen.svgs, figures.length, 'one inline <svg> per plot, nothing else');
  for (const f of seen.figures) {
    t.is(f.svgs, 1, `${f.id}: one svg`);
    t.true(f.w > 100 && f.h > 50, `${f.id}: drawn at ${f.w}×${f.h}`);
    t.true(f.hasTable, `${f.id}: data table`);
    t.true(f.hasSource, `${f.id}: .dissect source`);
    if (f.kind === 'line') t.is(f.drawnLines, f.series, `${f.id}: one drawn line per series`);
    if (f.kind === 'heatmap') t.true(f.cells > 0, `${f.id}: cells`);
  }
  t.deepEqual(problems, []);
  t.deepEqual(requests, [url], 'the page loads nothing but itself');
});

browserTest('report.html in Chromium: axis titles in words, a rule at 0 on linear axes, the example\'s tokens on the per-token and attribution heatmaps, attribution choices in the caption', async (t, browser) => {
  const results = richResults(1); // what `dissect run --example` reports
  const dir = tempDir('browser');
  try {
    const written = await writeReport(OutputFolder.open(dir), results, { png: false });
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    await page.goto(pathToFileURL(written.html).href, { waitUntil: 'load' });
    const figures = await page.evaluate(() => [...document.querySelectorAll('figure.plot')].map((f) => {
      const centreY = (e: Element) => { const r = e.getBoundingClientRect(); return r.top + r.height / 2; };
      return {
        id: f.getAttribute('data-plot') ?? '',
        kind: f.getAttribute('data-kind') ?? '',
        caption: f.querySelector('figcaption')?.textContent ?? '',
        axes: [...f.querySelectorAll('g.role-axis')].map((axis) => ({
          title: axis.querySelector('g.role-axis-title text')?.textContent ?? '',
          labels: [...axis.querySelectorAll('g.role-axis-label text')].map((l) => ({ text: l.textContent ?? '', y: centreY(l) })),
        })).filter((a) => a.title !== ''), // vega draws grid lines as axes of their own, untitled
        zeroRules: [...f.querySelectorAll('g.role-mark line')]
          .filter((l) => (l.getAttribute('aria-label') ?? '').endsWith(': 0') && !l.hasAttribute('stroke-dasharray'))
          .map(centreY),
      };
    }));
    t.true(figures.length > 5);
    for (const f of figures) {
      const [, y] = f.axes;
      t.truthy(y, `${f.id}: two axes`);
      // Titles are words, not identifiers such as probability_change.
      t.notRegex(y!.title, /_/, `${f.id}: y title "${y!.title}"`);
      if (f.kind === 'heatmap') continue;
      if (y!.title.startsWith('rank')) {
        t.deepEqual(f.zeroRules, [], `${f.id}: no rule on a log axis`);
        continue;
      }
      const zero = y!.labels.find((l) => l.text !== '' && Number(l.text.replace('−', '-')) === 0); // '0', or '0.0' beside '−0.5'
      t.truthy(zero, `${f.id}: the axis reaches 0`);
      t.is(f.zeroRules.length, 1, `${f.id}: one rule at 0`);
      t.true(Math.abs(f.zeroRules[0]! - zero!.y) < 4, `${f.id}: the rule (y ${f.zeroRules[0]}) is at the 0 label (y ${zero!.y})`);
    }
    const flow = figures.find((f) => f.id.startsWith('flow'))!;
    t.deepEqual(flow.axes[1]!.labels.map((l) => l.text), ['Subject* [-5]', '0* [-4]', '<b>is</b> [-3]', 'in [-2]', 'the [-1]']);
    t.deepEqual(flow.axes.map((a) => a.title), ['layer (l)', 'token (t)']);
    // The one fact's attribution heatmap: hidden states across, its tokens down, the named choices in the caption.
    const attribution = figures.filter((f) => f.id.startsWith('attribution'));
    t.deepEqual(attribution.map((f) => f.kind), ['line', 'heatmap']);
    const heatmap = attribution[1]!;
    t.deepEqual(heatmap.axes.map((a) => a.title), ['hidden state', 'token (position)']);
    t.deepEqual(heatmap.axes[1]!.labels.map((l) => l.text), ['Subject* [0]', '0* [1]', '<b>is</b> [2]', 'in [3]', 'the [4]']);
    for (const f of attribution) {
      t.true(f.caption.includes('choices: attribution_target = log_probability, attribution_reduction = sum; integrated_gradients steps = 8, baseline = mean.'), f.caption);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

browserTest('npm run report-png photographs a report from its top to the end of its first plot', async (t, browser) => {
  const dir = tempDir('report-png');
  const written = await writeReport(OutputFolder.open(dir), richResults(), { png: false });
  const page = await browser.newPage({ viewport: { width: REPORT_PNG_WIDTH, height: 900 } });
  await page.goto(pathToFileURL(written.html).href);
  const plot = (await page.locator('figure.plot').first().boundingBox())!;
  await page.close();
  const png = `${dir}/report.png`;
  await photographReport(browser, written.html, png);
  t.deepEqual(pngSize(png), { width: REPORT_PNG_WIDTH, height: Math.ceil(plot.y + plot.height + 24) });
  t.is(pngSize(new URL('../../../docs/report.png', import.meta.url).pathname).width, REPORT_PNG_WIDTH);
});
