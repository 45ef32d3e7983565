// What a measured number is, as data: every value of a run (in the plan, the journal,
// results.json and the report) is keyed by the id of one of these descriptors, and every
// consumer reads the descriptor's fields, never its id or label. The planner builds them
// (src/plan/measures.ts); this module is their one home, type and JSON Schema alike.

import { Type, type Static } from '@sinclair/typebox';
import { probeNames } from '../lang/probes.js';
import { measureNames } from '../lang/program.js';

const literals = <T extends string>(values: readonly T[]) => Type.Union(values.map((v) => Type.Literal(v)));

const measureSites = ['logits', 'attention_probs', 'hidden', 'attention', 'mlp', 'heads', 'recomputed', 'subject_embeddings'] as const;
/** What a descriptor measures: an output measure or a probe (src/lang/probes.ts). */
const descriptorProbes = [...measureNames, ...probeNames];
/**
 * The numbers an attribution probe reports per fact: the mean of its per-position values over
 * each group of positions the paper plots (within the positions it reads; `subject_other` is the
 * subject's tokens but its first and last), and for integrated gradients the completeness gap,
 * Σ over every position of the attributions − (y(h) − y(b)).
 */
export const attributionParts = ['subject_first', 'subject_last', 'subject_other', 'nonsubject', 'last'] as const;
export const integrationParts = [...attributionParts, 'completeness_gap'] as const;
export type AttributionPart = (typeof integrationParts)[number];

export const LayerRefSchema = Type.Object({
  constant: Type.Integer(),
  variables: Type.Record(Type.String(), Type.Integer()),
}, {
  additionalProperties: false,
  description: 'A layer as written, in linear form: constant + Σ coefficient · sweep variable (`l + 1` is {constant: 1, variables: {l: 1}})',
});

export const MeasureDescriptorSchema = Type.Object({
  id: Type.String({ minLength: 1, description: 'unique within its experiment: the key of its values, series points and CSV lines' }),
  label: Type.String({ minLength: 1, description: 'the measure as written in the .dissect file (shared by the heads of a per-head probe)' }),
  probe: literals(descriptorProbes),
  site: literals(measureSites),
  layer: Type.Union([LayerRefSchema, Type.Null()], { description: 'block index, or hidden-state index for `hidden`; null for the output and subject embeddings' }),
  head: Type.Optional(Type.Integer({ minimum: 0, description: 'one head of a per-head probe' })),
  positions: Type.String({ minLength: 1, description: 'the positions read (attention weights: the query positions), as a position-set expression' }),
  keys: Type.Optional(Type.String({ minLength: 1, description: 'attention_weight: the key positions summed over' })),
  without: Type.Optional(Type.String({ minLength: 1, description: 'a recomputed update (`without S`): the keys removed' })),
  k: Type.Optional(Type.Integer({ minimum: 1, description: 'top_tokens: how many' })),
  part: Type.Optional(Type.Union(integrationParts.map((p) => Type.Literal(p)), {
    description: 'attribution, integrated_gradients: the mean over a group of the positions read, or the completeness gap',
  })),
  steps: Type.Optional(Type.Integer({ minimum: 1, description: 'integrated_gradients: the integration points' })),
  baseline: Type.Optional(Type.Union([Type.Literal('mean'), Type.Literal('zero')], { description: 'integrated_gradients: the baseline hidden state' })),
}, { additionalProperties: false });

export type LayerRef = Readonly<Static<typeof LayerRefSchema>>;
export type MeasureDescriptor = Readonly<Static<typeof MeasureDescriptorSchema>>;
export type MeasureSite = (typeof measureSites)[number];
export type DescriptorProbe = (typeof descriptorProbes)[number];

/** A number per row (every probe but top_tokens, which lists tokens). */
export const isNumeric = (d: MeasureDescriptor): boolean => d.probe !== 'top_tokens';

/** What is measured, without the id and label: equal for the same measure in different experiments. */
export function measureIdentity(d: MeasureDescriptor): string {
  const layer = d.layer && [d.layer.constant, Object.entries(d.layer.variables).sort()];
  return JSON.stringify([d.probe, d.site, layer, d.head ?? null, d.positions, d.keys ?? null, d.without ?? null, d.k ?? null,
    d.part ?? null, d.steps ?? null, d.baseline ?? null]);
}
