// From journaled raw numbers to measured experiments: per-example values, aggregate
// series and extraction summaries. Needs no model, so `dissect report` and resumed runs
// rebuild everything from the journal alone.

import type { Program } from '../lang/program.js';
import { passesOfRow, type Plan } from '../plan/plan.js';
import { aggregateSeries, sweepAxes } from './aggregate.js';
import { isNumeric, type MeasureDescriptor } from './descriptor.js';
import { knockoutExampleRows } from './knockout.js';
import type { ExampleRecord } from './record.js';
import type {
  ExtractionSummaryResult, PositionValueRow, ResultsExample, ResultsExperiment, SweepAxis, SweepKey, TokenRow, ValueRow,
} from './schema.js';
import type { CiOptions } from './stats.js';

export interface MeasuredRun {
  readonly examples: ResultsExample[];
  readonly dropped: Record<string, number>;
  readonly experiments: ResultsExperiment[];
}

export function measureRecords(program: Program, plan: Plan, records: readonly ExampleRecord[], ci: CiOptions): MeasuredRun {
  const examples: ResultsExample[] = [];
  const dropped: Record<string, number> = {};
  const kept: Extract<ExampleRecord, { status: 'kept' }>[] = [];
  for (const r of records) {
    if (r.status === 'dropped') dropped[r.reason] = (dropped[r.reason] ?? 0) + 1;
    else { examples.push(r.example); kept.push(r); }
  }
  const experiments = plan.experiments.map((exp, e): ResultsExperiment => {
    const source = program.experiments[e]!;
    const axes = sweepAxes(source.sweeps);
    const numeric = exp.measures.filter(isNumeric).map((d) => d.id);
    const values: ValueRow[] = [];
    const tokens: TokenRow[] = [];
    const positionValues: PositionValueRow[] = [];
    let fullyBlockedRows = 0;
    let ties = 0;
    for (const r of kept) {
      // A null row: the row's explicit positions lie outside this fact's prompt.
      const present = r.rows[e]!.flatMap((x, i) => (x ? [{ raw: x, key: exp.rows[i]!.key }] : []));
      const outputs = knockoutExampleRows(r.example.id, r.clean, present.map((p) => ({ key: p.key, ...p.raw })), exp.outputMeasures);
      outputs.forEach((v, i) => values.push({ ...v, values: { ...v.values, ...present[i]!.raw.probes } }));
      present.forEach(({ raw: x, key }) => {
        if (x.fullyBlocked > 0) fullyBlockedRows++;
        ties += x.ties;
        for (const t of x.tokens) tokens.push({ example: r.example.id, key, ...t });
        for (const v of x.positionValues ?? []) positionValues.push({ example: r.example.id, key, ...v });
      });
    }
    const summaries = exp.summaries.flatMap((s) => extractionSummaries(exp.measures, axes, values, s.layers));
    return {
      name: exp.name,
      source: exp.source,
      sweeps: axes,
      measures: exp.measures,
      interventions: exp.interventions,
      interventionText: exp.interventionText,
      forwardPasses: kept.reduce((n, r) => n + r.rows[e]!.reduce((m, x, i) => m + (x ? passesOfRow(exp.rows[i]!) : 0), 0), 0),
      fullyBlockedRows,
      series: aggregateSeries(axes, numeric, values, ci),
      values,
      ...(tokens.length ? { tokens } : {}),
      ...(positionValues.length ? { positionValues } : {}),
      ...(ties ? { ties } : {}),
      ...(summaries.length ? { extraction: summaries } : {}),
    };
  });
  return { examples, dropped, experiments };
}

// ---------------------------------------------------------------------------------------
// Extraction summaries: per example, the layers of the layer sweep at which an extraction
// probe fires (value 1), then rates over examples. A per-head probe fires at a layer when
// any head does: its heads' descriptors share the probe's label.

/** One summary per binding of the sweeps other than the layer sweep. */
function extractionSummaries(
  measures: readonly MeasureDescriptor[], axes: readonly SweepAxis[], values: readonly ValueRow[], within: readonly number[] | null,
): ExtractionSummaryResult[] {
  const layerAxis = axes.find((a) => a.kind === 'layers');
  if (!layerAxis) throw new Error('internal: summarize extraction needs a layer sweep');
  const others = axes.filter((a) => a !== layerAxis);
  const groups = new Map<string, { key: SweepKey; rows: ValueRow[] }>();
  for (const row of values) {
    const key = Object.fromEntries(others.map((a) => [a.variable, row.key[a.variable]!]));
    const id = JSON.stringify(others.map((a) => key[a.variable]));
    const g = groups.get(id) ?? { key, rows: [] };
    g.rows.push(row);
    groups.set(id, g);
  }
  return [...groups.values()].map((g) => extractionSummary(measures, layerAxis.variable, g.key, g.rows, within));
}

/** An extraction probe: its label, its site and the ids of its measures (one per head for `heads`). */
interface ExtractionProbe { readonly label: string; readonly site: MeasureDescriptor['site']; readonly ids: string[] }

function extractionProbes(measures: readonly MeasureDescriptor[]): ExtractionProbe[] {
  const byLabel = new Map<string, ExtractionProbe>();
  for (const d of measures) {
    if (d.probe !== 'extraction') continue;
    const p = byLabel.get(d.label) ?? { label: d.label, site: d.site, ids: [] };
    p.ids.push(d.id);
    byLabel.set(d.label, p);
  }
  return [...byLabel.values()];
}

/** The extraction summary of one binding of the non-layer sweeps: `values` are its rows over the layer sweep. */
export function extractionSummary(
  measures: readonly MeasureDescriptor[], layerVariable: string, key: SweepKey, values: readonly ValueRow[], within: readonly number[] | null,
): ExtractionSummaryResult {
  const extraction = extractionProbes(measures);
  const eventsOf = (row: ValueRow, p: ExtractionProbe): boolean => p.ids.some((id) => (row.values[id] ?? 0) > 0);
  // example → probe label → layers with an event
  const events = new Map<string, Map<string, number[]>>();
  for (const row of values) {
    const layer = row.key[layerVariable] as number;
    const ex = events.get(String(row.example)) ?? new Map<string, number[]>();
    events.set(String(row.example), ex);
    for (const p of extraction) {
      const list = ex.get(p.label) ?? [];
      ex.set(p.label, list);
      if (eventsOf(row, p)) list.push(layer);
    }
  }
  const n = events.size;
  const pct = (count: number, of: number): number | null => (of ? (100 * count) / of : null);
  const perProbe = extraction.map((p) => {
    const lists = [...events.values()].map((m) => m.get(p.label) ?? []);
    const withEvent = lists.filter((l) => l.length > 0);
    return {
      probe: p.label,
      site: p.site,
      rateAnyLayer: pct(withEvent.length, n),
      rateInLayers: within ? pct(lists.filter((l) => l.some((x) => within.includes(x))).length, n) : null,
      meanEventLayers: withEvent.length ? withEvent.reduce((s, l) => s + l.length, 0) / withEvent.length : null,
      meanEventLayersAll: n ? lists.reduce((s, l) => s + l.length, 0) / n : null,
    };
  });
  const attention = extraction.find((p) => p.site === 'attention');
  const mlp = extraction.find((p) => p.site === 'mlp');
  let cross: ExtractionSummaryResult['cross'] = null;
  if (attention && mlp) {
    let both = 0, attentionOnly = 0, mlpOnly = 0, neither = 0, attentionFirst = 0;
    for (const m of events.values()) {
      const a = m.get(attention.label)!;
      const b = m.get(mlp.label)!;
      if (a.length && b.length) { both++; if (Math.min(...a) <= Math.min(...b)) attentionFirst++; }
      else if (a.length) attentionOnly++;
      else if (b.length) mlpOnly++;
      else neither++;
    }
    cross = {
      both: pct(both, n), attentionOnly: pct(attentionOnly, n), mlpOnly: pct(mlpOnly, n), neither: pct(neither, n),
      attentionFirst: pct(attentionFirst, both),
    };
  }
  return { key, layerVariable, layers: within === null ? null : [...within], examples: n, probes: perProbe, cross, ranks: rankAnalysis(measures, values) };
}

/**
 * The paper's rank analysis: where the attention update's top token is the prediction
 * (its target rank is 0), how far down the prediction ranked in a hidden state (typically
 * the last subject token's), i.e. rank_hidden − rank_attention over those rows. Needs one
 * `target_rank` probe of a hidden state and one of the attention update.
 */
export function rankAnalysis(measures: readonly MeasureDescriptor[], values: readonly ValueRow[]): ExtractionSummaryResult['ranks'] {
  const ranks = measures.filter((d) => d.probe === 'target_rank');
  const hidden = ranks.filter((d) => d.site === 'hidden');
  const attention = ranks.filter((d) => d.site === 'attention');
  if (hidden.length !== 1 || attention.length !== 1) return null;
  const diffs: number[] = [];
  for (const row of values) {
    const a = row.values[attention[0]!.id];
    const h = row.values[hidden[0]!.id];
    if (a === 0 && h !== undefined) diffs.push(h - a);
  }
  diffs.sort((x, y) => x - y);
  const mid = diffs.length >> 1;
  return {
    hidden: hidden[0]!.id, attention: attention[0]!.id, rows: diffs.length,
    mean: diffs.length ? diffs.reduce((x, y) => x + y, 0) / diffs.length : null,
    median: diffs.length ? (diffs.length % 2 ? diffs[mid]! : (diffs[mid - 1]! + diffs[mid]!) / 2) : null,
    min: diffs.length ? diffs[0]! : null,
    max: diffs.length ? diffs[diffs.length - 1]! : null,
  };
}

