// Shared by the compiler tests: fixture access, onnxruntime sessions (one thread each),
// feeds, fp16 decoding, and reference computations in plain JS.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import type { GraphIndex } from '../../src/onnx/graph.js';
import { readModel, type ModelProto } from '../../src/onnx/proto.js';
import { fromHalfBits } from '../../src/onnx/tensor.js';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const FIXTURE_DIR = join(REPO, 'generated', 'fixtures');

export interface FixtureSequence {
  readonly input_ids: number[];
  readonly attention_mask: number[];
  readonly logits: number[][];
}

export interface Fixture {
  readonly config: { layers: number; heads: number; d_model: number; vocab: number; n_positions: number; d_head: number };
  readonly opset: number;
  readonly sequences: FixtureSequence[];
}

export const FIXTURE_MODELS = ['gpt2-opset14.onnx', 'gpt2-opset17.onnx', 'gpt2-optimum.onnx', 'gpt2-fp16.onnx'] as const;

export function fixturesReady(): boolean {
  return existsSync(join(FIXTURE_DIR, 'READY')) && existsSync(join(FIXTURE_DIR, 'fixtures.json'));
}

let fixtureCache: Record<string, Fixture> | undefined;
export function fixture(name: string): Fixture {
  fixtureCache ??= (JSON.parse(readFileSync(join(FIXTURE_DIR, 'fixtures.json'), 'utf8')) as { fixtures: Record<string, Fixture> }).fixtures;
  const f = fixtureCache[name];
  if (!f) throw new Error(`no fixture ${name}`);
  return f;
}

export function fixturePath(name: string): string {
  return join(FIXTURE_DIR, name);
}

export { tempDir } from '../temp.js';

export const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1 };

export async function session(model: string | Uint8Array, extra?: Record<string, unknown>): Promise<ort.InferenceSession> {
  const opts = { ...SESSION_OPTIONS, ...(extra ? { extra } : {}) };
  return typeof model === 'string' ? ort.InferenceSession.create(model, opts) : ort.InferenceSession.create(model, opts);
}

export function int64(values: readonly number[], dims: readonly number[]): ort.Tensor {
  return new ort.Tensor('int64', BigInt64Array.from(values.map((v) => BigInt(v))), dims);
}

export function bool(values: Uint8Array, dims: readonly number[]): ort.Tensor {
  return new ort.Tensor('bool', values, dims);
}

/** A tensor's values as numbers; fp16 arrives as raw 16-bit integers and is decoded here. */
export function numbers(t: ort.Tensor): number[] {
  if (t.type === 'float16') return Array.from(t.data as Uint16Array, (h) => fromHalfBits(h));
  if (t.type === 'int64') return Array.from(t.data as BigInt64Array, (v) => Number(v));
  return Array.from(t.data as ArrayLike<number>);
}

export interface Row {
  readonly ids: readonly number[];
  readonly mask: readonly number[];
}

/** Model inputs for rows of equal length (the fixtures' own padding), Optimum extras included. */
export function modelFeeds(model: string, rows: readonly Row[], heads = 4, dHead = 8, layers = 2): Record<string, ort.Tensor> {
  const n = rows[0]!.ids.length;
  const b = rows.length;
  const feeds: Record<string, ort.Tensor> = {
    input_ids: int64(rows.flatMap((r) => r.ids), [b, n]),
    attention_mask: int64(rows.flatMap((r) => r.mask), [b, n]),
  };
  if (model.includes('optimum')) {
    feeds.position_ids = int64(rows.flatMap(() => Array.from({ length: n }, (_, i) => i)), [b, n]);
    for (let l = 0; l < layers; l++) {
      for (const kv of ['key', 'value']) feeds[`past_key_values.${l}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [b, heads, 0, dHead]);
    }
  }
  return feeds;
}

/** Right-pads every row to the longest (id 0, mask 0). */
export function padRows(rows: readonly Row[]): Row[] {
  const n = Math.max(...rows.map((r) => r.ids.length));
  return rows.map((r) => ({
    ids: [...r.ids, ...new Array(n - r.ids.length).fill(0)],
    mask: [...r.mask, ...new Array(n - r.mask.length).fill(0)],
  }));
}

export function lastReal(r: Row): number {
  return r.mask.lastIndexOf(1);
}

export function softmax(xs: readonly number[]): number[] {
  const m = Math.max(...xs);
  const e = xs.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

export function argmax(xs: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i]! > xs[best]!) best = i;
  return best;
}

export function rankOf(xs: readonly number[], target: number): number {
  return xs.filter((x) => x > xs[target]!).length;
}

export function maxAbs(xs: readonly number[]): number {
  return xs.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
}

export function maxAbsDiff(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return Number.isNaN(m) ? Infinity : m;
}

/** Whether an `op` node lies upstream of t, not looking past `stop`. */
export function upstreamHas(ix: GraphIndex, t: string, op: string, stop: string): boolean {
  const seen = new Set<string>();
  const stack = [t];
  while (stack.length) {
    const x = stack.pop()!;
    if (x === stop || seen.has(x)) continue;
    seen.add(x);
    const p = ix.producer(x);
    if (!p) continue;
    if (p.opType === op) return true;
    stack.push(...(p.input ?? []).filter(Boolean));
  }
  return false;
}

/** Strips node names and renames every internal tensor: detection must not rely on names. */
export function anonymise(m: ModelProto): void {
  const g = m.graph!;
  const keep = new Set([...(g.input ?? []), ...(g.output ?? [])].map((v) => v.name));
  const map = new Map<string, string>();
  const ren = (x: string): string => {
    if (!x || keep.has(x)) return x;
    if (!map.has(x)) map.set(x, `t${map.size}`);
    return map.get(x)!;
  };
  for (const i of g.initializer ?? []) i.name = ren(i.name ?? '');
  for (const x of g.node ?? []) {
    x.name = '';
    x.input = (x.input ?? []).map(ren);
    x.output = (x.output ?? []).map(ren);
  }
  g.valueInfo = [];
}

/** The model at `path` without the Softmax node named `name` (its input wired to its readers). */
export function withoutSoftmax(path: string, name: string): ModelProto {
  const m = readModel(path);
  const g = m.graph!;
  const sm = g.node!.find((x) => x.opType === 'Softmax' && x.name === name)!;
  const [scores, probs] = [sm.input![0]!, sm.output![0]!];
  g.node = g.node!.filter((x) => x !== sm);
  for (const x of g.node) x.input = (x.input ?? []).map((i) => (i === probs ? scores : i));
  return m;
}
