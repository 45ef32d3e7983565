// results.json: its JSON Schema (draft 2020-12, checked with ajv), written once with
// TypeBox, and the TypeScript types derived from it; and validateResults, which adds the
// cross-field checks a schema cannot express (counts add up, every series point matches the
// per-example values it summarises, ...). The one home of the results types.

import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js';
import { MeasureDescriptorSchema, isNumeric } from './descriptor.js';
import { DROP_REASONS, type DropReason } from './record.js';
import { mean } from './stats.js';

export const RESULTS_FORMAT = 'dissect-results/2' as const;

/** Every level readonly: the results are built once and only read after. */
type DeepReadonly<T> = T extends object ? { readonly [K in keyof T]: DeepReadonly<T[K]> } : T;

const Sha256 = Type.String({ pattern: '^[0-9a-f]{64}$' });
const Count = Type.Integer({ minimum: 0 });
const Positive = Type.Integer({ minimum: 1 });
const NonEmpty = Type.String({ minLength: 1 });
const NumberOrNull = Type.Union([Type.Number(), Type.Null()]);
const PercentOrNull = Type.Union([Type.Number({ minimum: 0, maximum: 100 }), Type.Null()]);
const CountOrNull = Type.Union([Count, Type.Null()]);
const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
const Closed = <P extends Parameters<typeof Type.Object>[0]>(properties: P, description?: string) =>
  Type.Object(properties, { additionalProperties: false, ...(description ? { description } : {}) });
/** [a, b]: draft 2020-12 spells a pair with prefixItems, which TypeBox's Tuple does not write. */
const Pair = <T extends TSchema>(item: T) =>
  Type.Unsafe<[Static<T>, Static<T>]>({ type: 'array', prefixItems: [item, item], items: false, minItems: 2, maxItems: 2 });

const ExampleIdSchema = Type.Union([Type.Integer(), Type.String()], { description: "a fact's id as the dataset gives it" });
const SweepValue = Type.Union([Type.Integer(), Type.String()]);
const SweepKeySchema = Type.Record(Type.String(), SweepValue, { description: 'a sweep binding: variable → layer number or position-set label' });

export const SweepAxisSchema = Closed({
  variable: NonEmpty,
  kind: Type.Union([Type.Literal('layers'), Type.Literal('hidden'), Type.Literal('positions')]),
  values: Type.Array(SweepValue, { minItems: 1 }),
  singleTokens: Type.Optional(Type.Literal(true, { description: 'a position sweep whose every value is one token index (`each a..b`)' })),
}, 'a sweep as the report sees it: layer sweeps keep numbers, position sweeps their labels');

export const SeriesPointSchema = Closed({
  key: SweepKeySchema,
  measure: Type.String({ minLength: 1, description: 'a measure id' }),
  mean: NumberOrNull,
  ci: Nullable(Pair(Type.Number())),
  n: Count,
});

export const ValueRowSchema = Closed({
  example: ExampleIdSchema,
  key: SweepKeySchema,
  values: Type.Record(Type.String(), Type.Number(), { description: 'measure id → value' }),
});

const ProvenanceSchema = Closed({
  model: Closed({
    path: NonEmpty, sha256: Sha256, family: NonEmpty,
    expandedFusedOps: Type.Optional(Type.Record(Type.String(), Positive, { description: "onnxruntime's fused ops expanded into standard ops before rewriting, op → count" })),
    layers: Positive, heads: Positive, vocab: Positive,
  }),
  tokenizer: Closed({ path: NonEmpty, sha256: Sha256 }),
  dataset: Closed({ path: NonEmpty, sha256: Sha256, format: NonEmpty }),
  source: Closed({ path: NonEmpty, sha256: Sha256, text: Type.String() }, 'the .dissect program: where it was, its hash and its full text'),
  device: Type.String({ minLength: 1, description: 'e.g. "cpu", "cuda:0"' }),
  env: Closed({ NVIDIA_TF32_OVERRIDE: Nullable(Type.String()) }, 'environment variables that change numerics; null when unset'),
  onnxruntime: Closed({ version: NonEmpty }),
  node: Type.Optional(NonEmpty),
  rows: Type.Optional(Closed({
    mode: Type.Union([Type.Literal('last_position'), Type.Literal('full')]),
    reason: NonEmpty,
    lastPositionRows: Type.Optional(Count),
    fullRows: Type.Optional(Count),
    cleanPassRows: Type.Optional(Count),
    journalFacts: Type.Optional(Count),
    journalRows: Type.Optional(Count),
    cleanStream: Type.Optional(Type.Union([Type.Literal('host'), Type.Literal('in-graph')], {
      description: 'where last-position rows got the clean run\'s keys and values: returned by the clean pass and fed back (`host`), or recomputed in the graph of each batch (`in-graph`, the CUDA default)',
    })),
    startLayer: Type.Optional(Closed({ used: Type.Boolean(), reason: NonEmpty },
      'whether rows began at the first block they change or read, from the clean run\'s hidden state entering it, and why (or why not)')),
  }, "how rows ran: `last_position` when rows that change only the last position's attention ran that token alone against the clean run's keys and values; the counts are the rows this invocation ran each way (after `dissect merge`: the shards' counts summed), `cleanPassRows` those that change nothing and were read from their fact's clean pass (none with --full-rows); `journalFacts` facts (with `journalRows` rows of the kept ones) came finished from the journal of an earlier invocation or a merged shard")),
});

const DataSchema = Closed({
  total: Type.Integer({ minimum: 0, description: 'records read from the dataset' }),
  kept: Type.Integer({ minimum: 0, description: 'examples measured (= examples.length)' }),
  // TypeBox infers no key type from a mapped list of literals: the static type is stated
  dropped: Type.Unsafe<Partial<Record<DropReason, number>>>(Closed(Object.fromEntries(DROP_REASONS.map((r) => [r, Type.Optional(Count)])),
    'why the others were dropped: reason → count; counts sum to total − kept')),
  droppedFacts: Type.Array(Closed({
    id: ExampleIdSchema,
    reason: Type.Unsafe<DropReason>(Type.Union(DROP_REASONS.map((r) => Type.Literal(r)))),
    detail: Type.Optional(Type.String()),
  }, 'a dropped fact and why'), { description: 'every dropped fact, in dataset order (repeated ids last)' }),
  filter: Type.Union([Type.Literal('known'), Type.Literal('none')]),
  bos: Type.Union([Type.Literal('none'), Type.Literal('prepend')]),
  limit: CountOrNull,
  sample: CountOrNull,
  seed: CountOrNull,
  shard: Type.Optional(Closed({
    index: Count,
    count: Positive,
    batch: Type.Optional(Positive),
    facts: Type.Optional(Type.Array(ExampleIdSchema, { description: "the ids the shard ran, in order: its batches of `batch` facts are batches index, index + count, … of the whole run's, which `dissect merge` puts back in order (repeated ids are in droppedFacts)" })),
  }, "present on a shard's results (`--shard index/count`): they cover every count-th batch of the run's facts from the index-th on, and only those")),
  withoutAttributes: Type.Optional(Type.Integer({ minimum: 0, description: 'kept facts whose subject has no attribute data: they get no attributes_rate' })),
});

export const ResultsExampleSchema = Closed({
  id: ExampleIdSchema,
  prompt: Type.String(),
  subject: Type.String(),
  target: Type.String({ description: "the dataset's expected attribute (the measures use cleanTop1, not this)" }),
  tokens: Type.Array(Type.String(), { minItems: 1 }),
  subjectRange: Pair(Count),
  subjectAtZero: Type.Boolean(),
  cleanTop1: Closed({ id: Count, token: Type.String(), prob: Type.Number({ minimum: 0, maximum: 1 }) },
    "the model's top-1 for the prompt; `token` is empty when the tokenizer has no such id (a model with more embedding rows than tokenizer ids, as GPT-J)"),
});

const TokenRowSchema = Closed({
  example: ExampleIdSchema,
  key: SweepKeySchema,
  measure: Type.String({ minLength: 1, description: 'the id of a top_tokens measure' }),
  position: Count,
  tokens: Type.Array(Type.String()),
}, 'the top tokens a `top_tokens` probe read at one position of one example');

const PositionValueRowSchema = Closed({
  example: ExampleIdSchema,
  key: SweepKeySchema,
  measure: Type.String({ minLength: 1, description: 'the label of an attribution or integrated_gradients probe' }),
  positions: Type.Array(Count, { description: 'the token positions read, ascending' }),
  values: Type.Array(Type.Number(), { description: 'the value at each of them' }),
}, "an attribution probe's value at each position it reads, for one example and binding");

const ExtractionSummarySchema = Closed({
  key: SweepKeySchema,
  layerVariable: NonEmpty,
  layers: Type.Union([Type.Null(), Type.Array(Count)], { description: 'the `in layers` range, or null for the whole sweep' }),
  examples: Count,
  probes: Type.Array(Closed({
    probe: Type.String({ minLength: 1, description: 'the extraction probe as written' }),
    site: NonEmpty,
    rateAnyLayer: PercentOrNull,
    rateInLayers: PercentOrNull,
    meanEventLayers: NumberOrNull,
    meanEventLayersAll: NumberOrNull,
  })),
  cross: Type.Union([Type.Null(), Closed({
    both: PercentOrNull, attentionOnly: PercentOrNull, mlpOnly: PercentOrNull, neither: PercentOrNull, attentionFirst: PercentOrNull,
  }, "attention × MLP events (% of examples); attentionFirst: % of `both` whose first attention event is no later than the first MLP one")]),
  ranks: Type.Optional(Type.Union([Type.Null(), Closed({
    hidden: Type.String({ minLength: 1, description: 'measure id' }), attention: Type.String({ minLength: 1, description: 'measure id' }),
    rows: Count, mean: NumberOrNull, median: NumberOrNull, min: NumberOrNull, max: NumberOrNull,
  }, "the paper's rank analysis: rank in the hidden state − rank in the attention update, over rows where the latter is 0")])),
}, '`summarize extraction`: per binding of the non-layer sweeps, rates over examples (percent)');

const ExperimentSchema = Closed({
  name: NonEmpty,
  source: Type.String({ description: "the experiment's .dissect lines" }),
  sweeps: Type.Array(SweepAxisSchema),
  measures: Type.Array(MeasureDescriptorSchema, { description: 'every measure: output measures, then probes (one per head of a per-head probe)' }),
  interventions: Type.Array(Type.Union([Type.Literal('block'), Type.Literal('cancel'), Type.Literal('patch')]), { description: 'the kinds of intervention its rows apply' }),
  interventionText: Type.Array(NonEmpty, { description: 'each intervention statement, parameters replaced by their values (`block subject -> last at layers window(l, 9)`)' }),
  forwardPasses: Type.Integer({ minimum: 0, description: 'rows measured (facts × configurations), whether each ran on its own or was read from its fact\'s clean pass' }),
  fullyBlockedRows: Type.Integer({ minimum: 0, description: 'rows in which some query had every key blocked (attention falls back to uniform)' }),
  series: Type.Array(SeriesPointSchema),
  values: Type.Array(ValueRowSchema),
  tokens: Type.Optional(Type.Array(TokenRowSchema)),
  positionValues: Type.Optional(Type.Array(PositionValueRowSchema)),
  ties: Type.Optional(Type.Integer({ minimum: 0, description: 'extraction decisions where the two top scores were equal' })),
  extraction: Type.Optional(Type.Array(ExtractionSummarySchema)),
});

const HeadMappingsSchema = Closed({
  side: Type.Union([Type.Literal('unembedding'), Type.Literal('embedding')], { description: 'the head_mapping_side choice' }),
  subjectToken: Type.Union([Type.Literal('last'), Type.Literal('any')], { description: 'the mapping_subject_token choice' }),
  normalisation: Type.Union([Type.Literal('none'), Type.Literal('token_frequency')], { description: 'the head_mapping_normalisation choice' }),
  top: Positive,
  heads: Type.Array(Closed({
    layer: Count,
    head: Count,
    pairs: Type.Array(Closed({ from: Count, to: Count, fromToken: Type.String(), toToken: Type.String(), score: Type.Number() })),
    subjectAttributeFacts: Type.Array(ExampleIdSchema),
  })),
}, "`head_mappings`: per head, its top token → token pairs and the facts whose subject → prediction pair is among them (in the order of `examples`)");

const CiSchema = Type.Union([
  Closed({ method: Type.Literal('none') }),
  Closed({
    method: Type.Literal('bootstrap_percentile'),
    resamples: Positive,
    level: Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1 }),
    seed: Type.Integer({ minimum: 0, maximum: 4294967295 }),
  }),
]);

const ResultsSchema = Closed({
  format: Type.Literal(RESULTS_FORMAT),
  tool: Closed({ name: NonEmpty, version: NonEmpty }),
  createdAt: Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?(Z|[+-]\\d{2}:\\d{2})$', description: 'ISO 8601 with time zone' }),
  command: Type.Array(Type.String(), { description: 'argv as typed, without the node executable' }),
  fingerprint: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$', description: 'journal fingerprint of the run' })),
  provenance: ProvenanceSchema,
  choices: Type.Record(Type.String(), Type.String(), { description: 'every named semantic choice in force: name → option' }),
  choiceMeanings: Type.Record(Type.String(), NonEmpty, { description: 'name → what the option in force means, in words' }),
  params: Type.Record(Type.String(), Type.Union([Type.Number(), Type.String()])),
  data: DataSchema,
  examples: Type.Array(ResultsExampleSchema),
  experiments: Type.Array(ExperimentSchema),
  headMappings: Type.Optional(HeadMappingsSchema),
  ci: CiSchema,
}, 'dissect results');

/** The JSON Schema of results.json, as `dissect schema` prints it. */
export const resultsSchema = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: 'https://dissect.invalid/schema/dissect-results-2.json',
  title: 'dissect results',
  ...ResultsSchema,
} as const;

export type ExampleId = Static<typeof ExampleIdSchema>;
export type SweepKey = Readonly<Static<typeof SweepKeySchema>>;
export type SweepAxis = DeepReadonly<Static<typeof SweepAxisSchema>>;
export type SeriesPoint = DeepReadonly<Static<typeof SeriesPointSchema>>;
export type ValueRow = DeepReadonly<Static<typeof ValueRowSchema>>;
export type ResultsProvenance = DeepReadonly<Static<typeof ProvenanceSchema>>;
export type ResultsData = DeepReadonly<Static<typeof DataSchema>>;
export type ResultsExample = DeepReadonly<Static<typeof ResultsExampleSchema>>;
export type TokenRow = DeepReadonly<Static<typeof TokenRowSchema>>;
export type PositionValueRow = DeepReadonly<Static<typeof PositionValueRowSchema>>;
export type ExtractionSummaryResult = DeepReadonly<Static<typeof ExtractionSummarySchema>>;
export type ResultsExperiment = DeepReadonly<Static<typeof ExperimentSchema>>;
export type ResultsHeadMappings = DeepReadonly<Static<typeof HeadMappingsSchema>>;
export type ResultsCi = DeepReadonly<Static<typeof CiSchema>>;
export type Results = DeepReadonly<Static<typeof ResultsSchema>>;

// ---------------------------------------------------------------------------------------
// Validation

let compiled: ReturnType<Ajv2020['compile']> | undefined;
function schemaValidator(): ReturnType<Ajv2020['compile']> {
  if (compiled === undefined) {
    // strict mode also rejects NaN and ±Infinity where a number is expected.
    const ajv = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true });
    compiled = ajv.compile(resultsSchema);
  }
  return compiled;
}

function formatAjvError(e: ErrorObject): string {
  const where = e.instancePath === '' ? '/' : e.instancePath;
  const p = e.params as Record<string, unknown>;
  let extra = '';
  if (typeof p['additionalProperty'] === 'string') extra = ` (${p['additionalProperty']})`;
  else if (Array.isArray(p['allowedValues'])) extra = ` (${(p['allowedValues'] as unknown[]).map((v) => JSON.stringify(v)).join(', ')})`;
  else if (p['allowedValue'] !== undefined) extra = ` (${JSON.stringify(p['allowedValue'])})`;
  return `${where}: ${e.message ?? e.keyword}${extra}`;
}

const own = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);
const idKey = (id: ExampleId) => JSON.stringify(id);

/** Cross-field checks; assumes the object already matches the schema. */
function semanticErrors(r: Results): string[] {
  const errs: string[] = [];
  const d = r.data;
  if (d.kept !== r.examples.length) errs.push(`/data/kept: is ${d.kept} but there are ${r.examples.length} examples`);
  const droppedSum = Object.values(d.dropped).reduce((a, b) => a + b, 0);
  if (d.kept + droppedSum !== d.total) errs.push(`/data: kept (${d.kept}) + dropped (${droppedSum}) ≠ total (${d.total})`);
  if (d.droppedFacts.length !== droppedSum) errs.push(`/data/droppedFacts: ${d.droppedFacts.length} facts but the dropped counts sum to ${droppedSum}`);
  for (const name of Object.keys(r.choices)) {
    if (!own(r.choiceMeanings, name)) errs.push(`/choiceMeanings: no meaning for choice "${name}"`);
  }
  for (const name of Object.keys(r.choiceMeanings)) {
    if (!own(r.choices, name)) errs.push(`/choiceMeanings/${name}: not a choice in force`);
  }

  const ids = new Set<string>();
  r.examples.forEach((ex, i) => {
    const at = `/examples/${i}`;
    if (ids.has(idKey(ex.id))) errs.push(`${at}/id: duplicate example id ${idKey(ex.id)}`);
    ids.add(idKey(ex.id));
    const [s, e] = ex.subjectRange;
    if (!(s < e && e <= ex.tokens.length)) errs.push(`${at}/subjectRange: [${s}, ${e}) is not a non-empty range within ${ex.tokens.length} tokens`);
    if (ex.subjectAtZero !== (s === 0)) errs.push(`${at}/subjectAtZero: is ${ex.subjectAtZero} but the subject starts at ${s}`);
  });

  const expNames = new Set<string>();
  r.experiments.forEach((x, xi) => {
    const at = `/experiments/${xi}`;
    const before = errs.length;
    if (expNames.has(x.name)) errs.push(`${at}/name: duplicate experiment "${x.name}"`);
    expNames.add(x.name);
    if (new Set(x.measures.map((d) => d.id)).size !== x.measures.length) errs.push(`${at}/measures: duplicate measure id`);
    const numeric = x.measures.filter(isNumeric).map((d) => d.id);
    const listing = new Set(x.measures.filter((d) => !isNumeric(d)).map((d) => d.id));
    (x.tokens ?? []).forEach((t, ti) => {
      if (!listing.has(t.measure)) errs.push(`${at}/tokens/${ti}/measure: "${t.measure}" is not a top_tokens measure of this experiment`);
    });
    const attributed = new Set(x.measures.filter((d) => d.part !== undefined).map((d) => d.label));
    (x.positionValues ?? []).forEach((v, vi) => {
      if (!attributed.has(v.measure)) errs.push(`${at}/positionValues/${vi}/measure: "${v.measure}" is not an attribution probe of this experiment`);
      if (v.positions.length !== v.values.length) errs.push(`${at}/positionValues/${vi}: ${v.positions.length} positions but ${v.values.length} values`);
    });
    const vars = x.sweeps.map((s) => s.variable);
    if (new Set(vars).size !== vars.length) errs.push(`${at}/sweeps: duplicate variable`);
    x.sweeps.forEach((s, si) => {
      if (new Set(s.values).size !== s.values.length) errs.push(`${at}/sweeps/${si}/values: duplicate value`);
      if (s.kind !== 'positions' && s.values.some((v) => typeof v !== 'number')) errs.push(`${at}/sweeps/${si}/values: a layer sweep takes integers`);
    });
    if (errs.length > before) return; // keys below rely on well-formed sweeps

    const keyOf = (key: Readonly<Record<string, number | string>>, where: string): string | undefined => {
      const names = Object.keys(key);
      const ok =
        names.length === x.sweeps.length &&
        x.sweeps.every((s) => own(key, s.variable) && s.values.includes(key[s.variable]!));
      if (!ok) {
        errs.push(`${where}/key: ${JSON.stringify(key)} is not a binding of the sweeps`);
        return undefined;
      }
      return JSON.stringify(x.sweeps.map((s) => key[s.variable]));
    };

    // Gather the per-example values by (binding, measure).
    const collected = new Map<string, number[]>();
    const seenRows = new Set<string>();
    x.values.forEach((row, ri) => {
      const where = `${at}/values/${ri}`;
      if (!ids.has(idKey(row.example))) errs.push(`${where}/example: unknown example id ${idKey(row.example)}`);
      const k = keyOf(row.key, where);
      if (k === undefined) return;
      const rowId = `${idKey(row.example)}|${k}`;
      if (seenRows.has(rowId)) errs.push(`${where}: duplicate row for example ${idKey(row.example)} at ${JSON.stringify(row.key)}`);
      seenRows.add(rowId);
      for (const [m, v] of Object.entries(row.values)) {
        if (!numeric.includes(m)) {
          errs.push(`${where}/values/${m}: not a measure of this experiment`);
          continue;
        }
        const slot = `${k}|${m}`;
        const list = collected.get(slot);
        if (list === undefined) collected.set(slot, [v as number]);
        else list.push(v as number);
      }
    });

    const expected = x.sweeps.reduce((a, s) => a * s.values.length, 1) * numeric.length;
    if (x.series.length !== expected) errs.push(`${at}/series: has ${x.series.length} points, expected ${expected} (bindings × measures)`);
    const seenPoints = new Set<string>();
    x.series.forEach((p, pi) => {
      const where = `${at}/series/${pi}`;
      const k = keyOf(p.key, where);
      if (!numeric.includes(p.measure)) errs.push(`${where}/measure: "${p.measure}" is not a measure of this experiment`);
      if (k === undefined) return;
      const slot = `${k}|${p.measure}`;
      if (seenPoints.has(slot)) errs.push(`${where}: duplicate point`);
      seenPoints.add(slot);
      const xs = collected.get(slot) ?? [];
      if (p.n !== xs.length) errs.push(`${where}/n: is ${p.n} but values hold ${xs.length} numbers for this point`);
      if ((p.mean === null) !== (p.n === 0)) errs.push(`${where}/mean: must be null exactly when n = 0`);
      if (p.mean !== null && xs.length > 0) {
        const m = mean(xs);
        if (Math.abs(p.mean - m) > 1e-9 * Math.max(1, Math.abs(m))) errs.push(`${where}/mean: is ${p.mean} but the values' mean is ${m}`);
      }
      if (p.ci !== null) {
        if (r.ci.method === 'none') errs.push(`${where}/ci: must be null when the CI method is none`);
        if (!(p.ci[0] <= p.ci[1])) errs.push(`${where}/ci: lower bound above upper bound`);
      } else if (r.ci.method !== 'none' && p.n > 0) {
        errs.push(`${where}/ci: missing although the CI method is ${r.ci.method}`);
      }
    });
  });
  return errs;
}

/** All problems with a would-be results.json object; empty when it is valid. */
export function validateResults(obj: unknown): string[] {
  const validate = schemaValidator();
  if (!validate(obj)) return (validate.errors ?? []).map(formatAjvError);
  return semanticErrors(obj as Results);
}
