// From journaled raw numbers to measured experiments: per-example values, aggregate
// series and extraction summaries. Needs no model, so `dissect report` and resumed runs
// rebuild everything from the journal alone.

import type { Experiment, IntExpr, LayerSet, Program } from '../lang/program.js';
import type { Plan, ProbePlan } from '../plan/plan.js';
import type { ResultsExample, ResultsExperiment, ExtractionSummaryResult, TokenRow } from '../report/schema.js';
import { aggregateSeries, sweepAxes, type SweepAxis } from './aggregate.js';
import { knockoutExampleRows, type CleanOutput, type SweepKey, type ValueRow } from './knockout.js';
import type { CiOptions } from './stats.js';

/** The raw numbers of one plan row of one example, as the runner journals them. */
export interface RawRow {
  readonly pNew: number;
  readonly rank: number;
  readonly fullyBlocked: number;
  readonly probes: Readonly<Record<string, number>>;
  readonly tokens: readonly { readonly label: string; readonly position: number; readonly tokens: readonly string[] }[];
  readonly ties: number;
}

export type RawRecord =
  | { readonly status: 'dropped'; readonly reason: string }
  | { readonly status: 'kept'; readonly example: ResultsExample; readonly clean: CleanOutput; readonly rows: readonly (readonly (RawRow | null)[])[] };

export interface MeasuredRun {
  readonly examples: ResultsExample[];
  readonly dropped: Record<string, number>;
  readonly experiments: ResultsExperiment[];
}

/** Every measure label an experiment reports: output measures, then probes (per head where per head). */
function measureLabels(exp: Experiment, heads: number): string[] {
  const labels: string[] = [...exp.measures];
  for (const p of exp.probes) {
    if (p.kind === 'top_tokens') continue;
    const perHead = (p.kind !== 'attention_weight' && p.site.kind === 'heads') || (p.kind === 'attention_weight' && p.heads === 'each');
    if (perHead) for (let h = 0; h < heads; h++) labels.push(`${p.label} [head ${h}]`);
    else labels.push(p.label);
  }
  return labels;
}

export function measureRecords(program: Program, plan: Plan, heads: number, records: readonly RawRecord[], ci: CiOptions): MeasuredRun {
  const examples: ResultsExample[] = [];
  const dropped: Record<string, number> = {};
  const kept: Extract<RawRecord, { status: 'kept' }>[] = [];
  for (const r of records) {
    if (r.status === 'dropped') dropped[r.reason] = (dropped[r.reason] ?? 0) + 1;
    else { examples.push(r.example); kept.push(r); }
  }
  const experiments = plan.experiments.map((exp, e): ResultsExperiment => {
    const source = program.experiments[e]!;
    const axes = sweepAxes(source.sweeps);
    const labels = measureLabels(source, heads);
    const values: ValueRow[] = [];
    const tokens: TokenRow[] = [];
    let fullyBlockedRows = 0;
    let ties = 0;
    for (const r of kept) {
      // A null row: the row's explicit positions lie outside this fact's prompt.
      const present = r.rows[e]!.flatMap((x, i) => (x ? [{ raw: x, key: exp.rows[i]!.key }] : []));
      const outputs = knockoutExampleRows(r.example.id, r.clean, present.map((p) => ({ key: p.key, ...p.raw })), exp.measures);
      outputs.forEach((v, i) => values.push({ ...v, values: { ...v.values, ...present[i]!.raw.probes } }));
      present.forEach(({ raw: x, key }) => {
        if (x.fullyBlocked > 0) fullyBlockedRows++;
        ties += x.ties;
        for (const t of x.tokens) tokens.push({ example: r.example.id, key, ...t });
      });
    }
    const summaries = source.summaries.flatMap((s) => extractionSummaries(exp.rows[0]?.probes ?? [], axes, values, s.layers, heads));
    return {
      name: exp.name,
      source: exp.source,
      sweeps: axes,
      measures: labels,
      forwardPasses: kept.reduce((n, r) => n + r.rows[e]!.filter((x) => x !== null).length, 0),
      fullyBlockedRows,
      series: aggregateSeries(axes, labels, values, ci),
      values,
      ...(tokens.length ? { tokens } : {}),
      ...(ties ? { ties } : {}),
      ...(summaries.length ? { extraction: summaries } : {}),
    };
  });
  return { examples, dropped, experiments };
}

type SiteProbe = Exclude<ProbePlan, { kind: 'attention_weight' }>;

// ---------------------------------------------------------------------------------------
// Extraction summaries: per example, the layers of the layer sweep at which an extraction
// probe fires (value 1), then rates over examples. A per-head probe fires at a layer when
// any head does.

/** Literal layers of `summarize extraction in layers R` (the checker allows no sweep variables there). */
function literalLayers(set: LayerSet): number[] | undefined {
  const lit = (e: IntExpr): number => {
    if (e.kind !== 'int') throw new Error('internal: summarize layers must be literal');
    return e.value;
  };
  switch (set.kind) {
    case 'all': return undefined;
    case 'single': return [lit(set.layer)];
    case 'range': return Array.from({ length: Math.max(0, lit(set.to) - lit(set.from) + 1) }, (_, i) => lit(set.from) + i);
    default: throw new Error(`internal: summarize layers cannot be ${set.kind}`);
  }
}

/** One summary per binding of the sweeps other than the layer sweep. */
function extractionSummaries(
  probes: readonly ProbePlan[], axes: readonly SweepAxis[], values: readonly ValueRow[], range: LayerSet | undefined, heads: number,
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
  const within = range ? literalLayers(range) : undefined;
  return [...groups.values()].map((g) => extractionSummary(probes, layerAxis.variable, g.key, g.rows, within, heads));
}

function extractionSummary(
  probes: readonly ProbePlan[], layerVariable: string, key: SweepKey, values: readonly ValueRow[], within: number[] | undefined, heads: number,
): ExtractionSummaryResult {
  const extraction = probes.filter((p): p is SiteProbe => p.kind === 'extraction');
  const eventsOf = (row: ValueRow, p: (typeof extraction)[number]): boolean =>
    p.site === 'heads'
      ? Array.from({ length: heads }, (_, h) => row.values[`${p.label} [head ${h}]`]).some((v) => v !== undefined && v > 0)
      : (row.values[p.label] ?? 0) > 0;
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
  return { key, layerVariable, layers: within ?? null, examples: n, probes: perProbe, cross, ranks: rankAnalysis(probes, values) };
}

/**
 * The paper's rank analysis: where the attention update's top token is the prediction
 * (its target rank is 0), how far down the prediction ranked in a hidden state (typically
 * the last subject token's), i.e. rank_hidden − rank_attention over those rows. Needs one
 * `target_rank` probe of a hidden state and one of the attention update.
 */
function rankAnalysis(probes: readonly ProbePlan[], values: readonly ValueRow[]): ExtractionSummaryResult['ranks'] {
  const ranks = probes.filter((p): p is SiteProbe => p.kind === 'target_rank');
  const hidden = ranks.filter((p) => p.site === 'hidden');
  const attention = ranks.filter((p) => p.site === 'attention');
  if (hidden.length !== 1 || attention.length !== 1) return null;
  const diffs: number[] = [];
  for (const row of values) {
    const a = row.values[attention[0]!.label];
    const h = row.values[hidden[0]!.label];
    if (a === 0 && h !== undefined) diffs.push(h - a);
  }
  diffs.sort((x, y) => x - y);
  const mid = diffs.length >> 1;
  return {
    hidden: hidden[0]!.label, attention: attention[0]!.label, rows: diffs.length,
    mean: diffs.length ? diffs.reduce((x, y) => x + y, 0) / diffs.length : null,
    median: diffs.length ? (diffs.length % 2 ? diffs[mid]! : (diffs[mid - 1]! + diffs[mid]!) / 2) : null,
    min: diffs.length ? diffs[0]! : null,
    max: diffs.length ? diffs[diffs.length - 1]! : null,
  };
}

