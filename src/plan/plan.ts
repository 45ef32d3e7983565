// The planning stage: a checked Program becomes plain data — for every experiment, the
// rows (one per sweep binding), what each row blocks, cancels and patches, and what it
// probes. Position sets stay symbolic (they need a tokenized prompt); layers become
// concrete indices. The plan also decides what the compiled variant must offer.

import type { Choices } from '../lang/choices.js';
import type {
  Experiment, IntegrationBaseline, Intervention, IntExpr, LayerSet, MeasureName, ModelShape, PositionSet, Probe, Program, SiteOverrideSpec,
  SourceSpan,
} from '../lang/program.js';
import { evalInt as evalIntWith, layersOf } from '../lang/evaluate.js';
import { rankedTokens } from '../lang/limits.js';
import { siteProbe, type SiteProbeName } from '../lang/probes.js';
import type { MeasureDescriptor } from '../measure/descriptor.js';
import { siteOfStatementName, type LayerSiteName, type SiteOverride } from '../onnx/sites/types.js';
import type { ProjectionRequest, VariantRequest } from '../onnx/variant.js';
import { experimentDescriptors, probeDescriptors } from './measures.js';
import { interventionText } from './text.js';

/** The language's snake_case site names are the model's camelCase ones (`mlp_act` is mlpAct). */
export function siteOverridesOf(specs: readonly SiteOverrideSpec[]): SiteOverride[] {
  return specs.map((s) => ({
    site: siteOfStatementName(s.site) as LayerSiteName, layers: s.layers, tensor: s.tensor,
  }));
}

export interface KnockoutEdges {
  readonly layers: readonly number[];
  readonly heads: readonly number[] | 'all';
  readonly source: PositionSet;
  readonly target: PositionSet;
}

/** A sublayer gate: the update (or MLP pre-activation, per the choice) is multiplied by 0. */
export interface GateCancel {
  readonly sublayer: 'attention' | 'mlp';
  readonly layers: readonly number[];
  readonly positions: PositionSet;
}

export interface PatchPlan {
  /** Block whose input is replaced (= hidden-state index), 0..L-1. */
  readonly layer: number;
  readonly positions: PositionSet;
  readonly source: { readonly kind: 'hidden' | 'mean_hidden' | 'corrupted_hidden'; readonly index: number };
}

/**
 * `recomputed`: block l's attention update at the last position rebuilt from the row's
 * attention probabilities with the row's `recompute` keys removed (`... of attention l without S`).
 * `subject_embeddings`: the mean token embedding of the subject (no layer: 0 stands in; `at` is `subject`).
 */
export type SiteKind = 'hidden' | 'attention' | 'mlp' | 'heads' | 'recomputed' | 'subject_embeddings';

export type ProbePlan =
  | {
      readonly kind: SiteProbeName;
      /** The ids of its measure descriptors: one, or one per head (site `heads`). */
      readonly ids: readonly string[];
      readonly site: SiteKind;
      /** Hidden-state index for `hidden`, block index otherwise. */
      readonly layer: number;
      readonly at: PositionSet;
      /** Top tokens the probe needs from the projection (top_tokens: its k). */
      readonly k: number;
    }
  | {
      readonly kind: 'attention_weight';
      /** The ids of its measure descriptors: one, or one per head (`heads each`). */
      readonly ids: readonly string[];
      readonly layer: number;
      readonly source: PositionSet;
      readonly target: PositionSet;
      readonly heads: 'all' | 'each';
    }
  | AttributionPlan;

/**
 * Gradient attribution of hidden state `layer` (0..L) at the positions `at`: `ids` are its
 * descriptors' ids, one per part (descriptor.ts's attributionParts, integrationParts), in order;
 * `label` keys its per-position values. Integrated gradients run `steps` + 2 forward and backward
 * passes per row and fact (y at α = 1 and 0, then the midpoints), hidden state `layer` replaced at
 * every position by b + α(h − b), h the row's own run's (intervened, where the row blocks or cancels).
 */
export type AttributionPlan =
  | { readonly kind: 'attribution'; readonly ids: readonly string[]; readonly label: string; readonly layer: number; readonly at: PositionSet }
  | {
      readonly kind: 'integrated_gradients';
      readonly ids: readonly string[];
      readonly label: string;
      readonly layer: number;
      readonly at: PositionSet;
      readonly steps: number;
      readonly baseline: IntegrationBaseline;
    };

export const isAttribution = (p: ProbePlan): p is AttributionPlan => p.kind === 'attribution' || p.kind === 'integrated_gradients';

/** Forward passes a row runs per fact: integrated gradients run their steps and both ends. */
export function passesOfRow(row: PlanRow): number {
  const integration = row.probes.find((p) => p.kind === 'integrated_gradients');
  return integration ? integration.steps + 2 : 1;
}

/**
 * Rows of an experiment whose keys are equal run once per fact in the attribution variant: their
 * probes are all `attribution`, whose one backward pass gives every hidden state, and their
 * interventions are equal, so they differ only in the hidden state they read (`for h in hidden
 * all`). undefined: the row runs on its own.
 */
export function sharedGradientRun(exp: ExperimentPlan, row: PlanRow): string | undefined {
  if (!exp.attribution || !row.probes.every((p) => p.kind === 'attribution')) return undefined;
  return JSON.stringify([row.knockouts, row.gates, row.patch ?? null, row.recompute ?? null]);
}

/** The rows of an experiment that run a pass of their own: all but those read from an earlier row's backward pass (sharedGradientRun). */
export function rowsWithOwnRun(exp: ExperimentPlan): PlanRow[] {
  const seen = new Set<string>();
  return exp.rows.filter((r) => {
    const key = sharedGradientRun(exp, r);
    if (key === undefined) return true;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** How many rows of an experiment run in another row's backward pass (sharedGradientRun). */
export function rowsInSharedGradientRuns(exp: ExperimentPlan): number {
  return exp.rows.length - rowsWithOwnRun(exp).length;
}

export type SweepValue = number | string;

export interface PlanRow {
  /** Sweep variable → its value in this row (a layer index, or a position-set label). */
  readonly key: Readonly<Record<string, SweepValue>>;
  readonly knockouts: readonly KnockoutEdges[];
  readonly gates: readonly GateCancel[];
  readonly patch?: PatchPlan;
  /** Keys removed by the row's `without` probes (one set per row; the checker makes them agree). */
  readonly recompute?: PositionSet;
  readonly probes: readonly ProbePlan[];
}

export interface ExperimentPlan {
  readonly name: string;
  /** Its rows take gradients: they run in the attribution variant (Plan.attributionVariant). */
  readonly attribution: boolean;
  /** Every measure the experiment reports, output measures first. */
  readonly measures: readonly MeasureDescriptor[];
  readonly outputMeasures: readonly MeasureName[];
  /** Which kinds of intervention its rows apply. */
  readonly interventions: readonly Intervention['kind'][];
  /** Each intervention statement, parameters replaced by their values. */
  readonly interventionText: readonly string[];
  readonly sweeps: readonly { readonly variable: string; readonly values: readonly SweepValue[] }[];
  /** Its `summarize extraction` statements: the layers each counts (null: every layer of the sweep). */
  readonly summaries: readonly { readonly layers: readonly number[] | null }[];
  readonly rows: readonly PlanRow[];
  readonly source: string;
  readonly span: SourceSpan;
}

export interface Plan {
  readonly experiments: readonly ExperimentPlan[];
  readonly variant: VariantRequest;
  /**
   * The variant of the experiments that take gradients: the same interventions and reads plus the
   * backward pass. A variant of its own, because onnxruntime computes every node of a graph on
   * every run, and the backward pass would cost the other rows 3 to 4 forward passes each.
   */
  readonly attributionVariant?: VariantRequest;
  /** 1 when every block applies to all heads (the knockout input broadcasts), else the head count. */
  readonly knockoutHeads: number;
  /** Forward passes per example: one clean pass plus one per row of every experiment. */
  readonly passesPerExample: number;
}

/** Sites a last-position run computes for its one token as the whole prompt would. */
const LAST_POSITION_SITES: ReadonlySet<SiteKind> = new Set(['hidden', 'attention', 'mlp', 'heads', 'recomputed']);

/** `last`, or the index −1: the last position whatever the prompt. */
function lastOnly(set: PositionSet): boolean {
  return set.kind === 'named' ? set.name === 'last' : set.kind === 'indices' && set.indices.length > 0 && set.indices.every((i) => i === -1);
}

/**
 * Rows that run their last token alone against the clean run's keys and values: rows that
 * block or recompute (the others are read from the clean pass) but neither cancel nor patch,
 * whose blocked edges all go into the last position, and whose probes all project a hidden
 * state or an update there, recomputed ones included (no attention weights, no subject
 * embeddings). run/execute.ts checks each fact's positions again before it runs a row so.
 */
export function mayRunLastPosition(row: PlanRow): boolean {
  return !readsCleanPass(row) && !row.gates.length && !row.patch && row.knockouts.every((k) => lastOnly(k.target))
    && row.probes.every((p) => p.kind !== 'attention_weight' && !isAttribution(p) && LAST_POSITION_SITES.has(p.site) && lastOnly(p.at));
}

/**
 * Rows that change nothing (no block, cancel, patch or recomputation) read what the fact's
 * clean pass computes anyway: their probes are read from that pass instead of a row of their own
 * (not gradients: the clean pass runs the variant without the backward pass).
 */
export function readsCleanPass(row: PlanRow): boolean {
  return !row.knockouts.length && !row.gates.length && !row.patch && !row.recompute && !row.probes.some(isAttribution);
}

/**
 * The first block a row changes or reads, `layers` when it does neither (only the final norm
 * and the LM head then run): every hidden state up to that block's input is the clean run's, so
 * the row may begin there from the clean hidden state. A block is changed by a block of edges
 * or a cancel there, and a patch of hidden state l changes block l's input; probes read block l
 * (its updates, heads, attention weights or recomputation) or hidden state h (block h's input).
 * The subject's embeddings come before every block. Gradients span every hidden state: 0.
 */
export function startLayerOf(row: PlanRow, layers: number): number {
  const read = row.probes.map((p) => (isAttribution(p) ? 0 : p.kind === 'attention_weight' || p.site !== 'subject_embeddings' ? p.layer : layers));
  return Math.min(layers, ...row.knockouts.flatMap((k) => k.layers), ...row.gates.flatMap((g) => g.layers), ...(row.patch ? [row.patch.layer] : []), ...read);
}

type Bound = { readonly int: number } | { readonly set: PositionSet };
type Binding = ReadonlyMap<string, Bound>;

/** The value of an integer sweep variable in this row. */
function intOf(env: Binding): (variable: string) => number {
  return (variable) => {
    const bound = env.get(variable);
    if (!bound || !('int' in bound)) throw new Error(`internal: integer variable ${variable} is unbound`);
    return bound.int;
  };
}

function evalInt(e: IntExpr, env: Binding): number {
  return evalIntWith(e, intOf(env));
}

function evalLayers(set: LayerSet, env: Binding, ctx: PlanContext): number[] {
  return layersOf(set, intOf(env), ctx.shape.layers, ctx.choices.knockout_window);
}

function substitute(set: PositionSet, env: Binding): PositionSet {
  switch (set.kind) {
    case 'var': {
      const bound = env.get(set.name);
      if (!bound || !('set' in bound)) throw new Error(`internal: position variable ${set.name} is unbound`);
      return bound.set;
    }
    case 'union': case 'difference':
      return { kind: set.kind, left: substitute(set.left, env), right: substitute(set.right, env) };
    default: return set;
  }
}

const everyPosition: PositionSet = { kind: 'named', name: 'all' };

interface PlanContext {
  readonly shape: ModelShape;
  readonly choices: Choices;
  readonly attributesCandidates: number;
}

/** One row's interventions. `cancel attention` in the paper's mode is a knockout of every key. */
function planInterventions(interventions: readonly Intervention[], env: Binding, ctx: PlanContext): Pick<PlanRow, 'knockouts' | 'gates' | 'patch'> {
  const knockouts: KnockoutEdges[] = [];
  const gates: GateCancel[] = [];
  let patch: PatchPlan | undefined;
  for (const i of interventions) {
    switch (i.kind) {
      case 'block':
        knockouts.push({ layers: evalLayers(i.layers, env, ctx), heads: i.heads, source: substitute(i.source, env), target: substitute(i.target, env) });
        break;
      case 'cancel': {
        const layers = evalLayers(i.layers, env, ctx);
        const positions = substitute(i.positions, env);
        if (i.sublayer === 'attention' && ctx.choices.cancel_attention === 'uniform') {
          knockouts.push({ layers, heads: 'all', source: everyPosition, target: positions });
        } else {
          gates.push({ sublayer: i.sublayer, layers, positions });
        }
        break;
      }
      case 'patch':
        if (patch) throw new Error('internal: the checker allows one patch per experiment');
        patch = {
          layer: evalInt(i.layer, env),
          positions: substitute(i.positions, env),
          source: { kind: i.source.kind, index: evalInt(i.source.index, env) },
        };
        break;
    }
  }
  return { knockouts, gates, ...(patch ? { patch } : {}) };
}

function planProbe(p: Probe, ids: readonly string[], env: Binding, ctx: PlanContext): ProbePlan {
  if (p.kind === 'attention_weight') {
    return { kind: p.kind, ids, layer: evalInt(p.layer, env), source: substitute(p.source, env), target: substitute(p.target, env), heads: p.heads };
  }
  if (p.kind === 'attribution' || p.kind === 'integrated_gradients') {
    const common = { ids, label: p.label, layer: evalInt(p.site.index, env), at: substitute(p.at, env) };
    return p.kind === 'attribution' ? { kind: p.kind, ...common } : { kind: p.kind, ...common, steps: p.steps, baseline: p.baseline };
  }
  const layer = p.site.kind === 'hidden' ? evalInt(p.site.index, env) : p.site.kind === 'subject_embeddings' ? 0 : evalInt(p.site.layer, env);
  const { topTokens } = siteProbe(p.kind);
  // the graph's TopK takes one token at least, read or not
  const k = Math.max(1, topTokens === 'count' ? p.k! : topTokens === 'candidates' ? ctx.attributesCandidates : topTokens);
  const site: SiteKind = p.without ? 'recomputed' : p.site.kind;
  return { kind: p.kind, ids, site, layer, at: substitute(p.at, env), k };
}

/** The row's removed keys: the one `without` set of its probes, substituted. */
function recomputeSet(probes: readonly Probe[], env: Binding): PositionSet | undefined {
  for (const p of probes) if ('without' in p && p.without) return substitute(p.without, env);
  return undefined;
}

function planExperiment(exp: Experiment, ctx: PlanContext): ExperimentPlan {
  const rows: PlanRow[] = [];
  const env = new Map<string, Bound>();
  const probeIds = exp.probes.map((p) => probeDescriptors(p, ctx.shape.heads).map((d) => d.id));
  const expand = (depth: number, key: Record<string, SweepValue>): void => {
    const sweep = exp.sweeps[depth];
    if (!sweep) {
      const recompute = recomputeSet(exp.probes, env);
      rows.push({
        key: { ...key },
        ...planInterventions(exp.interventions, env, ctx),
        ...(recompute ? { recompute } : {}),
        probes: exp.probes.map((p, i) => planProbe(p, probeIds[i]!, env, ctx)),
      });
      return;
    }
    if (sweep.kind === 'positions') {
      for (const { label, set } of sweep.values) {
        env.set(sweep.variable, { set });
        expand(depth + 1, { ...key, [sweep.variable]: label });
      }
    } else {
      for (const int of sweep.values) {
        env.set(sweep.variable, { int });
        expand(depth + 1, { ...key, [sweep.variable]: int });
      }
    }
    env.delete(sweep.variable);
  };
  expand(0, {});
  return {
    name: exp.name,
    attribution: exp.probes.some((p) => p.kind === 'attribution' || p.kind === 'integrated_gradients'),
    measures: experimentDescriptors(exp, ctx.shape.heads),
    outputMeasures: exp.measures,
    interventions: [...new Set(exp.interventions.map((i) => i.kind))],
    interventionText: exp.interventions.map(interventionText),
    sweeps: exp.sweeps.map((s) => ({
      variable: s.variable,
      values: s.kind === 'positions' ? s.values.map((v) => v.label) : [...s.values],
    })),
    // summary layers are literal (the checker allows no sweep variable there)
    summaries: exp.summaries.map((s) => ({ layers: s.layers ? evalLayers(s.layers, new Map(), ctx) : null })),
    rows,
    source: exp.source,
    span: exp.span,
  };
}

/** One projection per site kind, over the union of the layers and the largest k any probe needs. */
function projections(rows: readonly PlanRow[], choices: Choices, vocab: number): ProjectionRequest[] {
  const bySite = new Map<SiteKind, { layers: Set<number>; k: number }>();
  for (const row of rows) {
    for (const p of row.probes) {
      if (p.kind === 'attention_weight' || isAttribution(p)) continue;
      const entry = bySite.get(p.site) ?? { layers: new Set<number>(), k: 1 };
      entry.layers.add(p.layer);
      entry.k = Math.max(entry.k, p.k);
      bySite.set(p.site, entry);
    }
  }
  return [...bySite].map(([site, { layers, k }]) => ({
    site, via: choices.projection, k, vocabLimit: vocab, layers: [...layers].sort((a, b) => a - b),
    ...(site === 'recomputed' ? { recompute: choices.recompute } : {}),
  }));
}

/**
 * `tokenVocab` is the number of real tokens (the tokenizer's), which can be below the
 * model's embedding rows (GPT-J: 50257 of 50400); projections never rank the others.
 */
export function planProgram(program: Program, shape: ModelShape, tokenVocab = shape.vocab): Plan {
  const ctx: PlanContext = { shape, choices: program.choices, attributesCandidates: program.attributes?.candidates ?? 1 };
  const experiments = program.experiments.map((e) => planExperiment(e, ctx));
  const rows = experiments.flatMap((e) => e.rows);
  const knockouts = rows.flatMap((r) => r.knockouts);
  const gates = rows.flatMap((r) => r.gates);
  const patches = rows.flatMap((r) => (r.patch ? [r.patch] : []));
  const probes = rows.flatMap((r) => r.probes);
  const projected = projections(rows, program.choices, rankedTokens(shape.vocab, tokenVocab));
  const gateModes: { attention?: 'zero_update'; mlp?: 'zero_update' | 'zero_preactivation' } = {};
  if (gates.some((g) => g.sublayer === 'attention')) gateModes.attention = 'zero_update';
  if (gates.some((g) => g.sublayer === 'mlp')) gateModes.mlp = program.choices.cancel_mlp;
  // integrated gradients patch the hidden state they integrate along, read from the clean pass or the row's own run
  const integrates = probes.some((p) => p.kind === 'integrated_gradients');
  const variant: VariantRequest = {
    knockout: knockouts.length > 0 ? program.choices.knockout_value : false,
    logits: false,
    ...(probes.some((p) => p.kind === 'attention_weight') ? { attentionProbs: true } : {}),
    ...(gates.length ? { gates: gateModes } : {}),
    ...(patches.length ? { patch: true, hiddenStates: true } : {}),
    ...(integrates ? { hiddenStates: true } : {}),
    ...(projected.length ? { projections: projected } : {}),
    ...(program.siteOverrides.length ? { siteOverrides: siteOverridesOf(program.siteOverrides) } : {}),
  };
  const attribution = { target: program.choices.attribution_target, reduction: program.choices.attribution_reduction };
  return {
    experiments,
    variant,
    ...(experiments.some((e) => e.attribution)
      ? { attributionVariant: { ...variant, ...(integrates ? { patch: true } : {}), attribution } } : {}),
    knockoutHeads: knockouts.some((k) => k.heads !== 'all') ? shape.heads : 1,
    passesPerExample: 1 + rows.reduce((n, r) => n + passesOfRow(r), 0),
  };
}
