// The text printed after a run: the data kept, one compact table per experiment (rows =
// the layer sweep, columns = the other sweep, cells = the mean of the main measure), and
// where the result files are.

import { isNumeric, type MeasureDescriptor } from '../measure/descriptor.js';
import type { Results, ResultsExperiment, ResultsHeadMappings, SeriesPoint, SweepAxis } from '../measure/schema.js';
import type { WrittenResults } from './write.js';
import { measureText, quantity, shownValue } from './quantity.js';

export interface SummaryOptions {
  /** Id of the measure shown in the tables; default probability_change if measured, else the first. */
  readonly measure?: string;
  /** Append "[lo, hi]" to each cell. */
  readonly showCi?: boolean;
}

const title = (d: MeasureDescriptor): string =>
  d.site === 'logits' ? `mean ${quantity(d).title}` : `mean ${measureText(d)} (${quantity(d).title})`;

/**
 * Decimals by probe: probabilities and attention weights need four; attributions (in units of y,
 * a log-probability by default, often below 0.1) three; percentages (extraction's included) and ranks one.
 */
const DECIMALS: Partial<Record<MeasureDescriptor['probe'], number>> = { probability: 4, attention_weight: 4, attribution: 3, integrated_gradients: 3 };
const decimals = (d: MeasureDescriptor): number => DECIMALS[d.probe] ?? 1;

function fmt(v: number | null, measure: MeasureDescriptor): string {
  const shown = shownValue(measure, v);
  if (shown === null) return '–';
  const s = shown.toFixed(decimals(measure));
  return /^-0(\.0*)?$/.test(s) ? s.slice(1) : s; // no "-0.0"
}

function cell(p: SeriesPoint | undefined, measure: MeasureDescriptor, showCi: boolean): string {
  if (p === undefined) return '–';
  const m = fmt(p.mean, measure);
  return showCi && p.ci !== null ? `${m} [${fmt(p.ci[0], measure)}, ${fmt(p.ci[1], measure)}]` : m;
}

/** Columns right-aligned, first column left-aligned, two spaces apart. */
function renderTable(rows: readonly (readonly string[])[], indent: string): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => [...r[c]!].length)));
  return rows.map(
    (r) =>
      indent +
      r
        .map((s, c) => {
          const pad = ' '.repeat(widths[c]! - [...s].length);
          return c === 0 ? s + pad : pad + s;
        })
        .join('  ')
        .trimEnd(),
  );
}

function keyString(axes: readonly SweepAxis[], key: Readonly<Record<string, number | string>>): string {
  return JSON.stringify(axes.map((a) => key[a.variable]));
}

function nText(points: readonly SeriesPoint[]): string {
  if (points.length === 0) return 'n = 0';
  const ns = points.map((p) => p.n);
  const lo = Math.min(...ns);
  const hi = Math.max(...ns);
  return lo === hi ? `n = ${lo}` : `n = ${lo}–${hi}`;
}

/**
 * The lines of one experiment's block. Rows are the layer (or hidden-state) sweep; columns
 * are the other sweep's values, or, with one sweep, the experiment's measures.
 */
function experimentSummary(x: ResultsExperiment, results: Results, options: SummaryOptions = {}): string[] {
  const shown = x.measures.filter((d) => isNumeric(d) && d.head === undefined);
  const ci = results.ci.method === 'none' ? 'no CI' : `${Math.round(results.ci.level * 100)}% CI: ${results.ci.method}`;
  const rowAxis = x.sweeps.find((s) => s.kind !== 'positions') ?? x.sweeps[0];
  const colAxis = x.sweeps.find((s) => s !== rowAxis);
  const rest = x.sweeps.filter((s) => s !== rowAxis && s !== colAxis);
  const byKey = new Map(x.series.map((p) => [`${keyString(x.sweeps, p.key)}|${p.measure}`, p]));
  const point = (key: Readonly<Record<string, number | string>>, m: MeasureDescriptor) => byKey.get(`${keyString(x.sweeps, key)}|${m.id}`);
  const showCi = options.showCi === true;
  const lines: string[] = [];

  // With two sweeps, one measure fills the table; with one (or none), every measure gets a column.
  const measure = shown.find((d) => d.id === options.measure) ?? shown.find((d) => d.probe === 'probability_change') ?? shown[0];
  const columns = measure === undefined ? [] : colAxis ? [measure] : shown;
  // the groups of positions of one attribution probe: columns named by group, the probe in the title
  const partsOf = columns.length > 1 && columns.every((d) => d.part !== undefined && d.label === columns[0]!.label);
  if (measure === undefined) {
    lines.push(`${x.name}: ${x.tokens?.length ?? 0} top-token lists (see results.json)`);
  } else if (colAxis) {
    lines.push(`${x.name}: ${title(measure)} (${nText(x.series.filter((p) => p.measure === measure.id))}, ${ci})`);
  } else {
    const of = partsOf ? ` of ${columns[0]!.label} per group of positions` : '';
    lines.push(`${x.name}: means${of} (${nText(x.series.filter((p) => columns.some((d) => d.id === p.measure)))}, ${ci})`);
  }
  if (measure !== undefined && rowAxis === undefined) {
    for (const m of columns) lines.push(`  ${m.id}: ${cell(point({}, m), m, showCi)}`);
  } else if (measure !== undefined && rowAxis !== undefined) {
    let groups: Record<string, number | string>[] = [{}];
    for (const a of rest) groups = groups.flatMap((g) => a.values.map((v) => ({ ...g, [a.variable]: v })));
    for (const g of groups) {
      if (rest.length > 0) lines.push(`  ${rest.map((a) => `${a.variable} = ${g[a.variable]}`).join(', ')}`);
      const header = [rowAxis.variable, ...(colAxis ? colAxis.values.map(String) : columns.map((d) => (partsOf ? d.part! : d.id)))];
      const table: string[][] = [header];
      for (const rv of rowAxis.values) {
        const key: Record<string, number | string> = { ...g, [rowAxis.variable]: rv };
        table.push([String(rv), ...(colAxis
          ? colAxis.values.map((cv) => cell(point({ ...key, [colAxis.variable]: cv }, measure), measure, showCi))
          : columns.map((m) => cell(point(key, m), m, showCi)))]);
      }
      lines.push(...renderTable(table, rest.length > 0 ? '    ' : '  '));
    }
  }
  for (const e of x.extraction ?? []) {
    const where = Object.entries(e.key).map(([k, v]) => `${k} = ${v}`).join(', ');
    for (const p of e.probes) {
      const range = e.layers ? `, in layers ${e.layers[0]}..${e.layers[e.layers.length - 1]} ${pct(p.rateInLayers)}` : '';
      lines.push(`  ${where ? `${where}: ` : ''}${p.probe}: examples with an event ${pct(p.rateAnyLayer)}${range}; `
        + `event layers per example ${fixed(p.meanEventLayersAll)}`);
    }
    if (e.ranks && e.ranks.rows > 0) {
      lines.push(`  ${where ? `${where}: ` : ''}where ${e.ranks.attention} is 0 (${e.ranks.rows} rows), ${e.ranks.hidden} is `
        + `${fixed(e.ranks.mean)} on average (median ${fixed(e.ranks.median)}, ${e.ranks.min}..${e.ranks.max})`);
    }
    if (e.cross) {
      lines.push(`  ${where ? `${where}: ` : ''}attention and MLP events: both ${pct(e.cross.both)}, attention only ${pct(e.cross.attentionOnly)}, `
        + `MLP only ${pct(e.cross.mlpOnly)}, neither ${pct(e.cross.neither)}; attention first in ${pct(e.cross.attentionFirst)} of both`);
    }
  }
  const others = x.measures.filter((d) => isNumeric(d) && !columns.includes(d));
  const heads = others.filter((d) => d.head !== undefined).length;
  const fullyBlocked = fullyBlockedText(x, results);
  const tail = [`rows: ${x.forwardPasses}`, ...(fullyBlocked ? [fullyBlocked] : [])];
  if (x.ties) tail.push(`ties at the top: ${x.ties}`);
  const named = others.filter((d) => d.head === undefined);
  if (named.length > 0) tail.push(`also measured: ${named.map((d) => d.id).join(', ')}`);
  if (heads > 0) tail.push(`${heads} per-head measures`);
  lines.push(`  ${tail.join('; ')}`);
  return lines;
}

/**
 * Rows where a query had every key blocked are expected under `cancel attention` in the
 * `uniform` mode (that is how it cancels) and where a block covers a query's whole prefix;
 * the count alone reads like a fault, so it comes with what happened.
 */
export function fullyBlockedText(x: ResultsExperiment, results: Results): string | undefined {
  if (x.fullyBlockedRows === 0) return undefined;
  const uniformCancel = results.choices['cancel_attention'] === 'uniform' && x.interventionText.some((t) => t.startsWith('cancel attention'));
  const why = uniformCancel
    ? "expected: cancel attention in the uniform mode cancels a layer's attention by blocking every key, so the query attends evenly to its prefix"
    : 'a block covered every key of some query, so that query attended evenly to its prefix (the softmax of equal scores)';
  return `${x.fullyBlockedRows} of ${x.forwardPasses} rows had a query with every key blocked (${why})`;
}

const pct = (v: number | null): string => (v === null ? '–' : `${v.toFixed(1)}%`);
const fixed = (v: number | null): string => (v === null ? '–' : v.toFixed(2));

/** The whole after-run text, ending with a newline. */
/** ", token-frequency normalised" when `head_mapping_normalisation` is on: the scores are then on another scale. */
export function headMappingNormalisationNote(mappings: ResultsHeadMappings): string {
  return mappings.normalisation === 'token_frequency' ? ', token-frequency normalised' : '';
}

/** What a shard's results cover, in the summary and the report. */
export function shardNote(shard: NonNullable<Results['data']['shard']>): string {
  const { index, count, batch } = shard;
  return `shard ${index}/${count}: this run measured batches ${index}, ${index + count}, ${index + 2 * count}, …`
    + `${batch ? ` (${batch} facts each)` : ''} of the selection, not the whole; \`dissect merge\` of every shard's folder gives the whole`;
}

/** Dropped facts the console names; results.json and the report list them all. */
const DROPPED_SHOWN = 3;

export function formatSummary(results: Results, written?: WrittenResults, options: SummaryOptions = {}): string {
  const d = results.data;
  const dropped = Object.entries(d.dropped)
    .filter(([, n]) => n > 0)
    .map(([reason, n]) => `${reason} ${n}`);
  const shown = d.droppedFacts.slice(0, DROPPED_SHOWN)
    .map((f) => `  dropped ${JSON.stringify(f.id)}: ${f.reason}${f.detail ? ` (${f.detail})` : ''}`);
  const more = d.droppedFacts.length - shown.length;
  const lines = [
    ...(d.shard ? [shardNote(d.shard)] : []),
    `examples: ${d.kept} of ${d.total} kept${dropped.length > 0 ? ` (dropped: ${dropped.join(', ')})` : ''}`
      + (d.withoutAttributes ? `; ${d.withoutAttributes} without attribute data (no attributes rate)` : ''),
    ...shown, ...(more > 0 ? [`  … and ${more} more dropped (every one in results.json, data.droppedFacts, and the report)`] : []),
    '',
  ];
  for (const x of results.experiments) lines.push(...experimentSummary(x, results, options), '');
  const mappings = results.headMappings;
  if (mappings) {
    const flagged = mappings.heads.filter((h) => h.subjectAttributeFacts.length > 0);
    lines.push(`head mappings (${mappings.side}${headMappingNormalisationNote(mappings)}, top ${mappings.top}): ${mappings.heads.length} heads, `
      + `${flagged.length} map a fact's ${mappings.subjectToken === 'last' ? 'last subject token' : 'subject tokens'} to its prediction`
      + (flagged.length ? `: ${flagged.map((h) => `${h.layer}.${h.head} (${h.subjectAttributeFacts.length} facts)`).join(', ')}` : ''), '');
  }
  if (written !== undefined) lines.push(`results: ${written.json}`, `         ${written.csv}`);
  else if (lines[lines.length - 1] === '') lines.pop();
  return lines.join('\n') + '\n';
}

/**
 * `--example`: everything measured about the run's one example, row by row, in a stable
 * order, so it can be diffed against a notebook's numbers.
 */
export function exampleDump(results: Results): unknown {
  return {
    example: results.examples[0] ?? null,
    dropped: results.data.dropped,
    choices: results.choices,
    experiments: results.experiments.map((x) => ({
      name: x.name,
      rows: x.values.map((v) => ({ key: v.key, values: v.values })),
      ...(x.tokens?.length ? { tokens: x.tokens.map((t) => ({ key: t.key, measure: t.measure, position: t.position, tokens: t.tokens })) } : {}),
    })),
  };
}
