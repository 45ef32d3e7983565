// The report page: one self-contained HTML document (inline CSS and SVG, no script, no
// network: its Content-Security-Policy forbids loading anything). A summary of the run,
// then one <section class="experiment"> per experiment, and a <section class="comparison">
// after the last experiment of each combined chart.

import { relative } from 'node:path';
import type { ExtractionSummaryResult, Results, ResultsExperiment, ResultsHeadMappings, TokenRow } from '../../measure/schema.js';
import type { Figure, ReportPlan } from './figures.js';
import { decimalsFor, esc, num, numCell, pct, rawCell, shortHash, table, type CellLike } from './format.js';
import { fullyBlockedText, headMappingNormalisationNote, shardNote } from '../summary.js';
import { measureText, shownValue } from '../quantity.js';
import { plural } from '../../plural.js';

/** Examples whose logit-lens tokens are shown. */
const TOKEN_EXAMPLES = 3;

export interface RenderedFigure {
  readonly figure: Figure;
  readonly svg: string;
  /** Path of the standalone SVG, relative to the report. */
  readonly file: string;
}

const CSS = `
:root { color-scheme: light; }
body { font: 15px/1.45 "DejaVu Sans", Verdana, system-ui, sans-serif; color: #1d1d1f; margin: 0; background: #f6f6f4; }
main { max-width: 1040px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 26px; margin: 8px 0 2px; }
h2 { font-size: 20px; margin: 0 0 6px; }
h3 { font-size: 16px; margin: 18px 0 6px; }
.sub { color: #555; margin: 0 0 18px; }
section { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 16px 20px; margin: 18px 0; }
section.comparison { border-color: #9ab; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
dl.facts dt { font-weight: bold; color: #333; }
dl.facts dd { margin: 0; }
code, pre, .mono { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 13px; }
pre { background: #f3f3f0; padding: 10px 12px; overflow-x: auto; border-radius: 4px; margin: 6px 0; }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0ec; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafaf8; }
table.tokens td { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; white-space: pre; }
mark { background: #ffe08a; }
figure.plot { margin: 14px 0 20px; }
figure.plot svg { max-width: 100%; height: auto; }
figcaption { font-size: 13px; color: #555; }
details { margin: 4px 0; }
summary { cursor: pointer; color: #2a5d8f; font-size: 13px; }
nav ol { columns: 2; margin: 6px 0 0; }
nav li { break-inside: avoid; }
td code { white-space: nowrap; }
.meta { color: #444; font-size: 14px; }
.note { color: #666; font-size: 13px; }
`;

function facts(rows: readonly (readonly [string, string])[]): string {
  return `<dl class="facts">\n${rows.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join('\n')}\n</dl>`;
}

const code = (s: string): string => `<code>${esc(s)}</code>`;

/**
 * A file of the run as the page shows it: relative to the report's folder where that is shorter,
 * so that a report under the repository reads `../../generated/…` rather than the folders of
 * the machine it was made on; the absolute path, as results.json records it, on hover.
 */
function pathCode(path: string, reportDir: string | undefined): string {
  const rel = reportDir === undefined ? path : relative(reportDir, path);
  return `<code title="${esc(path)}">${esc(rel.length < path.length ? rel : path)}</code>`;
}

function summarySection(r: Results, plan: ReportPlan, reportDir: string | undefined): string {
  const p = r.provenance;
  const file = (path: string) => pathCode(path, reportDir);
  const d = r.data;
  const dropped = Object.entries(d.dropped).filter(([, n]) => n > 0);
  const droppedSum = dropped.reduce((a, [, n]) => a + n, 0);
  const rows: [string, string][] = [
    ['Model', `${file(p.model.path)}<br>${esc(p.model.family)}, ${p.model.layers} layers, ${p.model.heads} heads, vocabulary ${p.model.vocab}, sha256 ${code(shortHash(p.model.sha256))}` +
      (p.model.expandedFusedOps ? `<br>fused onnxruntime ops expanded into standard ops: ${esc(Object.entries(p.model.expandedFusedOps).map(([op, n]) => `${n} × ${op}`).join(', '))}` : '')],
    ['Tokenizer', `${file(p.tokenizer.path)}, sha256 ${code(shortHash(p.tokenizer.sha256))}`],
    ['Dataset', `${file(p.dataset.path)} (${esc(p.dataset.format)}), sha256 ${code(shortHash(p.dataset.sha256))}`],
    ['Examples', `<b>${d.kept}</b> kept of ${d.total} read, ${droppedSum} dropped${dropped.length ? ` (${dropped.map(([k, n]) => `${esc(k)}: ${n}`).join(', ')})` : ''}` +
      (d.droppedFacts.length ? `<details class="dropped"><summary>every dropped fact and why</summary><ul>${
        d.droppedFacts.map((f) => `<li>${code(JSON.stringify(f.id))}: ${esc(f.reason)}${f.detail ? ` — ${esc(f.detail)}` : ''}</li>`).join('')}</ul></details>` : '')],
  ];
  if (d.filter === 'known') {
    // The known filter drops facts whose top-1 is not the target; other drops never reach the model.
    const judged = d.total - droppedSum + (d.dropped['not_known'] ?? 0);
    const acc = judged > 0 ? ` = ${num((100 * d.kept) / judged, 1)}%` : '';
    const other = judged !== d.total ? ` (of the ${judged} facts whose prompt could be used)` : '';
    rows.push(['Known-fact accuracy', `${d.kept} / ${judged}${acc}${other}: the model's top-1 token is the target's first token`]);
  }
  rows.push(
    ['Selection', `filter ${code(d.filter)}, bos ${code(d.bos)}, limit ${d.limit ?? '–'}, sample ${d.sample ?? '–'}, seed ${d.seed ?? '–'}`
      + (d.shard ? `<br><b>${esc(shardNote(d.shard))}</b>` : '')],
    ...(p.rows ? [['Rows', `${esc(p.rows.mode === 'last_position' ? 'last position where possible' : 'whole prompts')}: ${esc(p.rows.reason)}` +
      (p.rows.lastPositionRows !== undefined ? ` (${p.rows.lastPositionRows} as the last token, ${p.rows.fullRows ?? 0} over the whole prompt` +
        `${p.rows.cleanPassRows !== undefined ? `, ${p.rows.cleanPassRows} read from the clean pass` : ''})` : '') +
      (p.rows.journalFacts ? `; besides, ${p.rows.journalFacts} facts (${p.rows.journalRows ?? 0} rows) came finished from the journal of an earlier run or a merged shard` : '')] as [string, string]] : []),
    ['Device', `${esc(p.device)}, onnxruntime ${esc(p.onnxruntime.version)}${p.node ? `, node ${esc(p.node)}` : ''}, NVIDIA_TF32_OVERRIDE ${p.env.NVIDIA_TF32_OVERRIDE === null ? 'unset' : code(p.env.NVIDIA_TF32_OVERRIDE)}`],
    ['Confidence intervals', r.ci.method === 'none' ? 'none' : `${Math.round(r.ci.level * 100)}% ${esc(r.ci.method.replace(/_/g, ' '))}, ${r.ci.resamples} resamples, seed ${r.ci.seed}`],
    ['Program', `${file(p.source.path)}, sha256 ${code(shortHash(p.source.sha256))}`],
    ['Run', `${esc(r.tool.name)} ${esc(r.tool.version)}, ${esc(r.createdAt)}${r.fingerprint ? `, fingerprint ${code(shortHash(r.fingerprint))}` : ''}<br>${code(['dissect', ...r.command].join(' '))}`],
  );
  const choices = Object.keys(r.choices).sort();
  const choiceTable = choices.length
    ? table(['choice', 'value', 'meaning'], choices.map((k) => [rawCell(code(k)), rawCell(code(r.choices[k]!)), r.choiceMeanings[k] ?? '']), 'choices')
    : '<p class="note">No named choices.</p>';
  const params = Object.keys(r.params);
  const paramTable = params.length
    ? `<details><summary>Parameters (${params.length})</summary>${table(['param', 'value'], params.map((k) => [rawCell(code(k)), rawCell(code(String(r.params[k])))]), 'params')}</details>`
    : '';
  const toc = r.experiments.map((x) => {
    const extra = plan.comparisons.filter((c) => c.after === x.name).map((c) => `<li><a href="#cmp-${esc(c.figure.id)}">${esc(c.figure.title)}</a></li>`);
    return `<li><a href="#exp-${esc(x.name)}">${esc(x.name)}</a> <span class="note">(${esc(contentsNote(x, plan.byExperiment.get(x.name)?.length ?? 0))})</span>${extra.length ? `<ul>${extra.join('')}</ul>` : ''}</li>`;
  });
  if (r.headMappings) toc.push(`<li><a href="#head-mappings">head mappings</a> <span class="note">(${plural(r.headMappings.heads.length, 'head')})</span></li>`);
  return `<section class="summary" id="summary">
<h2>Summary</h2>
${facts(rows)}
<h3>Semantic choices</h3>
${choiceTable}
${paramTable}
<h3>Experiments</h3>
<nav><ol>${toc.join('\n')}</ol></nav>
</section>`;
}

/** What an experiment's section shows, for the contents: its plots, else its tables. */
function fullyBlockedNote(x: ResultsExperiment, r: Results): string {
  const text = fullyBlockedText(x, r);
  return text === undefined ? '' : `<p class="note">${esc(text)}.</p>`;
}

function contentsNote(x: ResultsExperiment, plots: number): string {
  if (plots > 0) return plural(plots, 'plot');
  const tables = [
    ...(x.series.length ? ['means'] : []),
    ...(x.extraction?.length ? ['extraction summary'] : []),
    ...(x.tokens?.length ? ['top tokens'] : []),
  ];
  return tables.length ? `tables: ${tables.join(', ')}` : 'no values';
}

function sourceDetails(source: string, label = '.dissect source'): string {
  return `<details class="source"><summary>${esc(label)}</summary><pre>${esc(source)}</pre></details>`;
}

function figureHtml(f: RenderedFigure, sources: string): string {
  const { figure } = f;
  return `<figure class="plot" id="fig-${esc(figure.id)}" data-plot="${esc(figure.id)}" data-kind="${figure.kind}" data-series="${figure.series.length}">
${f.svg}
<figcaption>${esc(figure.title)}.${figure.caption ? ` ${esc(figure.caption)}.` : ''} File: <a href="${esc(f.file)}">${esc(f.file)}</a></figcaption>
<details class="data"><summary>Data table</summary>${figure.tableHtml}</details>
${sourceDetails(sources)}
</figure>`;
}

/** The series in each measure's shown unit (src/report/quantity.ts), as the charts draw them. */
function seriesTable(x: ResultsExperiment): string {
  const measures = new Map(x.measures.map((d) => [d.id, d]));
  const rows = x.series.map((p) => {
    const d = measures.get(p.measure)!;
    return { p, name: measureText(d), mean: shownValue(d, p.mean), lo: shownValue(d, p.ci?.[0]), hi: shownValue(d, p.ci?.[1]) };
  });
  const dec = decimalsFor(rows.flatMap((r) => [r.mean, r.lo, r.hi]));
  const vars = x.sweeps.map((s) => s.variable);
  return table(
    [...vars, 'measure', 'mean', 'CI low', 'CI high', 'n'],
    rows.map(({ p, name, mean, lo, hi }): CellLike[] => [
      ...vars.map((v) => String(p.key[v])),
      name,
      numCell(num(mean, dec)),
      numCell(num(lo, dec)),
      numCell(num(hi, dec)),
      numCell(String(p.n)),
    ]),
    'data',
  );
}

const keyText = (key: Readonly<Record<string, number | string>>): string =>
  Object.keys(key).length ? Object.entries(key).map(([k, v]) => `${k} = ${v}`).join(', ') : 'all';

function extractionTables(x: ResultsExperiment, summaries: readonly ExtractionSummaryResult[]): string {
  const withKey = summaries.some((s) => Object.keys(s.key).length > 0);
  const withIn = summaries.some((s) => s.layers !== null);
  const rateRows = summaries.flatMap((s) =>
    s.probes.map((p): CellLike[] => [
      ...(withKey ? [keyText(s.key)] : []),
      rawCell(code(p.probe)),
      p.site,
      numCell(String(s.examples)),
      numCell(pct(p.rateAnyLayer)),
      ...(withIn ? [numCell(pct(p.rateInLayers))] : []),
      numCell(num(p.meanEventLayers, 2)),
      numCell(num(p.meanEventLayersAll, 2)),
    ]),
  );
  const first = summaries[0];
  const inHead = withIn && first?.layers ? `event in layers ${first.layers[0]}..${first.layers[first.layers.length - 1]}` : 'event in layers';
  const head = [
    ...(withKey ? ['binding'] : []), 'probe', 'site', 'examples', `event at some ${first?.layerVariable ?? 'layer'}`,
    ...(withIn ? [inHead] : []), 'event layers (examples with one)', 'event layers (all examples)',
  ];
  let html = `<h3>Extraction summary</h3>\n<p class="note">An event: the prediction is the top token of the update at that layer. Rates in % of examples.${x.ties ? ` Ties between the two top scores: ${x.ties}.` : ''}</p>\n${table(head, rateRows, 'extraction')}`;
  for (const s of summaries) {
    const c = s.cross;
    if (c === null) continue;
    html += `\n<h3>Attention × MLP events${withKey ? ` (${esc(keyText(s.key))})` : ''}</h3>
${table(['', 'MLP event', 'no MLP event'], [
    ['attention event', numCell(pct(c.both)), numCell(pct(c.attentionOnly))],
    ['no attention event', numCell(pct(c.mlpOnly)), numCell(pct(c.neither))],
  ], 'cross')}
<p class="note">% of ${s.examples} examples. Of those with both, the first attention event comes no later than the first MLP event in ${pct(c.attentionFirst)}.</p>`;
  }
  return html;
}

function tokenTables(x: ResultsExperiment, r: Results): string {
  const rows = x.tokens ?? [];
  if (rows.length === 0) return '';
  const byExample = new Map<string, TokenRow[]>();
  for (const t of rows) {
    const k = JSON.stringify(t.example);
    byExample.set(k, [...(byExample.get(k) ?? []), t]);
  }
  const shown = r.examples.filter((e) => byExample.has(JSON.stringify(e.id))).slice(0, TOKEN_EXAMPLES);
  const parts = [`<h3>Top tokens</h3>\n<p class="note">The first ${shown.length} of ${byExample.size} examples; the model's clean top-1 token is <mark>marked</mark>.</p>`];
  const vars = x.sweeps.map((s) => s.variable);
  for (const ex of shown) {
    const list = byExample.get(JSON.stringify(ex.id))!;
    const measures = [...new Set(list.map((t) => t.measure))];
    parts.push(`<h3 class="example">Example ${esc(String(ex.id))}: ${esc(ex.prompt)} <span class="note">→ target ${code(ex.target)}, top-1 ${code(ex.cleanTop1.token)} (p = ${num(ex.cleanTop1.prob, 3)})</span></h3>`);
    for (const measure of measures) {
      const ts = list.filter((t) => t.measure === measure);
      const k = Math.max(...ts.map((t) => t.tokens.length));
      const positions = [...new Set(ts.map((t) => t.position))];
      const posText = positions.map((p) => `${p} (${code(ex.tokens[p] ?? '?')})`).join(', ');
      const body = ts.map((t): CellLike[] => [
        ...vars.map((v) => String(t.key[v])),
        ...(positions.length > 1 ? [numCell(String(t.position))] : []),
        ...Array.from({ length: k }, (_, i) => {
          const tok = t.tokens[i];
          if (tok === undefined) return '';
          return rawCell(tok === ex.cleanTop1.token ? `<mark>${esc(tok)}</mark>` : esc(tok));
        }),
      ]);
      const head = [...vars, ...(positions.length > 1 ? ['position'] : []), ...Array.from({ length: k }, (_, i) => `#${i + 1}`)];
      parts.push(`<p class="note">${code(measure)} at position ${posText}</p>\n${table(head, body, 'tokens')}`);
    }
  }
  return parts.join('\n');
}

function sweepText(x: ResultsExperiment): string {
  if (x.sweeps.length === 0) return 'no sweep';
  return x.sweeps.map((s) => {
    const vs = s.values;
    const nums = vs.every((v) => typeof v === 'number') && vs.length > 2 && vs.every((v, i) => i === 0 || (v as number) === (vs[i - 1] as number) + 1);
    return `${code(s.variable)} in ${s.kind} ${esc(nums ? `${vs[0]}..${vs[vs.length - 1]}` : vs.join(', '))}`;
  }).join(' × ');
}

function experimentSection(x: ResultsExperiment, r: Results, figures: readonly RenderedFigure[]): string {
  const meta = [
    sweepText(x),
    plural(x.measures.length, 'measure'),
    `${x.forwardPasses} rows`,
  ].join(' · ');
  const did = x.interventionText.length ? x.interventionText.map(code).join('; ') : 'no intervention';
  const parts = [
    `<section class="experiment" id="exp-${esc(x.name)}" data-experiment="${esc(x.name)}">`, `<h2>${esc(x.name)}</h2>`,
    `<p class="meta">${meta}<br>${did}</p>`, fullyBlockedNote(x, r),
  ];
  for (const f of figures) parts.push(figureHtml(f, x.source));
  if (figures.length === 0 && x.series.length > 0) {
    if (x.sweeps.length === 0) parts.push(seriesTable(x));
    else parts.push(`<p class="note">No chart for this combination of sweeps.</p><details class="data"><summary>Data table</summary>${seriesTable(x)}</details>`);
  }
  if (x.extraction?.length) parts.push(extractionTables(x, x.extraction));
  parts.push(tokenTables(x, r));
  if (figures.length === 0) parts.push(sourceDetails(x.source));
  parts.push('</section>');
  return parts.filter((s) => s !== '').join('\n');
}

function comparisonSection(f: RenderedFigure, r: Results): string {
  const sources = f.figure.experiments
    .map((n) => r.experiments.find((x) => x.name === n)?.source ?? '')
    .join('\n\n');
  return `<section class="comparison" id="cmp-${esc(f.figure.id)}" data-experiments="${esc(f.figure.experiments.join(' '))}">
<h2>${esc(f.figure.title)}</h2>
<p class="meta">${f.figure.experiments.map(code).join(', ')} on one chart; an experiment with no sweep is a flat line.</p>
${figureHtml(f, sources)}
</section>`;
}

/** Head mappings: flagged heads first, each with its top pairs (the first ten shown). */
function headMappingsSection(m: ResultsHeadMappings, normalisationNote: string): string {
  const heads = [...m.heads].sort((a, b) => b.subjectAttributeFacts.length - a.subjectAttributeFacts.length || a.layer - b.layer || a.head - b.head);
  const flagged = heads.filter((h) => h.subjectAttributeFacts.length > 0).length;
  const rows = heads.map((h): CellLike[] => [
    numCell(String(h.layer)), numCell(String(h.head)), numCell(String(h.subjectAttributeFacts.length)),
    rawCell(h.pairs.slice(0, 10).map((p) => `${code(p.fromToken)} → ${code(p.toToken)}`).join(', ')),
  ]);
  return `<section class="mappings" id="head-mappings">
<h2>Head mappings</h2>
<p class="meta">each head's OV circuit in token space, ${code(m.side)} side${normalisationNote}, top ${m.top} pairs · ${flagged} of ${m.heads.length} heads map a fact's ${m.subjectToken === 'last' ? 'last subject token' : 'subject tokens'} to its prediction</p>
${table(['layer', 'head', 'facts', 'top pairs (first 10)'], rows, 'mappings')}
</section>`;
}

/** The whole page, to be written into `reportDir` (paths then shown relative to it). `rendered` maps figure ids to their SVG and file. */
export function renderPage(r: Results, plan: ReportPlan, rendered: ReadonlyMap<string, RenderedFigure>, reportDir?: string): string {
  const get = (f: Figure): RenderedFigure => {
    const out = rendered.get(f.id);
    if (!out) throw new Error(`figure ${f.id} was not rendered`);
    return out;
  };
  const body: string[] = [summarySection(r, plan, reportDir)];
  for (const x of r.experiments) {
    body.push(experimentSection(x, r, (plan.byExperiment.get(x.name) ?? []).map(get)));
    for (const c of plan.comparisons.filter((c) => c.after === x.name)) body.push(comparisonSection(get(c.figure), r));
  }
  if (r.headMappings) body.push(headMappingsSection(r.headMappings, headMappingNormalisationNote(r.headMappings)));
  const name = r.provenance.source.path.split(/[\\/]/).pop() ?? 'results';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="generator" content="${esc(`${r.tool.name} ${r.tool.version}`)}">
<title>${esc(`${name}: dissect report`)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
<h1>${esc(name)}</h1>
<p class="sub">dissect report of ${plural(r.experiments.length, 'experiment')} on ${esc(r.provenance.model.family)} (${r.data.kept} examples), run ${esc(r.createdAt)}</p>
${body.join('\n')}
<section class="program" id="program">
<h2>Program</h2>
${sourceDetails(r.provenance.source.text, `${name} (full text)`)}
</section>
</main>
</body>
</html>
`;
}
