// Probes: what a row reads from the model's inside, turned into numbers. The graph
// projects each requested site at the row's projected positions and reduces it to top-k
// ids, scores, the target's rank and the vector's norm; this module chooses those positions,
// fetches the outputs each probe reads and turns them into per-row values (one evaluator per
// probe of the registry, src/lang/probes.ts).
//
// A probe at a set of several positions averages its per-position values; a set that is
// empty for a fact (e.g. subject_next when the subject ends the prompt) gives no value.
//
// `... of attention l without S` reads site `recomputed`: the graph rebuilds block l's update
// at the last position with the keys S removed (input dissect_recompute_remove, one set per
// row) and projects it like the other sites; its position axis holds the last position only.
//
// `... of subject_embeddings` reads site `subject_embeddings`: the graph averages the token
// embeddings of the subject with the weights of dissect_subject_weights (1/|subject| on the
// subject) and projects the mean; its position axis holds that one vector (index 0).
//
// `attribution of hidden h` reads dissect_attribution of the attribution variant: a value per
// position, kept per position and averaged over each group of positions the paper plots.
// Integrated gradients span several batch rows per row; execute.ts reduces them and hands the
// per-position values to attributionValues.

import type { SiteProbeName } from '../lang/probes.js';
import type { AttributesSpec, PositionSet } from '../lang/program.js';
import { attributesRate } from '../measure/attributes.js';
import { attributionParts, integrationParts } from '../measure/descriptor.js';
import type { PositionValues, TokenList } from '../measure/record.js';
import { projectionName, type ProjectionPart } from '../onnx/index.js';
import type { ProjectionRequest } from '../onnx/variant.js';
import { VariantNames } from '../onnx/variant.js';
import { isAttribution, type AttributionPlan, type ProbePlan, type SiteKind } from '../plan/plan.js';
import type { AttributeSets } from './attributes.js';
import { InternalError } from './errors.js';
import type { Example } from './example.js';
import { resolvePositions } from './positions.js';
import type { DecodedTensor } from './session.js';
import type { Tokenizer } from './tokenizer.js';

export interface ProbeResult {
  /** Measure descriptor id → value; per-head probes give one per head. */
  readonly values: Record<string, number>;
  readonly tokens: TokenList[];
  readonly positionValues: PositionValues[];
  /** Extraction decisions where the top two scores were equal (reported, never hidden). */
  ties: number;
}

const subject: PositionSet = { kind: 'named', name: 'subject' };
/** The positions of each group an attribution is averaged over (descriptor.ts's attributionParts). */
const partPositions: Readonly<Record<(typeof attributionParts)[number], PositionSet>> = {
  subject_first: { kind: 'named', name: 'subject_first' },
  subject_last: { kind: 'named', name: 'subject_last' },
  subject_other: {
    kind: 'difference', left: { kind: 'difference', left: subject, right: { kind: 'named', name: 'subject_first' } },
    right: { kind: 'named', name: 'subject_last' },
  },
  nonsubject: { kind: 'named', name: 'nonsubject' },
  last: { kind: 'named', name: 'last' },
};

/**
 * An attribution probe's numbers from its value at each position it reads: the values
 * themselves, and per group the mean over the group's positions among them (a group with none,
 * say subject_other of a two-token subject, gives no value). `gap`: integrated gradients'
 * completeness gap, its last part.
 */
export function attributionValues(p: AttributionPlan, ex: Example, valueAt: (position: number) => number, result: ProbeResult, gap?: number): void {
  const positions = resolvePositions(p.at, ex);
  const values = positions.map(valueAt);
  result.positionValues.push({ measure: p.label, positions, values });
  attributionParts.forEach((part, i) => {
    const group = new Set(resolvePositions(partPositions[part], ex));
    const m = mean(values.filter((_, j) => group.has(positions[j]!)));
    if (m !== undefined) result.values[p.ids[i]!] = m;
  });
  if (gap !== undefined) result.values[p.ids[integrationParts.indexOf('completeness_gap')]!] = gap;
}

/** Positions of a row's projected sites: every position any of its projection probes reads, sorted. */
export function projectionPositions(probes: readonly ProbePlan[], ex: Example): number[] {
  const set = new Set<number>();
  for (const p of probes) {
    if (p.kind === 'attention_weight' || isAttribution(p) || p.site === 'recomputed' || p.site === 'subject_embeddings') continue;
    for (const pos of resolvePositions(p.at, ex)) set.add(pos);
  }
  return [...set].sort((a, b) => a - b);
}

/** The row's removed keys as a mask over the example's n tokens (1 = removed). */
export function recomputeMask(set: PositionSet, ex: Example): Uint8Array {
  const mask = new Uint8Array(ex.n);
  for (const p of resolvePositions(set, ex)) mask[p] = 1;
  return mask;
}

/** The row's subject weights over the example's n tokens (1/|subject| on the subject), or undefined when no probe reads subject_embeddings. */
export function subjectWeights(probes: readonly ProbePlan[], ex: Example): Float32Array | undefined {
  if (!probes.some((p) => p.kind !== 'attention_weight' && !isAttribution(p) && p.site === 'subject_embeddings')) return undefined;
  const w = new Float32Array(ex.n);
  const { start, end } = ex.subject;
  for (let q = start; q < end; q++) w[q] = 1 / (end - start);
  return w;
}

/** Output names a row's probes need. */
export function probeFetches(probes: readonly ProbePlan[]): string[] {
  const out = new Set<string>();
  for (const p of probes) {
    if (p.kind === 'attention_weight') {
      out.add(`${VariantNames.attnProbsPrefix}${p.layer}`);
      continue;
    }
    if (p.kind === 'attribution') out.add(VariantNames.attribution);
    if (p.kind === 'integrated_gradients') {
      out.add(VariantNames.attributionY);
      out.add(VariantNames.attributionPatchGradient);
    }
    if (isAttribution(p)) continue;
    for (const part of siteProbeEvaluators[p.kind].reads) out.add(projectionName(p.site, part));
  }
  return [...out];
}

export interface ProbeContext {
  readonly outputs: Readonly<Record<string, DecodedTensor>>;
  /** Row index in the batch. */
  readonly row: number;
  /** This row's projected positions (its entry of dissect_proj_positions). */
  readonly positions: readonly number[];
  readonly projections: readonly ProjectionRequest[];
  readonly heads: number;
  readonly example: Example;
  /** The clean run's top-1 token: the prediction extraction looks for. */
  readonly target: number;
  readonly tokenizer: Tokenizer;
  readonly attributes?: { readonly spec: AttributesSpec; readonly sets: AttributeSets };
}

/** A view of one output tensor: element at a multi-index. */
function at(t: DecodedTensor, index: readonly number[]): number {
  let flat = 0;
  for (let i = 0; i < index.length; i++) flat = flat * t.dims[i]! + index[i]!;
  return Number(t.data[flat]!);
}

function output(ctx: ProbeContext, name: string): DecodedTensor {
  const t = ctx.outputs[name];
  if (!t) throw new InternalError(`output ${name} was not fetched`);
  return t;
}

function mean(xs: readonly number[]): number | undefined {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : undefined;
}

export function evaluateProbes(probes: readonly ProbePlan[], ctx: ProbeContext): ProbeResult {
  const result: ProbeResult = { values: {}, tokens: [], positionValues: [], ties: 0 };
  for (const p of probes) {
    if (p.kind === 'attention_weight') attentionWeight(p, ctx, result);
    else if (p.kind === 'attribution') attributionValues(p, ctx.example, (pos) => at(output(ctx, VariantNames.attribution), [ctx.row, p.layer, pos]), result);
    // integrated gradients read several batch rows: execute.ts reduces them
    else if (p.kind !== 'integrated_gradients') projectionProbe(p, ctx, result);
  }
  return result;
}

function attentionWeight(p: Extract<ProbePlan, { kind: 'attention_weight' }>, ctx: ProbeContext, result: ProbeResult): void {
  const probs = output(ctx, `${VariantNames.attnProbsPrefix}${p.layer}`);
  const queries = resolvePositions(p.target, ctx.example);
  const keys = resolvePositions(p.source, ctx.example);
  if (!queries.length) return;
  const perHead = Array.from({ length: ctx.heads }, (_, h) =>
    mean(queries.map((q) => keys.reduce((s, k) => s + at(probs, [ctx.row, h, q, k]), 0)))!);
  if (p.heads === 'all') result.values[p.ids[0]!] = mean(perHead)!;
  else perHead.forEach((v, h) => { result.values[p.ids[h]!] = v; });
}

type ProjectionPlan = Exclude<ProbePlan, { kind: 'attention_weight' } | AttributionPlan>;

function projectionProbe(p: ProjectionPlan, ctx: ProbeContext, result: ProbeResult): void {
  const request = ctx.projections.find((r) => r.site === p.site);
  const li = request?.layers.indexOf(p.layer) ?? -1;
  if (!request || li < 0) throw new InternalError(`no projection of ${p.site} ${p.layer} in the variant`);
  // the subject_embeddings site holds one vector (the subject's mean), at index 0
  const positions = p.site === 'subject_embeddings' ? [{ pos: ctx.example.subject.start, pi: 0 }] : resolvePositions(p.at, ctx.example).map((pos) => {
    // the recomputed site holds the last position only, at index 0
    const pi = p.site === 'recomputed' ? (pos === ctx.example.lastIndex ? 0 : -1) : ctx.positions.indexOf(pos);
    if (pi < 0) throw new InternalError(`position ${pos} was not projected`);
    return { pos, pi };
  });
  const slots = p.site === 'heads' ? p.ids.map((id, h) => ({ id, lead: [ctx.row, li, h] })) : [{ id: p.ids[0]!, lead: [ctx.row, li] }];
  for (const { id, lead } of slots) {
    const values: number[] = [];
    for (const { pos, pi } of positions) {
      const v = siteProbeEvaluators[p.kind].value(p, ctx, [...lead, pi], pos, id, result);
      if (v !== undefined) values.push(v);
    }
    const m = mean(values);
    if (m !== undefined) result.values[id] = m;
  }
}

/** What the runner does for a site probe (src/lang/probes.ts): the projection outputs it reads and its value at one position. */
interface SiteProbeEvaluator {
  readonly reads: readonly ProjectionPart[];
  /** `index`: the row, layer, (head,) and position slot in the outputs; undefined: no value (top_tokens lists tokens instead). */
  value(p: ProjectionPlan, ctx: ProbeContext, index: readonly number[], pos: number, id: string, result: ProbeResult): number | undefined;
}

const siteProbeEvaluators: Readonly<Record<SiteProbeName, SiteProbeEvaluator>> = {
  target_rank: {
    reads: ['target_rank'],
    value: (p, ctx, index) => at(output(ctx, projectionName(p.site, 'target_rank')), index),
  },
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
      if (!attrs) throw new InternalError('attributes_rate without attribute sets');
      const set = attrs.sets.get(ctx.example.fact.subject);
      if (!set) return undefined; // no attribute data for this subject: excluded, counted by the caller
      const ranked = topIds(ctx, p, index).map((id) => ctx.tokenizer.decode(id));
      return attributesRate(ranked, set, attrs.spec.keep, attrs.spec).rate ?? undefined;
    },
  },
  top_tokens: {
    reads: ['ids'],
    value: (p, ctx, index, pos, id, result) => {
      result.tokens.push({ measure: id, position: pos, tokens: topIds(ctx, p, index).map((t) => ctx.tokenizer.decode(t)) });
      return undefined;
    },
  },
  norm: {
    reads: ['norm'],
    value: (p, ctx, index) => at(output(ctx, projectionName(p.site, 'norm')), index),
  },
};

function topIds(ctx: ProbeContext, p: { site: SiteKind; k: number }, index: readonly number[]): number[] {
  const ids = output(ctx, projectionName(p.site, 'ids'));
  return Array.from({ length: p.k }, (_, j) => at(ids, [...index, j]));
}
