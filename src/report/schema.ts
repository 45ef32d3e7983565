// results.json: the typed shape, its JSON Schema (draft 2020-12, checked with ajv) and
// validateResults, which adds the cross-field checks a schema cannot express (counts add
// up, every series point matches the per-example values it summarises, ...).

import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js';
import type { BosPolicy, FactFilter } from '../lang/program.js';
import type { SweepAxis, SeriesPoint } from '../measure/aggregate.js';
import type { ValueRow } from '../measure/knockout.js';
import { mean } from '../measure/stats.js';

export const RESULTS_FORMAT = 'dissect-results/1' as const;

export type ExampleId = string | number;

export interface ResultsProvenance {
  readonly model: {
    readonly path: string;
    readonly sha256: string;
    readonly family: string;
    /** onnxruntime's fused ops expanded into standard ops before rewriting, op → count. */
    readonly expandedFusedOps?: Readonly<Record<string, number>>;
    readonly layers: number;
    readonly heads: number;
    readonly vocab: number;
  };
  readonly tokenizer: { readonly path: string; readonly sha256: string };
  readonly dataset: { readonly path: string; readonly sha256: string; readonly format: string };
  /** The .dissect program: where it was, its hash and its full text. */
  readonly source: { readonly path: string; readonly sha256: string; readonly text: string };
  /** e.g. "cpu", "cuda:0". */
  readonly device: string;
  /** Environment variables that change numerics; null when unset. */
  readonly env: { readonly NVIDIA_TF32_OVERRIDE: string | null };
  readonly onnxruntime: { readonly version: string };
  readonly node?: string;
  /**
   * How rows ran: `last_position` when rows that change only the last position's attention ran
   * that token alone against the clean run's keys and values (the same numbers, fewer passes
   * over the prompt), else `full`; `reason` says why.
   */
  readonly rows?: {
    readonly mode: 'last_position' | 'full';
    readonly reason: string;
    /** Rows this invocation ran each way (a resumed run counts only what it ran itself). */
    readonly lastPositionRows?: number;
    readonly fullRows?: number;
  };
}

export interface ResultsData {
  /** Records read from the dataset. */
  readonly total: number;
  /** Examples measured (= examples.length). */
  readonly kept: number;
  /** Why the others were dropped: reason → count; counts sum to total − kept. */
  readonly dropped: Readonly<Record<string, number>>;
  readonly filter: FactFilter;
  readonly bos: BosPolicy;
  readonly limit: number | null;
  readonly sample: number | null;
  readonly seed: number | null;
  /** Present on a shard's results (`--shard index/count`): they cover that part of the facts only. */
  readonly shard?: { readonly index: number; readonly count: number };
  /** Kept facts whose subject has no attribute data: they get no attributes_rate (present when an attributes file is used). */
  readonly withoutAttributes?: number;
}

export interface ResultsExample {
  readonly id: ExampleId;
  readonly prompt: string;
  readonly subject: string;
  /** The dataset's expected attribute (the measures use cleanTop1, not this). */
  readonly target: string;
  readonly tokens: readonly string[];
  /** Token range of the subject, [start, end). */
  readonly subjectRange: readonly [number, number];
  readonly subjectAtZero: boolean;
  readonly cleanTop1: { readonly id: number; readonly token: string; readonly prob: number };
}

/** Top tokens a `top_tokens` probe read at one position of one example. */
export interface TokenRow {
  readonly example: ExampleId;
  readonly key: Readonly<Record<string, number | string>>;
  readonly label: string;
  readonly position: number;
  readonly tokens: readonly string[];
}

/** `summarize extraction`: per binding of the non-layer sweeps, rates over examples (percent). */
export interface ExtractionSummaryResult {
  readonly key: Readonly<Record<string, number | string>>;
  readonly layerVariable: string;
  /** The `in layers` range, or null for the whole sweep. */
  readonly layers: readonly number[] | null;
  readonly examples: number;
  readonly probes: readonly {
    readonly probe: string;
    readonly site: string;
    /** % of examples with an event at some layer of the sweep. */
    readonly rateAnyLayer: number | null;
    /** % of examples with an event inside `layers`. */
    readonly rateInLayers: number | null;
    /** Mean number of event layers, over examples with at least one / over all examples. */
    readonly meanEventLayers: number | null;
    readonly meanEventLayersAll: number | null;
  }[];
  /** Attention × MLP events (% of examples); attentionFirst: % of `both` whose first attention event is no later than the first MLP one. */
  readonly cross: {
    readonly both: number | null; readonly attentionOnly: number | null; readonly mlpOnly: number | null;
    readonly neither: number | null; readonly attentionFirst: number | null;
  } | null;
  /** The paper's rank analysis: rank in the hidden state − rank in the attention update, over rows where the latter is 0. */
  readonly ranks?: {
    readonly hidden: string; readonly attention: string; readonly rows: number;
    readonly mean: number | null; readonly median: number | null; readonly min: number | null; readonly max: number | null;
  } | null;
}

export interface ResultsExperiment {
  readonly name: string;
  /** The experiment's .dissect lines. */
  readonly source: string;
  readonly sweeps: readonly SweepAxis[];
  /** Output measures by name, then probes by their source label (per-head probes: `label [head h]`). */
  readonly measures: readonly string[];
  readonly forwardPasses: number;
  /** Rows in which some query had every key blocked (attention falls back to uniform). */
  readonly fullyBlockedRows: number;
  readonly series: readonly SeriesPoint[];
  readonly values: readonly ValueRow[];
  readonly tokens?: readonly TokenRow[];
  /** Extraction decisions where the two top scores were equal. */
  readonly ties?: number;
  readonly extraction?: readonly ExtractionSummaryResult[];
}

export type ResultsCi =
  | { readonly method: 'none' }
  | { readonly method: 'bootstrap_percentile'; readonly resamples: number; readonly level: number; readonly seed: number };

/** `head_mappings`: per head, its top token → token pairs and the facts whose subject → prediction pair is among them. */
export interface ResultsHeadMappings {
  readonly side: string;
  readonly subjectToken: string;
  readonly top: number;
  readonly heads: readonly {
    readonly layer: number;
    readonly head: number;
    readonly pairs: readonly { readonly from: number; readonly to: number; readonly fromToken: string; readonly toToken: string; readonly score: number }[];
    readonly subjectAttributeFacts: readonly ExampleId[];
  }[];
}

export interface Results {
  readonly format: typeof RESULTS_FORMAT;
  readonly tool: { readonly name: string; readonly version: string };
  /** ISO 8601 with time zone, e.g. 2025-01-31T12:00:00.000Z. */
  readonly createdAt: string;
  /** argv as typed, without the node executable. */
  readonly command: readonly string[];
  /** Journal fingerprint of the run (see journal.ts). */
  readonly fingerprint?: string;
  readonly provenance: ResultsProvenance;
  /** Every named semantic choice in force: name → option. */
  readonly choices: Readonly<Record<string, string>>;
  /** name → what the option in force means, in words. One entry per choice. */
  readonly choiceMeanings: Readonly<Record<string, string>>;
  readonly params: Readonly<Record<string, number | string>>;
  readonly data: ResultsData;
  readonly examples: readonly ResultsExample[];
  readonly experiments: readonly ResultsExperiment[];
  readonly headMappings?: ResultsHeadMappings;
  readonly ci: ResultsCi;
}

// ---------------------------------------------------------------------------------------
// JSON Schema

const sha256 = { type: 'string', pattern: '^[0-9a-f]{64}$' } as const;
const count = { type: 'integer', minimum: 0 } as const;
const positive = { type: 'integer', minimum: 1 } as const;
const nonEmpty = { type: 'string', minLength: 1 } as const;
const sweepValue = { type: ['integer', 'string'] } as const;
const exampleId = { type: ['integer', 'string'] } as const;
const sweepKey = { type: 'object', additionalProperties: sweepValue } as const;
const measure = { type: 'string', minLength: 1 } as const;
const nullableCount = { type: ['integer', 'null'], minimum: 0 } as const;
const numberOrNull = { type: ['number', 'null'] } as const;
const percentOrNull = { type: ['number', 'null'], minimum: 0, maximum: 100 } as const;
const pair = (items: object) => ({ type: 'array', prefixItems: [items, items], items: false, minItems: 2, maxItems: 2 });

export const resultsSchema = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: 'https://dissect.invalid/schema/dissect-results-1.json',
  title: 'dissect results',
  type: 'object',
  additionalProperties: false,
  required: ['format', 'tool', 'createdAt', 'command', 'provenance', 'choices', 'choiceMeanings', 'params', 'data', 'examples', 'experiments', 'ci'],
  properties: {
    format: { const: RESULTS_FORMAT },
    tool: {
      type: 'object', additionalProperties: false, required: ['name', 'version'],
      properties: { name: nonEmpty, version: nonEmpty },
    },
    createdAt: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?(Z|[+-]\\d{2}:\\d{2})$' },
    command: { type: 'array', items: { type: 'string' } },
    fingerprint: { type: 'string', pattern: '^[0-9a-f]{64}$' },
    provenance: {
      type: 'object', additionalProperties: false,
      required: ['model', 'tokenizer', 'dataset', 'source', 'device', 'env', 'onnxruntime'],
      properties: {
        model: {
          type: 'object', additionalProperties: false, required: ['path', 'sha256', 'family', 'layers', 'heads', 'vocab'],
          properties: {
            path: nonEmpty, sha256, family: nonEmpty, layers: positive, heads: positive, vocab: positive,
            expandedFusedOps: { type: 'object', additionalProperties: positive },
          },
        },
        tokenizer: {
          type: 'object', additionalProperties: false, required: ['path', 'sha256'],
          properties: { path: nonEmpty, sha256 },
        },
        dataset: {
          type: 'object', additionalProperties: false, required: ['path', 'sha256', 'format'],
          properties: { path: nonEmpty, sha256, format: nonEmpty },
        },
        source: {
          type: 'object', additionalProperties: false, required: ['path', 'sha256', 'text'],
          properties: { path: nonEmpty, sha256, text: { type: 'string' } },
        },
        device: nonEmpty,
        env: {
          type: 'object', additionalProperties: false, required: ['NVIDIA_TF32_OVERRIDE'],
          properties: { NVIDIA_TF32_OVERRIDE: { type: ['string', 'null'] } },
        },
        onnxruntime: {
          type: 'object', additionalProperties: false, required: ['version'],
          properties: { version: nonEmpty },
        },
        node: nonEmpty,
        rows: {
          type: 'object', additionalProperties: false, required: ['mode', 'reason'],
          properties: {
            mode: { enum: ['last_position', 'full'] }, reason: nonEmpty,
            lastPositionRows: { type: 'integer', minimum: 0 }, fullRows: { type: 'integer', minimum: 0 },
          },
        },
      },
    },
    choices: { type: 'object', additionalProperties: { type: 'string' } },
    choiceMeanings: { type: 'object', additionalProperties: nonEmpty },
    params: { type: 'object', additionalProperties: { type: ['number', 'string'] } },
    data: {
      type: 'object', additionalProperties: false,
      required: ['total', 'kept', 'dropped', 'filter', 'bos', 'limit', 'sample', 'seed'],
      properties: {
        total: count,
        kept: count,
        dropped: { type: 'object', additionalProperties: count },
        filter: { enum: ['known', 'none'] },
        bos: { enum: ['none', 'prepend'] },
        limit: nullableCount,
        sample: nullableCount,
        seed: nullableCount,
        shard: {
          type: 'object', additionalProperties: false, required: ['index', 'count'],
          properties: { index: { type: 'integer', minimum: 0 }, count: { type: 'integer', minimum: 1 } },
        },
        withoutAttributes: count,
      },
    },
    examples: {
      type: 'array',
      items: {
        type: 'object', additionalProperties: false,
        required: ['id', 'prompt', 'subject', 'target', 'tokens', 'subjectRange', 'subjectAtZero', 'cleanTop1'],
        properties: {
          id: exampleId,
          prompt: { type: 'string' },
          subject: { type: 'string' },
          target: { type: 'string' },
          tokens: { type: 'array', items: { type: 'string' }, minItems: 1 },
          subjectRange: pair(count),
          subjectAtZero: { type: 'boolean' },
          cleanTop1: {
            type: 'object', additionalProperties: false, required: ['id', 'token', 'prob'],
            properties: { id: count, token: { type: 'string' }, prob: { type: 'number', minimum: 0, maximum: 1 } },
          },
        },
      },
    },
    experiments: {
      type: 'array',
      items: {
        type: 'object', additionalProperties: false,
        required: ['name', 'source', 'sweeps', 'measures', 'forwardPasses', 'fullyBlockedRows', 'series', 'values'],
        properties: {
          name: nonEmpty,
          source: { type: 'string' },
          sweeps: {
            type: 'array',
            items: {
              type: 'object', additionalProperties: false, required: ['variable', 'kind', 'values'],
              properties: {
                variable: nonEmpty,
                kind: { enum: ['layers', 'hidden', 'positions'] },
                values: { type: 'array', items: sweepValue, minItems: 1 },
              },
            },
          },
          measures: { type: 'array', items: measure },
          forwardPasses: count,
          fullyBlockedRows: count,
          series: {
            type: 'array',
            items: {
              type: 'object', additionalProperties: false, required: ['key', 'measure', 'mean', 'ci', 'n'],
              properties: {
                key: sweepKey,
                measure,
                mean: { type: ['number', 'null'] },
                ci: { oneOf: [{ type: 'null' }, pair({ type: 'number' })] },
                n: count,
              },
            },
          },
          values: {
            type: 'array',
            items: {
              type: 'object', additionalProperties: false, required: ['example', 'key', 'values'],
              properties: {
                example: exampleId,
                key: sweepKey,
                values: { type: 'object', additionalProperties: { type: 'number' } },
              },
            },
          },
          tokens: {
            type: 'array',
            items: {
              type: 'object', additionalProperties: false, required: ['example', 'key', 'label', 'position', 'tokens'],
              properties: {
                example: exampleId, key: sweepKey, label: nonEmpty, position: count,
                tokens: { type: 'array', items: { type: 'string' } },
              },
            },
          },
          ties: count,
          extraction: {
            type: 'array',
            items: {
              type: 'object', additionalProperties: false,
              required: ['key', 'layerVariable', 'layers', 'examples', 'probes', 'cross'],
              properties: {
                ranks: {
                  oneOf: [
                    { type: 'null' },
                    {
                      type: 'object', additionalProperties: false, required: ['hidden', 'attention', 'rows', 'mean', 'median', 'min', 'max'],
                      properties: {
                        hidden: nonEmpty, attention: nonEmpty, rows: count,
                        mean: numberOrNull, median: numberOrNull, min: numberOrNull, max: numberOrNull,
                      },
                    },
                  ],
                },
                key: sweepKey,
                layerVariable: nonEmpty,
                layers: { oneOf: [{ type: 'null' }, { type: 'array', items: count }] },
                examples: count,
                probes: {
                  type: 'array',
                  items: {
                    type: 'object', additionalProperties: false,
                    required: ['probe', 'site', 'rateAnyLayer', 'rateInLayers', 'meanEventLayers', 'meanEventLayersAll'],
                    properties: {
                      probe: nonEmpty, site: nonEmpty,
                      rateAnyLayer: percentOrNull, rateInLayers: percentOrNull,
                      meanEventLayers: numberOrNull, meanEventLayersAll: numberOrNull,
                    },
                  },
                },
                cross: {
                  oneOf: [
                    { type: 'null' },
                    {
                      type: 'object', additionalProperties: false,
                      required: ['both', 'attentionOnly', 'mlpOnly', 'neither', 'attentionFirst'],
                      properties: {
                        both: percentOrNull, attentionOnly: percentOrNull, mlpOnly: percentOrNull,
                        neither: percentOrNull, attentionFirst: percentOrNull,
                      },
                    },
                  ],
                },
              },
            },
          },
        },
      },
    },
    headMappings: {
      type: 'object', additionalProperties: false, required: ['side', 'subjectToken', 'top', 'heads'],
      properties: {
        side: nonEmpty, subjectToken: nonEmpty, top: positive,
        heads: {
          type: 'array',
          items: {
            type: 'object', additionalProperties: false, required: ['layer', 'head', 'pairs', 'subjectAttributeFacts'],
            properties: {
              layer: count, head: count,
              pairs: {
                type: 'array',
                items: {
                  type: 'object', additionalProperties: false, required: ['from', 'to', 'fromToken', 'toToken', 'score'],
                  properties: { from: count, to: count, fromToken: { type: 'string' }, toToken: { type: 'string' }, score: { type: 'number' } },
                },
              },
              subjectAttributeFacts: { type: 'array', items: exampleId },
            },
          },
        },
      },
    },
    ci: {
      oneOf: [
        {
          type: 'object', additionalProperties: false, required: ['method'],
          properties: { method: { const: 'none' } },
        },
        {
          type: 'object', additionalProperties: false, required: ['method', 'resamples', 'level', 'seed'],
          properties: {
            method: { const: 'bootstrap_percentile' },
            resamples: positive,
            level: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1 },
            seed: { type: 'integer', minimum: 0, maximum: 4294967295 },
          },
        },
      ],
    },
  },
} as const;

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
    if (new Set(x.measures).size !== x.measures.length) errs.push(`${at}/measures: duplicate measure`);
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
        if (!x.measures.includes(m)) {
          errs.push(`${where}/values/${m}: not a measure of this experiment`);
          continue;
        }
        const slot = `${k}|${m}`;
        const list = collected.get(slot);
        if (list === undefined) collected.set(slot, [v as number]);
        else list.push(v as number);
      }
    });

    const expected = x.sweeps.reduce((a, s) => a * s.values.length, 1) * x.measures.length;
    if (x.series.length !== expected) errs.push(`${at}/series: has ${x.series.length} points, expected ${expected} (bindings × measures)`);
    const seenPoints = new Set<string>();
    x.series.forEach((p, pi) => {
      const where = `${at}/series/${pi}`;
      const k = keyOf(p.key, where);
      if (!x.measures.includes(p.measure)) errs.push(`${where}/measure: "${p.measure}" is not a measure of this experiment`);
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
