// What a measured number is, as data: every value of a run (in the plan, the journal,
// results.json and the report) is keyed by the id of one of these descriptors, and every
// consumer reads the descriptor's fields, never its id or label. The planner builds them
// (src/plan/measures.ts); this module is their one home, type and JSON Schema alike.

import { Type, type Static } from '@sinclair/typebox';
import { measureNames } from '../lang/program.js';

const literals = <T extends string>(values: readonly T[]) => Type.Union(values.map((v) => Type.Literal(v)));

export const measureSites = ['logits', 'attention_probs', 'hidden', 'attention', 'mlp', 'heads', 'recomputed', 'subject_embeddings'] as const;
export const probeNames = [...measureNames, 'attributes_rate', 'extraction', 'target_rank', 'top_tokens', 'attention_weight'] as const;

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
  probe: literals(probeNames),
  site: literals(measureSites),
  layer: Type.Union([LayerRefSchema, Type.Null()], { description: 'block index, or hidden-state index for `hidden`; null for the output and subject embeddings' }),
  head: Type.Optional(Type.Integer({ minimum: 0, description: 'one head of a per-head probe' })),
  positions: Type.String({ minLength: 1, description: 'the positions read (attention weights: the query positions), as a position-set expression' }),
  keys: Type.Optional(Type.String({ minLength: 1, description: 'attention_weight: the key positions summed over' })),
  without: Type.Optional(Type.String({ minLength: 1, description: 'a recomputed update (`without S`): the keys removed' })),
  k: Type.Optional(Type.Integer({ minimum: 1, description: 'top_tokens: how many' })),
}, { additionalProperties: false });

export type LayerRef = Readonly<Static<typeof LayerRefSchema>>;
export type MeasureDescriptor = Readonly<Static<typeof MeasureDescriptorSchema>>;
export type MeasureSite = (typeof measureSites)[number];
export type ProbeName = (typeof probeNames)[number];

/** A number per row (every probe but top_tokens, which lists tokens). */
export const isNumeric = (d: MeasureDescriptor): boolean => d.probe !== 'top_tokens';

/** What is measured, without the id and label: equal for the same measure in different experiments. */
export function measureIdentity(d: MeasureDescriptor): string {
  const layer = d.layer && [d.layer.constant, Object.entries(d.layer.variables).sort()];
  return JSON.stringify([d.probe, d.site, layer, d.head ?? null, d.positions, d.keys ?? null, d.without ?? null, d.k ?? null]);
}
