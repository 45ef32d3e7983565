// Which figures a results object gets, as vega-lite specs with their data tables. Pure:
// nothing here renders or writes. The shapes (spec.md's sweeps, results.json's series):
//
//   one layer/hidden sweep × one position sweep → one line chart per measure, one line per
//       position set, with CI bands (the paper's knockout and attributes-rate figures);
//   one layer/hidden sweep → one line chart per probe (extraction of attention vs of mlp,
//       ...), one line per measure (an attribution probe: one line per group of positions);
//       per-head probes → a layer × head heatmap, per binding of the other sweeps;
//   attribution probes → also a hidden state × position heatmap of each of the first facts,
//       its tokens on the axis, per binding of the sweeps its hidden state does not use;
//   two layer/hidden sweeps → a heatmap per measure;
//   one position sweep → a bar chart per measure with CI whiskers;
//   an extraction probe that `summarize extraction` summarises per binding of another sweep
//       → bars of the % of examples with an event, one per binding;
//   several experiments with the same probe over the same one sweep variable (and
//       experiments with no sweep measuring it: flat lines) → one combined line chart.
//
// Other shapes (three sweeps, two position sweeps) get data tables only. Every chart names
// what its rows did (the interventions, with parameter values) and reads its values in the
// measure's unit (src/report/quantity.ts): linear axes reach 0 and draw it, ranks are on a
// log axis, and attributes-rate charts of hidden states draw the subject-embedding baseline.

import type { TopLevelSpec } from 'vega-lite';
import { isNumeric, measureIdentity, type LayerRef, type MeasureDescriptor } from '../../measure/descriptor.js';
import type { ExtractionSummaryResult, Results, ResultsExample, ResultsExperiment, SweepAxis } from '../../measure/schema.js';
import { measureText, quantity, shownValue } from '../quantity.js';
import { decimalsFor, num, numCell, slug, table, type CellLike } from './format.js';

export type FigureKind = 'line' | 'heatmap' | 'bar';

export interface Figure {
  /** Unique in the report; also the plot file's name (plots/<id>.svg). */
  readonly id: string;
  readonly kind: FigureKind;
  readonly title: string;
  /** Lines under the title: what the rows did, then what is averaged. */
  readonly subtitle: readonly string[];
  /** Experiments drawn (one, or several for a combined chart). */
  readonly experiments: readonly string[];
  readonly spec: TopLevelSpec;
  /** Line and bar charts: the series (lines or bars) drawn, in order. Heatmaps: the rows. */
  readonly series: readonly string[];
  /** The figure's numbers as an HTML table. */
  readonly tableHtml: string;
  /** Said under the figure besides its title: the named choices behind its numbers, where they matter. */
  readonly caption?: string;
}

/** A comparison across experiments, placed after the last experiment it draws. */
export interface Comparison {
  readonly after: string;
  readonly figure: Figure;
}

export interface ReportPlan {
  /** Figures per experiment name, in results order. */
  readonly byExperiment: ReadonlyMap<string, readonly Figure[]>;
  readonly comparisons: readonly Comparison[];
}

/** One plotted value: x (and y for heatmaps, series for lines/bars), mean, CI, n. */
interface Point {
  readonly x: number | string;
  readonly y?: number | string;
  readonly series?: string;
  readonly mean: number | null;
  readonly lo: number | null;
  readonly hi: number | null;
  readonly n: number;
}

const WIDTH = 520;
const HEIGHT = 260;

const isNumericAxis = (a: SweepAxis): boolean => a.kind !== 'positions';

function axisTitle(a: SweepAxis): string {
  if (a.kind === 'layers') return `layer (${a.variable})`;
  if (a.kind === 'hidden') return `hidden state (${a.variable})`;
  return `positions (${a.variable})`;
}

/** Numbers drawn on their own: every numeric measure but the heads of per-head probes (drawn as heatmaps). */
const shownMeasures = (x: ResultsExperiment): MeasureDescriptor[] => x.measures.filter((d) => isNumeric(d) && d.head === undefined);

/** The main measure: probability_change when measured, else the first shown one. */
function mainMeasure(x: ResultsExperiment): MeasureDescriptor | undefined {
  const shown = shownMeasures(x);
  return shown.find((d) => d.probe === 'probability_change') ?? shown[0];
}

/** The shown measures, the main one first. */
function orderedMeasures(x: ResultsExperiment): MeasureDescriptor[] {
  const main = mainMeasure(x);
  const rest = shownMeasures(x).filter((d) => d !== main);
  return main === undefined ? rest : [main, ...rest];
}


function ciText(results: Results): string {
  return results.ci.method === 'none' ? 'no CI' : `${Math.round(results.ci.level * 100)}% CI: ${results.ci.method.replace(/_/g, ' ')}`;
}

function nText(points: readonly Point[]): string {
  if (points.length === 0) return 'n = 0';
  const ns = points.map((p) => p.n);
  const lo = Math.min(...ns);
  const hi = Math.max(...ns);
  return lo === hi ? `n = ${lo}` : `n = ${lo}–${hi}`;
}

/** Series points of one experiment, by binding and measure. */
class SeriesIndex {
  private readonly map = new Map<string, { mean: number | null; ci: readonly [number, number] | null; n: number }>();
  constructor(private readonly x: ResultsExperiment) {
    for (const p of x.series) this.map.set(this.id(p.key, p.measure), p);
  }
  private id(key: Readonly<Record<string, number | string>>, measure: string): string {
    return JSON.stringify([this.x.sweeps.map((s) => key[s.variable]), measure]);
  }
  /** The point of a measure at a binding, in the measure's shown unit. */
  point(key: Readonly<Record<string, number | string>>, measure: MeasureDescriptor, at: Omit<Point, 'mean' | 'lo' | 'hi' | 'n'>): Point {
    const p = this.map.get(this.id(key, measure.id));
    return { ...at, mean: shownValue(measure, p?.mean), lo: shownValue(measure, p?.ci?.[0]), hi: shownValue(measure, p?.ci?.[1]), n: p?.n ?? 0 };
  }
}

/** Every binding of some axes, the first varying slowest. */
function bindingsOf(axes: readonly SweepAxis[]): Record<string, number | string>[] {
  let out: Record<string, number | string>[] = [{}];
  for (const a of axes) out = out.flatMap((b) => a.values.map((v) => ({ ...b, [a.variable]: v })));
  return out;
}

const bindingText = (b: Readonly<Record<string, number | string>>): string =>
  Object.entries(b).map(([k, v]) => `${k} = ${v}`).join(', ');

// ---------------------------------------------------------------------------------------
// Data tables

function pointsTable(points: readonly Point[], cols: { x: string; y?: string; series?: string }): string {
  const d = decimalsFor(points.flatMap((p) => [p.mean, p.lo, p.hi]));
  const head: string[] = [cols.x, ...(cols.y ? [cols.y] : []), ...(cols.series ? [cols.series] : []), 'mean', 'CI low', 'CI high', 'n'];
  const rows: CellLike[][] = points.map((p) => [
    String(p.x),
    ...(cols.y ? [String(p.y)] : []),
    ...(cols.series ? [p.series ?? ''] : []),
    numCell(num(p.mean, d)),
    numCell(num(p.lo, d)),
    numCell(num(p.hi, d)),
    numCell(String(p.n)),
  ]);
  return table(head, rows, 'data');
}

// ---------------------------------------------------------------------------------------
// vega-lite specs

const baseConfig = {
  background: 'white',
  font: 'DejaVu Sans, Verdana, sans-serif',
  view: { stroke: '#ccc' },
  axis: { labelFontSize: 11, titleFontSize: 12, gridColor: '#e6e6e6' },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 480, titleLimit: 480 },
  title: { fontSize: 14, subtitleFontSize: 11, subtitleColor: '#555', anchor: 'start' as const },
};

/** The axis a measure's means are drawn on. */
interface ValueAxis {
  readonly title: string;
  readonly log: boolean;
}

/** The subtitle says what is averaged, so the axis says what one number is. */
const valueAxis = (d: MeasureDescriptor): ValueAxis => ({ title: quantity(d).title, log: quantity(d).log });

/** A value drawn across the whole chart as a dashed line, e.g. the attributes rate of the subject's embeddings. */
interface Reference {
  readonly label: string;
  readonly value: number;
}

/**
 * The y encoding of every layer (one title, one scale). Linear axes always reach 0, where a
 * solid rule is drawn, so that a change reads against "no change"; ranks get a symlog axis.
 */
function yEncoding(axis: ValueAxis): object {
  return { type: 'quantitative', title: axis.title, scale: axis.log ? { type: 'symlog' } : { zero: true }, axis: { titleLimit: HEIGHT } };
}

function guideLayers(axis: ValueAxis, references: readonly Reference[]): object[] {
  const y = yEncoding(axis);
  const layers: object[] = [];
  if (!axis.log) layers.push({ data: { values: [{ value: 0 }] }, mark: { type: 'rule', color: '#444', strokeWidth: 1, name: 'zero' }, encoding: { y: { field: 'value', ...y } } });
  if (references.length) {
    const data = { values: references.map((r) => ({ value: r.value, label: r.label })) };
    layers.push(
      { data, mark: { type: 'rule', color: '#444', strokeDash: [6, 4], strokeWidth: 1.5, name: 'references' }, encoding: { y: { field: 'value', ...y } } },
      { data, mark: { type: 'text', align: 'right', baseline: 'bottom', dy: -3, fontSize: 11, color: '#333', name: 'reference_labels' }, encoding: { y: { field: 'value', ...y }, x: { value: WIDTH - 4 }, text: { field: 'label' } } },
    );
  }
  return layers;
}

function lineSpec(o: {
  title: string; subtitle: readonly string[]; points: readonly Point[]; xTitle: string; axis: ValueAxis;
  seriesTitle: string; seriesOrder: readonly string[]; ci: boolean; references?: readonly Reference[];
}): TopLevelSpec {
  const values = o.points
    .filter((p) => p.mean !== null)
    .map((p) => ({ x: p.x, series: p.series, mean: p.mean, lo: p.lo, hi: p.hi }));
  const xs = values.map((v) => v.x as number);
  const domain = xs.length ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
  const y = yEncoding(o.axis);
  const x = {
    field: 'x', type: 'quantitative', title: o.xTitle,
    scale: { domain, nice: false },
    axis: { format: 'd', tickMinStep: 1 },
  };
  const color = {
    field: 'series', type: 'nominal', title: o.seriesTitle,
    scale: { domain: [...o.seriesOrder], scheme: o.seriesOrder.length > 10 ? 'category20' : 'tableau10' },
    legend: o.seriesOrder.length > 1 ? { orient: 'right', symbolType: 'stroke', symbolOpacity: 1, symbolStrokeWidth: 2.5, symbolSize: 300 } : null,
  };
  const layers: object[] = [...guideLayers(o.axis, o.references ?? [])];
  if (o.ci) {
    layers.push({
      data: { values },
      transform: [{ filter: 'isValid(datum.lo) && isValid(datum.hi)' }],
      mark: { type: 'area', opacity: 0.18, name: 'bands' },
      encoding: { x, color, y: { field: 'lo', ...y }, y2: { field: 'hi' } },
    });
  }
  layers.push({
    data: { values },
    mark: { type: 'line', strokeWidth: 2, point: { size: 22 }, name: 'lines' },
    encoding: { x, color, y: { field: 'mean', ...y } },
  });
  return {
    title: { text: o.title, subtitle: [...o.subtitle] },
    width: WIDTH,
    height: HEIGHT,
    layer: layers,
    config: baseConfig,
  } as TopLevelSpec;
}

function heatmapSpec(o: {
  title: string; subtitle: readonly string[]; points: readonly Point[]; xTitle: string; yTitle: string;
  xOrder: readonly (number | string)[]; yOrder: readonly (number | string)[]; axis: ValueAxis;
}): TopLevelSpec {
  const defined = o.points.filter((p) => p.mean !== null);
  const means = defined.map((p) => p.mean as number);
  const lo = means.length ? Math.min(...means) : 0;
  const hi = means.length ? Math.max(...means) : 1;
  const d = decimalsFor(means) === 4 ? 3 : 1;
  const labelled = o.xOrder.length * o.yOrder.length <= 120;
  // Values of both signs read against zero: a diverging scale centred there, so a cell's colour
  // says its sign (attributions, probability changes); one-signed values keep viridis.
  const signed = lo < 0 && hi > 0;
  const extent = Math.max(-lo, hi);
  const values = defined.map((p) => ({
    x: String(p.x), y: String(p.y), mean: p.mean,
    label: num(p.mean, d),
    // Text colour: white on viridis's dark low end, or on the diverging scale's saturated ends.
    dark: signed ? Math.abs(p.mean as number) / extent > 0.6 : hi > lo ? ((p.mean as number) - lo) / (hi - lo) < 0.5 : true,
  }));
  const cell = Math.max(18, Math.min(40, Math.floor(WIDTH / Math.max(1, o.xOrder.length))));
  const layers: object[] = [
    {
      mark: { type: 'rect', name: 'cells' },
      encoding: {
        color: {
          field: 'mean', type: 'quantitative', title: o.axis.title,
          scale: { ...(signed ? { scheme: 'redblue', reverse: true, domainMid: 0 } : { scheme: 'viridis' }), ...(o.axis.log ? { type: 'symlog' } : {}) },
          legend: { orient: 'right', gradientLength: Math.max(50, cell * o.yOrder.length - 24) },
        },
      },
    },
  ];
  if (labelled) {
    layers.push({
      mark: { type: 'text', fontSize: 10, name: 'labels' },
      encoding: {
        text: { field: 'label' },
        color: { condition: { test: 'datum.dark', value: 'white' }, value: 'black' },
      },
    });
  }
  return {
    title: { text: o.title, subtitle: [...o.subtitle] },
    width: cell * o.xOrder.length,
    height: cell * o.yOrder.length,
    data: { values },
    encoding: {
      x: { field: 'x', type: 'ordinal', title: o.xTitle, sort: o.xOrder.map(String), axis: { labelAngle: 0 } },
      y: { field: 'y', type: 'ordinal', title: o.yTitle, sort: o.yOrder.map(String) },
    },
    layer: layers,
    config: { ...baseConfig, legend: { ...baseConfig.legend, titleLimit: 200 } },
  } as TopLevelSpec;
}

function barSpec(o: {
  title: string; subtitle: readonly string[]; points: readonly Point[]; xTitle: string; axis: ValueAxis;
  order: readonly string[]; ci: boolean;
}): TopLevelSpec {
  const values = o.points.filter((p) => p.mean !== null).map((p) => ({ x: String(p.x), mean: p.mean, lo: p.lo, hi: p.hi }));
  const y = yEncoding(o.axis);
  const x = { field: 'x', type: 'nominal', title: o.xTitle, sort: [...o.order], axis: { labelAngle: o.order.some((s) => s.length > 8) ? -30 : 0, labelLimit: 260 } };
  const layers: object[] = [{ data: { values }, mark: { type: 'bar', name: 'bars' }, encoding: { x, y: { field: 'mean', ...y } } }];
  if (o.ci) {
    layers.push({
      data: { values },
      transform: [{ filter: 'isValid(datum.lo) && isValid(datum.hi)' }],
      mark: { type: 'rule', name: 'whiskers', color: 'black' },
      encoding: { x, y: { field: 'lo', ...y }, y2: { field: 'hi' } },
    });
  }
  layers.push(...guideLayers(o.axis, []));
  return {
    title: { text: o.title, subtitle: [...o.subtitle] },
    width: Math.min(WIDTH, 60 * o.order.length),
    height: HEIGHT,
    layer: layers,
    config: baseConfig,
  } as TopLevelSpec;
}

// ---------------------------------------------------------------------------------------
// Planning

class Ids {
  private readonly used = new Set<string>();
  take(...parts: string[]): string {
    const base = parts.map(slug).join('--');
    let id = base;
    for (let i = 2; this.used.has(id); i++) id = `${base}-${i}`;
    this.used.add(id);
    return id;
  }
}

/** What the rows of an experiment did, with parameter values. */
const interventionLine = (x: ResultsExperiment): string =>
  x.interventionText.length ? x.interventionText.join('; ') : 'no intervention';

/** What a figure averages: the examples (or the one example of an `--example` run) and the CI. */
function averagedLine(results: Results, points: readonly Point[]): string {
  const only = results.examples.length === 1 ? results.examples[0]! : undefined;
  if (only) return exampleLine(only);
  return `mean over examples (${nText(points)}), ${ciText(results)}`;
}

const exampleLine = (ex: ResultsExample): string => `example ${ex.id}: "${ex.prompt}" → "${ex.cleanTop1.token.trim()}"`;

/** A token of an example as an axis label: its text (quoted when blank), starred in the subject, then `index`. */
function tokenLabel(ex: ResultsExample, at: number, index: string): string | undefined {
  const token = ex.tokens[at];
  if (token === undefined) return undefined;
  const inSubject = at >= ex.subjectRange[0] && at < ex.subjectRange[1];
  return `${token.trim() === '' ? JSON.stringify(token) : token.trim()}${inSubject ? '*' : ''} ${index}`;
}

const SUBJECT_TOKEN_NOTE = '* a subject token';

/**
 * Row labels of a per-token heatmap (`each a..b`). With one example (`--example`) they are
 * its tokens, subject tokens starred, as in the paper's single-example figure; over many
 * examples an index names a different token in each, so it stays an index.
 */
function tokenLabels(axis: SweepAxis, examples: readonly ResultsExample[]): string[] {
  const only = examples.length === 1 ? examples[0]! : undefined;
  return axis.values.map((v) => {
    const index = /^\[(-?\d+)\]$/.exec(String(v));
    if (!only || !index) return String(v);
    const i = Number(index[1]);
    return tokenLabel(only, i < 0 ? only.tokens.length + i : i, String(v)) ?? String(v);
  });
}

/**
 * The attributes rate of the subject's embeddings (an experiment with no sweep), drawn on
 * attributes-rate charts over hidden states (the paper's enrichment figure): where the
 * layers start from.
 */
function embeddingBaselines(results: Results, d: MeasureDescriptor): Reference[] {
  if (d.probe !== 'attributes_rate' || d.site !== 'hidden' || Object.keys(d.layer?.variables ?? {}).length === 0) return [];
  return results.experiments.flatMap((x) => {
    if (x.sweeps.length > 0) return [];
    return x.measures.flatMap((m) => {
      if (m.probe !== 'attributes_rate' || m.site !== 'subject_embeddings') return [];
      const mean = new SeriesIndex(x).point({}, m, { x: 0 }).mean;
      return mean === null ? [] : [{ label: `subject embeddings (${x.name}): ${num(mean, 1)}`, value: mean }];
    });
  });
}

/**
 * Extraction probes that `summarize extraction` summarises per binding of another sweep
 * (control A's removed sets, control B's sources): one bar per binding, the % of examples
 * with an event at some layer, instead of one line per binding over the layers.
 */
function extractionBars(x: ResultsExperiment, ids: Ids): { figures: Figure[]; labels: ReadonlySet<string> } {
  const summaries = (x.extraction ?? []).filter((s) => Object.keys(s.key).length > 0);
  const labels = new Set(summaries.flatMap((s) => s.probes.map((p) => p.probe)));
  const figures = [...labels].map((label): Figure => {
    const { head: _head, ...measure } = x.measures.find((m) => m.label === label)!;
    const first = summaries[0]!;
    const range = first.layers ? `${first.layerVariable} in ${first.layers[0]}..${first.layers[first.layers.length - 1]}` : `some ${first.layerVariable}`;
    const rate = (s: ExtractionSummaryResult): number | null => {
      const p = s.probes.find((q) => q.probe === label);
      return (first.layers ? p?.rateInLayers : p?.rateAnyLayer) ?? null;
    };
    const pts = summaries.map((s): Point => ({ x: Object.values(s.key).join(', '), mean: rate(s), lo: null, hi: null, n: s.examples }));
    const order = pts.map((p) => String(p.x));
    const title = `${x.name}: ${measureText(measure)}`;
    const subtitle = [interventionLine(x), `% of examples (${nText(pts)}) with an extraction event at ${range}`];
    const bound = x.sweeps.filter((a) => a.variable in first.key);
    return {
      id: ids.take(x.name, label, 'examples'), kind: 'bar', title, subtitle, experiments: [x.name],
      spec: barSpec({ title, subtitle, points: pts, xTitle: bound.map(axisTitle).join(', '), axis: valueAxis(measure), order, ci: false }),
      series: order,
      tableHtml: pointsTable(pts, { x: bound.map((a) => a.variable).join(', ') }),
    };
  });
  return { figures, labels };
}

function experimentFigures(x: ResultsExperiment, results: Results, ids: Ids): Figure[] {
  const numeric = x.sweeps.filter(isNumericAxis);
  const positions = x.sweeps.filter((s) => !isNumericAxis(s));
  const idx = new SeriesIndex(x);
  const ci = results.ci.method !== 'none';
  const choices = attributionChoices(x, results);
  const sub = (pts: readonly Point[]): string[] => [interventionLine(x), averagedLine(results, pts), ...(choices ? [choices] : [])];
  const bars = extractionBars(x, ids);
  const measures = orderedMeasures(x).filter((m) => !bars.labels.has(m.label));
  const figs: Figure[] = [];

  const tokens = positions.length === 1 && positions[0]!.singleTokens ? positions[0]! : undefined;
  if (numeric.length === 1 && tokens) {
    // One row per token (`each a..b`) × layers: the paper's single-example heatmap.
    const L = numeric[0]!;
    const rows = tokenLabels(tokens, results.examples);
    for (const m of measures) {
      const pts = L.values.flatMap((a) => tokens.values.map((b, i) => idx.point({ [L.variable]: a, [tokens.variable]: b }, m, { x: a, y: rows[i]! })));
      const title = `${x.name}: ${measureText(m)}`;
      const subtitle = [...sub(pts), ...(rows.some((r) => r.includes('* ')) ? [SUBJECT_TOKEN_NOTE] : [])];
      figs.push({
        id: ids.take(x.name, m.id), kind: 'heatmap', title, subtitle, experiments: [x.name],
        spec: heatmapSpec({ title, subtitle, points: pts, xTitle: axisTitle(L), yTitle: `token (${tokens.variable})`, xOrder: L.values, yOrder: rows, axis: valueAxis(m) }),
        series: rows,
        tableHtml: pointsTable(pts, { x: L.variable, y: tokens.variable }),
      });
    }
  } else if (numeric.length === 1 && positions.length <= 1) {
    const L = numeric[0]!;
    const P = positions[0];
    if (P) {
      // One line per position set, one chart per measure.
      for (const m of measures) {
        const pts = L.values.flatMap((l) => P.values.map((p) => idx.point({ [L.variable]: l, [P.variable]: p }, m, { x: l, series: String(p) })));
        const title = `${x.name}: ${measureText(m)}`;
        figs.push({
          id: ids.take(x.name, m.id), kind: 'line', title, subtitle: sub(pts), experiments: [x.name],
          spec: lineSpec({ title, subtitle: sub(pts), points: pts, xTitle: axisTitle(L), axis: valueAxis(m), seriesTitle: axisTitle(P), seriesOrder: P.values.map(String), ci, references: embeddingBaselines(results, m) }),
          series: P.values.map(String),
          tableHtml: pointsTable(pts, { x: L.variable, series: P.variable }),
        });
      }
    } else {
      // One chart per probe, one line per measure; an attribution probe's groups of positions
      // (its parts) are lines of one chart per probe as written, the paper's attribution curves.
      const byProbe = new Map<string, MeasureDescriptor[]>();
      for (const m of measures) {
        const chart = m.part === undefined ? m.probe : m.label;
        byProbe.set(chart, [...(byProbe.get(chart) ?? []), m]);
      }
      for (const [probe, ms] of byProbe) {
        const names = ms.map((m) => m.part ?? measureText(m));
        const pts = ms.flatMap((m, i) => L.values.map((l) => idx.point({ [L.variable]: l }, m, { x: l, series: names[i]! })));
        const { part, ...written } = ms[0]!;
        const title = ms.length === 1 ? `${x.name}: ${measureText(ms[0]!)}` : `${x.name}: ${part === undefined ? probe : measureText(written)}`;
        const seriesTitle = part === undefined ? 'measure' : 'positions';
        figs.push({
          id: ids.take(x.name, probe), kind: 'line', title, subtitle: sub(pts), experiments: [x.name],
          spec: lineSpec({ title, subtitle: sub(pts), points: pts, xTitle: axisTitle(L), axis: valueAxis(ms[0]!), seriesTitle, seriesOrder: names, ci, references: embeddingBaselines(results, ms[0]!) }),
          series: names,
          tableHtml: pointsTable(pts, { x: L.variable, series: seriesTitle }),
        });
      }
    }
    // Per-head probes (their heads share the probe's label): a layer × head heatmap per probe and binding of the position sweep.
    const heads = new Map<string, MeasureDescriptor[]>();
    for (const d of x.measures) {
      if (d.head !== undefined) heads.set(d.label, [...(heads.get(d.label) ?? []), d]);
    }
    for (const [base, hs] of heads) {
      hs.sort((a, b) => a.head! - b.head!);
      const { head: _head, ...probe } = hs[0]!;
      for (const other of bindingsOf(P ? [P] : [])) {
        const pts = hs.flatMap((d) => L.values.map((l) => idx.point({ ...other, [L.variable]: l }, d, { x: l, y: d.head! })));
        const where = Object.keys(other).length ? ` (${bindingText(other)})` : '';
        const title = `${x.name}: ${measureText(probe)}, per head${where}`;
        figs.push({
          id: ids.take(x.name, base, 'heads', ...Object.values(other).map(String)), kind: 'heatmap', title, subtitle: sub(pts), experiments: [x.name],
          spec: heatmapSpec({ title, subtitle: sub(pts), points: pts, xTitle: axisTitle(L), yTitle: 'head', xOrder: L.values, yOrder: hs.map((h) => h.head!), axis: valueAxis(probe) }),
          series: hs.map((h) => String(h.head)),
          tableHtml: pointsTable(pts, { x: L.variable, y: 'head' }),
        });
      }
    }
  } else if (numeric.length === 2 && positions.length === 0) {
    // Two numeric sweeps: a heatmap per measure, the layer sweep (if any) across.
    const [A, B] = numeric[1]!.kind === 'layers' && numeric[0]!.kind !== 'layers' ? [numeric[1]!, numeric[0]!] : [numeric[0]!, numeric[1]!];
    for (const m of measures) {
      const pts = A.values.flatMap((a) => B.values.map((b) => idx.point({ [A.variable]: a, [B.variable]: b }, m, { x: a, y: b })));
      const title = `${x.name}: ${measureText(m)}`;
      figs.push({
        id: ids.take(x.name, m.id), kind: 'heatmap', title, subtitle: sub(pts), experiments: [x.name],
        spec: heatmapSpec({ title, subtitle: sub(pts), points: pts, xTitle: axisTitle(A), yTitle: axisTitle(B), xOrder: A.values, yOrder: B.values, axis: valueAxis(m) }),
        series: B.values.map(String),
        tableHtml: pointsTable(pts, { x: A.variable, y: B.variable }),
      });
    }
  } else if (numeric.length === 0 && positions.length === 1) {
    const P = positions[0]!;
    for (const m of measures) {
      const pts = P.values.map((p) => idx.point({ [P.variable]: p }, m, { x: String(p) }));
      const title = `${x.name}: ${measureText(m)}`;
      figs.push({
        id: ids.take(x.name, m.id), kind: 'bar', title, subtitle: sub(pts), experiments: [x.name],
        spec: barSpec({ title, subtitle: sub(pts), points: pts, xTitle: axisTitle(P), axis: valueAxis(m), order: P.values.map(String), ci }),
        series: P.values.map(String),
        tableHtml: pointsTable(pts, { x: P.variable }),
      });
    }
  }
  const all = [...figs, ...attributionHeatmaps(x, results, ids, choices), ...bars.figures];
  return choices ? all.map((f) => ({ ...f, caption: choices })) : all;
}

const isAttributionProbe = (d: MeasureDescriptor): boolean => d.probe === 'attribution' || d.probe === 'integrated_gradients';

/** The named choices behind an experiment's attribution numbers, or undefined when it has no attribution probe. */
function attributionChoices(x: ResultsExperiment, results: Results): string | undefined {
  const probes = x.measures.filter(isAttributionProbe);
  if (!probes.length) return undefined;
  const named = ['attribution_target', 'attribution_reduction'].flatMap((c) => (results.choices[c] ? [`${c} = ${results.choices[c]}`] : []));
  const integrations = new Set(probes.flatMap((d) => (d.steps === undefined ? [] : [`integrated_gradients steps = ${d.steps}, baseline = ${d.baseline}`])));
  return `choices: ${[named.join(', '), ...integrations].join('; ')}`;
}

/** Facts that get a heatmap of their own per attribution probe (the first in results order); the rest are in results.json. */
const ATTRIBUTION_HEATMAP_FACTS = 3;

/** A layer as written, evaluated at a binding of the sweep variables. */
const layerAt = (ref: LayerRef, key: Readonly<Record<string, number | string>>): number =>
  Object.entries(ref.variables).reduce((l, [name, c]) => l + c * Number(key[name]), ref.constant);

/**
 * Per attribution probe, fact and binding of the sweeps its layer does not use: a hidden state ×
 * position heatmap of the per-position values (positionValues), the fact's tokens on the axis,
 * as the paper's attribution figure reads one prompt. Over a dataset only the first facts get one.
 */
function attributionHeatmaps(x: ResultsExperiment, results: Results, ids: Ids, choices: string | undefined): Figure[] {
  const rows = x.positionValues ?? [];
  const labels = [...new Set(x.measures.filter(isAttributionProbe).map((d) => d.label))];
  const facts = results.examples.slice(0, ATTRIBUTION_HEATMAP_FACTS);
  const factsLine = results.examples.length > facts.length
    ? [`one of the first ${facts.length} of ${results.examples.length} facts; every fact's values are in results.json (positionValues)`] : [];
  return labels.flatMap((label) => {
    const { part: _part, ...probe } = x.measures.find((d) => d.label === label)!;
    const layer = probe.layer!;
    const other = x.sweeps.filter((a) => !(a.variable in layer.variables));
    return facts.flatMap((ex) => bindingsOf(other).flatMap((binding): Figure[] => {
      const mine = rows.filter((r) => r.example === ex.id && r.measure === label && other.every((a) => r.key[a.variable] === binding[a.variable]));
      if (!mine.length) return [];
      const states = [...new Set(mine.map((r) => layerAt(layer, r.key)))].sort((a, b) => a - b);
      const positions = [...new Set(mine.flatMap((r) => r.positions))].sort((a, b) => a - b);
      const tokenAt = new Map(positions.map((p) => [p, tokenLabel(ex, p, `[${p}]`) ?? `[${p}]`]));
      const pts = mine.flatMap((r) => r.positions.map((p, i): Point => ({ x: layerAt(layer, r.key), y: tokenAt.get(p)!, mean: r.values[i]!, lo: null, hi: null, n: 1 })));
      const where = Object.keys(binding).length ? `, ${bindingText(binding)}` : '';
      const title = `${x.name}: ${measureText(probe)}, per position (example ${ex.id}${where})`;
      const yOrder = positions.map((p) => tokenAt.get(p)!);
      const subtitle = [interventionLine(x), exampleLine(ex), ...factsLine, ...(choices ? [choices] : []),
        ...(yOrder.some((t) => t.includes('* ')) ? [SUBJECT_TOKEN_NOTE] : [])];
      return [{
        id: ids.take(x.name, label, 'example', String(ex.id), ...Object.values(binding).map(String)), kind: 'heatmap', title, subtitle, experiments: [x.name],
        spec: heatmapSpec({ title, subtitle, points: pts, xTitle: 'hidden state', yTitle: 'token (position)', xOrder: states, yOrder, axis: valueAxis(probe) }),
        series: yOrder,
        tableHtml: pointsTable(pts, { x: 'hidden state', y: 'position' }),
      }];
    }));
  });
}

/** An experiment that measures a compared measure, and its descriptor there. */
interface Measuring { readonly x: ResultsExperiment; readonly measure: MeasureDescriptor }

/** Experiments measuring the same measure (by descriptor) over the same single sweep variable, plus flat (unswept) ones. */
function comparisons(results: Results, ids: Ids): Comparison[] {
  const ci = results.ci.method !== 'none';
  const order = results.experiments.map((x) => x.name);
  const groups = new Map<string, { axis: SweepAxis; measure: MeasureDescriptor; swept: Measuring[] }>();
  const flat = new Map<string, Measuring[]>();
  for (const x of results.experiments) {
    for (const m of shownMeasures(x)) {
      const what = measureIdentity(m);
      if (x.sweeps.length === 0) flat.set(what, [...(flat.get(what) ?? []), { x, measure: m }]);
      else if (x.sweeps.length === 1 && isNumericAxis(x.sweeps[0]!)) {
        const a = x.sweeps[0]!;
        const k = JSON.stringify([what, a.variable, a.kind]);
        const g = groups.get(k) ?? { axis: a, measure: m, swept: [] };
        g.swept.push({ x, measure: m });
        groups.set(k, g);
      }
    }
  }
  const out: Comparison[] = [];
  for (const { axis, measure, swept } of groups.values()) {
    const flats = flat.get(measureIdentity(measure)) ?? [];
    if (swept.length + flats.length < 2) continue;
    const xs = [...new Set(swept.flatMap(({ x }) => x.sweeps[0]!.values as number[]))].sort((a, b) => a - b);
    const pts: Point[] = [];
    const tablePts: Point[] = [];
    for (const { x, measure: m } of swept) {
      const idx = new SeriesIndex(x);
      for (const v of x.sweeps[0]!.values) {
        const p = idx.point({ [axis.variable]: v }, m, { x: v, series: x.name });
        pts.push(p);
        tablePts.push(p);
      }
    }
    for (const { x, measure: m } of flats) {
      const p = new SeriesIndex(x).point({}, m, { x: 'all', series: `${x.name} (no sweep)` });
      tablePts.push(p);
      for (const v of xs) pts.push({ ...p, x: v });
    }
    const names = [...swept, ...flats].map(({ x }) => x.name);
    const seriesOrder = [...swept.map(({ x }) => x.name), ...flats.map(({ x }) => `${x.name} (no sweep)`)];
    const sublayer = swept.every(({ x }) => x.interventions.includes('cancel'));
    const title = `${sublayer ? 'Sublayer knockout' : 'Compared'}: ${measureText(measure)}`;
    const subtitle = [
      ...[...swept, ...flats].map(({ x }) => `${x.name}: ${interventionLine(x)}`),
      averagedLine(results, tablePts),
    ];
    const after = names.reduce((a, b) => (order.indexOf(a) > order.indexOf(b) ? a : b));
    out.push({
      after,
      figure: {
        id: ids.take('compare', measure.probe, ...names), kind: 'line', title, subtitle, experiments: names,
        spec: lineSpec({ title, subtitle, points: pts, xTitle: axisTitle(axis), axis: valueAxis(measure), seriesTitle: 'experiment', seriesOrder, ci }),
        series: seriesOrder,
        tableHtml: pointsTable(tablePts, { x: axis.variable, series: 'experiment' }),
      },
    });
  }
  return out;
}

/** The figures of a report, without rendering them. */
export function planFigures(results: Results): ReportPlan {
  const ids = new Ids();
  const byExperiment = new Map<string, Figure[]>();
  for (const x of results.experiments) byExperiment.set(x.name, experimentFigures(x, results, ids));
  return { byExperiment, comparisons: comparisons(results, ids) };
}

/** Every figure of a plan, in page order. */
export function allFigures(results: Results, plan: ReportPlan): Figure[] {
  return results.experiments.flatMap((x) => [
    ...(plan.byExperiment.get(x.name) ?? []),
    ...plan.comparisons.filter((c) => c.after === x.name).map((c) => c.figure),
  ]);
}
