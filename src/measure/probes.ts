// Probe values: a row's fetched outputs turned into its numbers, one evaluator per probe of
// the registry (src/lang/probes.ts). The graph projects each requested site at the row's
// projected positions and reduces it to top-k ids, scores, the target's rank and the vector's
// norm; the run stage (src/run/probes.ts) chooses those positions and fetches the outputs, and
// hands them here through ProbeContext, which names only what evaluation reads.
//
// A probe at a set of several positions averages its per-position values; a set that is
// empty for a fact (e.g. subject_next when the subject ends the prompt) gives no value.
//
// `... of attention l without S` reads site `recomputed`: its position axis holds the last
// position only. `... of subject_embeddings` reads site `subject_embeddings`: its position
// axis holds one vector, the subject's mean embedding (index 0).
//
// `attribution of hidden h` reads dissect_attribution: a value per position, kept per position
// and averaged over each group of positions the paper plots. Integrated gradients span several
// batch rows per row; the run stage reduces them and hands the per-position values to
// attributionValues.

import type { SiteProbeName } from '../lang/probes.js';
import type { AttributesSpec, NamedPositionSet, PositionSet } from '../lang/program.js';
import { projectionName, type ProjectionPart } from '../onnx/index.js';
import { VariantNames, type ProjectionRequest } from '../onnx/variant.js';
import type { AttributionPlan, ProbePlan } from '../plan/plan.js';
import { attributesRate } from './attributes.js';
import { attributionParts, integrationParts } from './descriptor.js';
import { MeasureInputError } from './knockout.js';
import type { PositionValues, TokenList } from './record.js';
import { mean } from './stats.js';

export interface ProbeResult {
  /** Measure descriptor id → value; per-head probes give one per head. */
  readonly values: Record<string, number>;
  readonly tokens: TokenList[];
  readonly positionValues: PositionValues[];
  /** Extraction decisions where the top two scores were equal (reported, never hidden). */
  ties: number;
}

/** One fetched output: its shape and its elements in row-major order. */
export interface OutputView {
  readonly dims: readonly number[];
  readonly data: ArrayLike<number | bigint>;
}

/** The positions a set resolves to in the row's prompt, sorted and unique. */
export type PositionsOf = (set: PositionSet) => readonly number[];

/** What evaluating one row's probes reads. */
export interface ProbeContext {
  /** The pass's fetched outputs, by output name. */
  readonly outputs: Readonly<Record<string, OutputView>>;
  /** Row index in the batch. */
  readonly row: number;
  /** This row's projected positions (its entry of dissect_proj_positions). */
  readonly projectedPositions: readonly number[];
  /** The variant's projections: which layers of each site it projects, in output order. */
  readonly projections: readonly ProjectionRequest[];
  /** Attention heads per layer. */
  readonly heads: number;
  readonly positionsOf: PositionsOf;
  /** The clean run's top-1 token: the prediction extraction looks for. */
  readonly target: number;
  /** A token id's text. */
  readonly decode: (id: number) => string;
  /** For attributes_rate: how candidates are cleaned and kept, and the subject's attribute set (undefined when the data has none for it). */
  readonly attributes?: { readonly spec: Pick<AttributesSpec, 'keep' | 'minLength' | 'stopwords'>; readonly subjectSet: ReadonlySet<string> | undefined };
}

const named = (name: NamedPositionSet): PositionSet => ({ kind: 'named', name });
/** The positions of each group an attribution is averaged over (descriptor.ts's attributionParts). */
const partPositions: Readonly<Record<(typeof attributionParts)[number], PositionSet>> = {
  subject_first: named('subject_first'),
  subject_last: named('subject_last'),
  subject_other: { kind: 'difference', left: { kind: 'difference', left: named('subject'), right: named('subject_first') }, right: named('subject_last') },
  nonsubject: named('nonsubject'),
  last: named('last'),
};

const meanIfAny = (xs: readonly number[]): number | undefined => (xs.length ? mean(xs) : undefined);

/**
 * An attribution probe's numbers from its value at each position it reads: the values
 * themselves, and per group the mean over the group's positions among them (a group with none,
 * say subject_other of a two-token subject, gives no value). `gap`: integrated gradients'
 * completeness gap, its last part.
 */
export function attributionValues(p: AttributionPlan, positionsOf: PositionsOf, valueAt: (position: number) => number, result: ProbeResult, gap?: number): void {
  const positions = positionsOf(p.at);
  const values = positions.map(valueAt);
  result.positionValues.push({ measure: p.label, positions, values });
  attributionParts.forEach((part, i) => {
    const group = new Set(positionsOf(partPositions[part]));
    const m = meanIfAny(values.filter((_, j) => group.has(positions[j]!)));
    if (m !== undefined) result.values[p.ids[i]!] = m;
  });
  if (gap !== undefined) result.values[p.ids[integrationParts.indexOf('completeness_gap')]!] = gap;
}

/** Element of an output at a multi-index. */
function at(t: OutputView, index: readonly number[]): number {
  let flat = 0;
  for (let i = 0; i < index.length; i++) flat = flat * t.dims[i]! + index[i]!;
  return Number(t.data[flat]!);
}

function output(ctx: ProbeContext, name: string): OutputView {
  const t = ctx.outputs[name];
  if (!t) throw new MeasureInputError(`output ${name} was not fetched`);
  return t;
}

/** The row's values of its probes; integrated gradients read several batch rows and are left to the run stage. */
export function evaluateProbes(probes: readonly ProbePlan[], ctx: ProbeContext): ProbeResult {
  const result: ProbeResult = { values: {}, tokens: [], positionValues: [], ties: 0 };
  for (const p of probes) {
    if (p.kind === 'attention_weight') attentionWeight(p, ctx, result);
    else if (p.kind === 'attribution') attributionValues(p, ctx.positionsOf, (pos) => at(output(ctx, VariantNames.attribution), [ctx.row, p.layer, pos]), result);
    else if (p.kind !== 'integrated_gradients') projectionProbe(p, ctx, result);
  }
  return result;
}

function attentionWeight(p: Extract<ProbePlan, { kind: 'attention_weight' }>, ctx: ProbeContext, result: ProbeResult): void {
  const probs = output(ctx, `${VariantNames.attnProbsPrefix}${p.layer}`);
  const queries = ctx.positionsOf(p.target);
  const keys = ctx.positionsOf(p.source);
  if (!queries.length) return;
  const perHead = Array.from({ length: ctx.heads }, (_, h) =>
    mean(queries.map((q) => keys.reduce((s, k) => s + at(probs, [ctx.row, h, q, k]), 0))));
  if (p.heads === 'all') result.values[p.ids[0]!] = mean(perHead);
  else perHead.forEach((v, h) => { result.values[p.ids[h]!] = v; });
}

/** A probe that reads a projected site (src/lang/probes.ts's site probes). */
export type SiteProbePlan = Exclude<ProbePlan, { kind: 'attention_weight' } | AttributionPlan>;

function projectionProbe(p: SiteProbePlan, ctx: ProbeContext, result: ProbeResult): void {
  const request = ctx.projections.find((r) => r.site === p.site);
  const li = request?.layers.indexOf(p.layer) ?? -1;
  if (!request || li < 0) throw new MeasureInputError(`no projection of ${p.site} ${p.layer} in the variant`);
  const positions = positionSlots(p, ctx);
  const slots = p.site === 'heads' ? p.ids.map((id, h) => ({ id, lead: [ctx.row, li, h] })) : [{ id: p.ids[0]!, lead: [ctx.row, li] }];
  for (const { id, lead } of slots) {
    const values: number[] = [];
    for (const { pos, pi } of positions) {
      const v = siteProbeEvaluators[p.kind].value(p, ctx, [...lead, pi], pos, id, result);
      if (v !== undefined) values.push(v);
    }
    const m = meanIfAny(values);
    if (m !== undefined) result.values[id] = m;
  }
}

/** Each position a site probe reads, with its slot on the site's position axis. */
function positionSlots(p: SiteProbePlan, ctx: ProbeContext): { pos: number; pi: number }[] {
  // the subject_embeddings site holds one vector (the subject's mean), at index 0
  if (p.site === 'subject_embeddings') return [{ pos: ctx.positionsOf(named('subject_first'))[0]!, pi: 0 }];
  // the recomputed site holds the last position only
  const axis = p.site === 'recomputed' ? ctx.positionsOf(named('last')) : ctx.projectedPositions;
  return ctx.positionsOf(p.at).map((pos) => {
    const pi = axis.indexOf(pos);
    if (pi < 0) throw new MeasureInputError(`position ${pos} was not projected`);
    return { pos, pi };
  });
}

/** The projection outputs a site probe reads. */
export function siteProbeOutputs(p: SiteProbePlan): string[] {
  return siteProbeEvaluators[p.kind].reads.map((part) => projectionName(p.site, part));
}

/** How a site probe (src/lang/probes.ts) is evaluated: the projection outputs it reads and its value at one position. */
interface SiteProbeEvaluator {
  readonly reads: readonly ProjectionPart[];
  /** `index`: the row, layer, (head,) and position slot in the outputs; undefined: no value (top_tokens lists tokens instead). */
  value(p: SiteProbePlan, ctx: ProbeContext, index: readonly number[], pos: number, id: string, result: ProbeResult): number | undefined;
}

/** A probe whose value is the projection's one number per position slot. */
const scalarPart = (part: 'target_rank' | 'norm'): SiteProbeEvaluator => ({
  reads: [part],
  value: (p, ctx, index) => at(output(ctx, projectionName(p.site, part)), index),
});

const siteProbeEvaluators: Readonly<Record<SiteProbeName, SiteProbeEvaluator>> = {
  target_rank: scalarPart('target_rank'),
  extraction: {
    reads: ['ids', 'scores'],
    value: (p, ctx, index, _pos, _id, result) => {
      const top = at(output(ctx, projectionName(p.site, 'ids')), [...index, 0]);
      const scores = output(ctx, projectionName(p.site, 'scores'));
      if (scores.dims[scores.dims.length - 1]! > 1 && at(scores, [...index, 0]) === at(scores, [...index, 1])) result.ties++;
      return top === ctx.target ? 1 : 0;
    },
  },
  attributes_rate: {
    reads: ['ids'],
    value: (p, ctx, index) => {
      const attrs = ctx.attributes;
      if (!attrs) throw new MeasureInputError('attributes_rate without attribute sets');
      if (!attrs.subjectSet) return undefined; // no attribute data for this subject: excluded, counted by the caller
      return attributesRate(topTokens(ctx, p, index), attrs.subjectSet, attrs.spec.keep, attrs.spec).rate ?? undefined;
    },
  },
  top_tokens: {
    reads: ['ids'],
    value: (p, ctx, index, pos, id, result) => {
      result.tokens.push({ measure: id, position: pos, tokens: topTokens(ctx, p, index) });
      return undefined;
    },
  },
  norm: scalarPart('norm'),
};

/** The probe's k top tokens at `index`, best first, as text. */
function topTokens(ctx: ProbeContext, p: SiteProbePlan, index: readonly number[]): string[] {
  const ids = output(ctx, projectionName(p.site, 'ids'));
  return Array.from({ length: p.k }, (_, j) => ctx.decode(at(ids, [...index, j])));
}
