// The text printed after a run: the data kept, one compact table per experiment (rows =
// the layer sweep, columns = the other sweep, cells = the mean of the main measure), and
// where the result files are.

import type { SeriesPoint, SweepAxis } from '../measure/aggregate.js';
import type { Results, ResultsExperiment } from './schema.js';
import type { WrittenResults } from './write.js';

export interface SummaryOptions {
  /** Measure shown in the tables; default probability_change if measured, else the first. */
  readonly measure?: string;
  /** Append "[lo, hi]" to each cell. */
  readonly showCi?: boolean;
}

const measureTitles: Readonly<Record<string, string>> = {
  probability_change: "mean % change in the target's probability",
  probability: "mean probability of the target",
  rank: 'mean rank of the target (0 = top-1)',
};

const title = (measure: string): string => measureTitles[measure] ?? `mean ${measure}`;

/** Decimals by measure: probabilities need four; percentages, rates and ranks one; 0/1 events two. */
function decimals(measure: string): number {
  if (measure === 'probability' || measure.startsWith('attention_weight')) return 4;
  if (measure.startsWith('extraction')) return 2;
  return 1;
}

function fmt(v: number | null, measure: string): string {
  if (v === null) return '–';
  const s = v.toFixed(decimals(measure));
  return /^-0(\.0*)?$/.test(s) ? s.slice(1) : s; // no "-0.0"
}

function cell(p: SeriesPoint | undefined, measure: string, showCi: boolean): string {
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

/** The lines of one experiment's block. */
export function experimentSummary(x: ResultsExperiment, results: Results, options: SummaryOptions = {}): string[] {
  const measure: string =
    options.measure !== undefined && x.measures.includes(options.measure)
      ? options.measure
      : x.measures.includes('probability_change')
        ? 'probability_change'
        : x.measures[0]!;
  const showCi = options.showCi === true;
  const points = x.series.filter((p) => p.measure === measure);
  const byKey = new Map(points.map((p) => [keyString(x.sweeps, p.key), p]));
  const ci =
    results.ci.method === 'none' ? 'no CI' : `${Math.round(results.ci.level * 100)}% CI: ${results.ci.method}`;
  const lines = [`${x.name}: ${title(measure)} (${nText(points)}, ${ci})`];

  const rowAxis = x.sweeps.find((s) => s.kind !== 'positions') ?? x.sweeps[0];
  const colAxis = x.sweeps.find((s) => s !== rowAxis);
  const rest = x.sweeps.filter((s) => s !== rowAxis && s !== colAxis);

  if (rowAxis === undefined) {
    lines.push(`  ${cell(byKey.get(keyString(x.sweeps, {})), measure, showCi)}`);
  } else {
    // One table per binding of the remaining sweeps (usually just one table).
    let groups: Record<string, number | string>[] = [{}];
    for (const a of rest) groups = groups.flatMap((g) => a.values.map((v) => ({ ...g, [a.variable]: v })));
    for (const g of groups) {
      if (rest.length > 0) lines.push(`  ${rest.map((a) => `${a.variable} = ${g[a.variable]}`).join(', ')}`);
      const header = [rowAxis.variable, ...(colAxis === undefined ? [measure] : colAxis.values.map(String))];
      const table: string[][] = [header];
      for (const rv of rowAxis.values) {
        const row = [String(rv)];
        for (const cv of colAxis === undefined ? [undefined] : colAxis.values) {
          const key: Record<string, number | string> = { ...g, [rowAxis.variable]: rv };
          if (colAxis !== undefined && cv !== undefined) key[colAxis.variable] = cv;
          row.push(cell(byKey.get(keyString(x.sweeps, key)), measure, showCi));
        }
        table.push(row);
      }
      lines.push(...renderTable(table, rest.length > 0 ? '    ' : '  '));
    }
  }
  const others = x.measures.filter((m) => m !== measure);
  const tail = [`forward passes: ${x.forwardPasses}`, `fully blocked rows: ${x.fullyBlockedRows}`];
  if (others.length > 0) tail.push(`also measured: ${others.join(', ')}`);
  lines.push(`  ${tail.join('; ')}`);
  return lines;
}

/** The whole after-run text, ending with a newline. */
export function formatSummary(results: Results, written?: WrittenResults, options: SummaryOptions = {}): string {
  const d = results.data;
  const dropped = Object.entries(d.dropped)
    .filter(([, n]) => n > 0)
    .map(([reason, n]) => `${reason} ${n}`);
  const lines = [
    `examples: ${d.kept} of ${d.total} kept${dropped.length > 0 ? ` (dropped: ${dropped.join(', ')})` : ''}`,
    '',
  ];
  for (const x of results.experiments) lines.push(...experimentSummary(x, results, options), '');
  if (written !== undefined) lines.push(`results: ${written.json}`, `         ${written.csv}`);
  else if (lines[lines.length - 1] === '') lines.pop();
  return lines.join('\n') + '\n';
}
