// Datasets of facts (prompt, subject, target). Formats:
// - counterfact: JSON array of {case_id, requested_rewrite: {prompt (with one "{}"), subject,
//   target_true: {str}}}; prompt = the template with "{}" replaced by the subject.
// - known: ROME's known_1000.json, a JSON array of {known_id, prompt, subject, attribute};
//   target = attribute.
// - jsonl: one JSON object per non-blank line; fields named by the mapping (a dotted name
//   such as "requested_rewrite.subject" walks into nested objects when no key has that name).
// - csv: a header row, then records (RFC 4180 quoting, parsed by csv-parse); fields named by
//   the mapping.
// A jsonl / csv mapping may also name `corrupted`: each fact's corrupted prompt (for
// `patch … with corrupted hidden`), required on every record then.
// Fact ids: case_id / known_id; for jsonl and csv the record's "id" field when it has one,
// else the 1-based record number. Errors name the file, the 1-based record number and what
// was expected.

import { readFileSync } from 'node:fs';
import { parse as parseCsv } from 'csv-parse/sync';
import { relativePathsHint } from '../lang/diagnostics.js';
import type { DatasetFields, DatasetSpec } from '../lang/program.js';
import { InternalError, runError, unreadable, type RunError } from './errors.js';
import { mulberry32Float } from '../random.js';

export interface Fact {
  readonly id: string;
  readonly prompt: string;
  readonly subject: string;
  readonly target: string;
  /** The corrupted prompt of a clean/corrupted pair (jsonl / csv with a `corrupted` mapping). */
  readonly corrupted?: string;
  /** 1-based record number in the dataset file (for messages). */
  readonly record: number;
}

type Json = Record<string, unknown>;

function isObject(x: unknown): x is Json {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

export function loadFacts(spec: DatasetSpec): { facts: Fact[] } | RunError {
  const file = spec.path;
  const fail = (message: string, record?: number, hint?: string): RunError =>
    runError('dataset', record === undefined ? `${file}: ${message}` : `${file}: record ${record}: ${message}`,
      { file, span: spec.span, ...(record !== undefined ? { record } : {}), ...(hint !== undefined ? { hint } : {}) });
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    return unreadable('dataset', 'the dataset', file, e, { span: spec.pathSpan, hint: relativePathsHint(spec.pathSpan.file) });
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  switch (spec.format) {
    case 'counterfact': return loadJsonArray(text, fail, counterfactRecord);
    case 'known': return loadJsonArray(text, fail, knownRecord);
    case 'jsonl': return loadJsonl(text, spec.fields, fail);
    case 'csv': return loadCsv(text, spec.fields, fail);
    default: throw new InternalError(`unknown dataset format ${(spec as { format: string }).format}`);
  }
}

type Fail = (message: string, record?: number, hint?: string) => RunError;
type RecordReader = (r: unknown, record: number, fail: Fail) => Fact | RunError;

function loadJsonArray(text: string, fail: Fail, read: RecordReader): { facts: Fact[] } | RunError {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    return fail(`not valid JSON: ${(e as Error).message}`);
  }
  if (!Array.isArray(data)) {
    return fail(`expected a JSON array of records, found ${describe(data)}`, undefined,
      'a file with one JSON object per line is `dataset jsonl`');
  }
  const facts: Fact[] = [];
  for (let i = 0; i < data.length; i++) {
    const f = read(data[i], i + 1, fail);
    if ('kind' in f) return f;
    facts.push(f);
  }
  return { facts };
}

function describe(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'an array';
  if (typeof x === 'object') return 'an object';
  return `a ${typeof x}`;
}

function str(r: Json, key: string, record: number, fail: Fail, path = key): string | RunError {
  const v = r[key];
  if (v === undefined) return fail(`missing field '${path}'`, record);
  if (typeof v !== 'string') return fail(`field '${path}' must be a string, found ${describe(v)}`, record);
  if (v.length === 0) return fail(`field '${path}' is empty`, record);
  return v;
}

function idOf(v: unknown, record: number, fail: Fail, key: string): string | RunError {
  if (typeof v === 'number' || (typeof v === 'string' && v.length > 0)) return String(v);
  return fail(v === undefined ? `missing field '${key}'` : `field '${key}' must be a number or string`, record);
}

const counterfactRecord: RecordReader = (r, record, fail) => {
  if (!isObject(r)) return fail(`expected a CounterFact object, found ${describe(r)}`, record);
  const rw = r['requested_rewrite'];
  if (!isObject(rw)) {
    const hint = 'attribute' in r && 'prompt' in r ? 'this looks like ROME\'s known_1000.json: use `dataset known`' : undefined;
    return fail(rw === undefined ? 'missing field \'requested_rewrite\'' : 'field \'requested_rewrite\' must be an object', record, hint);
  }
  const id = idOf(r['case_id'], record, fail, 'case_id');
  if (typeof id !== 'string') return id;
  const template = str(rw, 'prompt', record, fail, 'requested_rewrite.prompt');
  if (typeof template !== 'string') return template;
  const subject = str(rw, 'subject', record, fail, 'requested_rewrite.subject');
  if (typeof subject !== 'string') return subject;
  const tt = rw['target_true'];
  if (!isObject(tt)) return fail('missing object \'requested_rewrite.target_true\' (with a \'str\' field)', record);
  const target = str(tt, 'str', record, fail, 'requested_rewrite.target_true.str');
  if (typeof target !== 'string') return target;
  const holes = template.split('{}').length - 1;
  if (holes !== 1) {
    return fail(`'requested_rewrite.prompt' must contain "{}" exactly once (where the subject goes), found ${holes}: ${JSON.stringify(template)}`, record);
  }
  return { id, prompt: template.replace('{}', () => subject), subject, target, record };
};

const knownRecord: RecordReader = (r, record, fail) => {
  if (!isObject(r)) return fail(`expected an object with prompt, subject, attribute, found ${describe(r)}`, record);
  if ('requested_rewrite' in r && !('prompt' in r)) {
    return fail('missing field \'prompt\'', record, 'this looks like CounterFact: use `dataset counterfact`');
  }
  const id = idOf(r['known_id'], record, fail, 'known_id');
  if (typeof id !== 'string') return id;
  const prompt = str(r, 'prompt', record, fail);
  if (typeof prompt !== 'string') return prompt;
  const subject = str(r, 'subject', record, fail);
  if (typeof subject !== 'string') return subject;
  const target = str(r, 'attribute', record, fail);
  if (typeof target !== 'string') return target;
  return { id, prompt, subject, target, record };
};

/** The value of a mapped field: the key itself, else a dotted path into nested objects. */
function lookup(r: Json, name: string): unknown {
  if (name in r) return r[name];
  if (!name.includes('.')) return undefined;
  let v: unknown = r;
  for (const part of name.split('.')) {
    if (!isObject(v)) return undefined;
    v = v[part];
  }
  return v;
}

const baseRoles = ['prompt', 'subject', 'target'] as const;
type Role = (typeof baseRoles)[number] | 'corrupted';

/** The mapped roles: prompt, subject, target, and corrupted when the mapping names it. */
function rolesOf(fields: DatasetFields): readonly Role[] {
  return fields.corrupted !== undefined ? [...baseRoles, 'corrupted'] : baseRoles;
}

function factOf(id: string, out: Record<string, string>, record: number): Fact {
  return {
    id, prompt: out['prompt']!, subject: out['subject']!, target: out['target']!,
    ...(out['corrupted'] !== undefined ? { corrupted: out['corrupted'] } : {}), record,
  };
}

function mapped(r: Json, fields: DatasetFields, record: number, fail: Fail): Fact | RunError {
  const out: Record<string, string> = {};
  for (const role of rolesOf(fields)) {
    const name = fields[role]!;
    const v = lookup(r, name);
    const how = `(fields mapping says ${role} = ${JSON.stringify(name)})`;
    if (v === undefined || v === null) return fail(`missing field '${role}' ${how}`, record);
    if (typeof v !== 'string' && typeof v !== 'number') return fail(`field '${role}' must be a string, found ${describe(v)} ${how}`, record);
    const s = String(v);
    if (s.length === 0) return fail(`field '${role}' is empty ${how}`, record);
    out[role] = s;
  }
  const idv = r['id'];
  const id = typeof idv === 'number' || (typeof idv === 'string' && idv.length > 0) ? String(idv) : String(record);
  return factOf(id, out, record);
}

function loadJsonl(text: string, fields: DatasetFields, fail: Fail): { facts: Fact[] } | RunError {
  const facts: Fact[] = [];
  const lines = text.split(/\r?\n/);
  let record = 0;
  for (let l = 0; l < lines.length; l++) {
    const line = lines[l]!.trim();
    if (line.length === 0) continue;
    record++;
    let r: unknown;
    try {
      r = JSON.parse(line);
    } catch (e) {
      return fail(`line ${l + 1} is not valid JSON: ${(e as Error).message}`, record);
    }
    if (!isObject(r)) return fail(`line ${l + 1}: expected a JSON object, found ${describe(r)}`, record);
    const f = mapped(r, fields, record, fail);
    if ('kind' in f) return f;
    facts.push(f);
  }
  return { facts };
}

function loadCsv(text: string, fields: DatasetFields, fail: Fail): { facts: Fact[] } | RunError {
  let rows: string[][];
  try {
    rows = parseCsv(text, { bom: true, skip_empty_lines: true, relax_column_count: false }) as string[][];
  } catch (e) {
    return fail(`not valid CSV: ${(e as Error).message}`);
  }
  if (rows.length === 0) return fail('empty CSV file: expected a header row naming the columns');
  const header = rows[0]!.map((h) => h.trim());
  const col: Record<string, number> = {};
  const roles = rolesOf(fields);
  for (const role of roles) {
    const i = header.indexOf(fields[role]!);
    if (i < 0) {
      return fail(`no column ${JSON.stringify(fields[role])} for field '${role}' (fields mapping says ${role} = ${JSON.stringify(fields[role])}); the header has: ${header.map((h) => JSON.stringify(h)).join(', ')}`);
    }
    col[role] = i;
  }
  const idCol = header.indexOf('id');
  const facts: Fact[] = [];
  for (let k = 1; k < rows.length; k++) {
    const row = rows[k]!;
    const record = k;
    const out: Record<string, string> = {};
    for (const role of roles) {
      const v = row[col[role]!] ?? '';
      if (v.length === 0) return fail(`field '${role}' is empty (fields mapping says ${role} = ${JSON.stringify(fields[role])})`, record);
      out[role] = v;
    }
    const id = idCol >= 0 && row[idCol] ? row[idCol]! : String(record);
    facts.push(factOf(id, out, record));
  }
  return { facts };
}

/**
 * The facts with distinct ids, each the first of its id, and the later ones that repeat an id:
 * results and the journal are keyed by id, so a repeat is dropped (`duplicate_id`), not measured.
 */
export function splitDuplicateIds(facts: readonly Fact[]): { unique: Fact[]; duplicates: Fact[] } {
  const seen = new Set<string>();
  const unique: Fact[] = [];
  const duplicates: Fact[] = [];
  for (const f of facts) {
    if (seen.has(f.id)) duplicates.push(f);
    else { seen.add(f.id); unique.push(f); }
  }
  return { unique, duplicates };
}

export interface Selection {
  /** Keep the first `limit` facts (applied after `sample`). */
  readonly limit?: number;
  /** Keep a seeded random subset of this many facts, in dataset order. */
  readonly sample?: number;
  /** Seed of the sample (default 0); an unsigned 32-bit integer. */
  readonly seed?: number;
  /** Keep only the fact with this id (`--example`); applied first. */
  readonly example?: string;
  /** Run every `count`-th batch of facts from the `index`-th on (`--shard index/count`); applied by the run, not selectFacts. */
  readonly shard?: { readonly index: number; readonly count: number };
}

/**
 * Sample, then limit. The sample is reproducible across platforms and languages: PRNG
 * mulberry32 seeded with `seed >>> 0`, each draw a uniform float u in [0, 1); a partial
 * Fisher–Yates shuffle of the indices 0..N-1 (for i = 0..k-1: j = i + floor(u·(N-i)),
 * swap idx[i], idx[j]) picks idx[0..k), which are then put back in ascending (dataset)
 * order. A sample of N or more keeps every fact.
 */
export function selectFacts(facts: readonly Fact[], sel: Omit<Selection, 'shard'> = {}): Fact[] {
  for (const key of ['limit', 'sample', 'seed'] as const) {
    const v = sel[key];
    if (v !== undefined && (!Number.isInteger(v) || v < 0)) throw new InternalError(`selectFacts: ${key} must be a non-negative integer, got ${v}`);
  }
  let out = sel.example === undefined ? facts.slice() : facts.filter((f) => f.id === sel.example);
  if (sel.sample !== undefined && sel.sample < out.length) {
    const rand = mulberry32Float(sel.seed ?? 0);
    const idx = Array.from(out, (_, i) => i);
    const k = sel.sample;
    for (let i = 0; i < k; i++) {
      const j = i + Math.floor(rand() * (idx.length - i));
      const t = idx[i]!; idx[i] = idx[j]!; idx[j] = t;
    }
    const chosen = idx.slice(0, k).sort((a, b) => a - b);
    out = chosen.map((i) => out[i]!);
  }
  if (sel.limit !== undefined) out = out.slice(0, sel.limit);
  return out;
}

/**
 * The blocks of `block` items numbered index, index + count, index + 2·count, … (`--shard
 * index/count`; the run's blocks are its batches); every item without a shard.
 */
export function shardOf<T>(items: readonly T[], shard: Selection['shard'], block: number): T[] {
  if (!shard) return items.slice();
  const { index, count } = shard;
  if (!Number.isInteger(count) || count < 1 || !Number.isInteger(index) || index < 0 || index >= count) throw new InternalError(`shardOf: shard ${index}/${count}`);
  if (!Number.isInteger(block) || block < 1) throw new InternalError(`shardOf: blocks of ${block}`);
  return items.filter((_, i) => Math.floor(i / block) % count === index);
}
