// Plain-JS references for the rewrite-pass tests: weights read from a model's initializers,
// LayerNorm, MLP, vocabulary projection with top-k, graph taps, and generic feeds.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import ort from 'onnxruntime-node';
import { GraphIndex } from '../../src/onnx/graph.js';
import { decodeModel, encodeModel, writeModel, type ModelProto } from '../../src/onnx/proto.js';
import { buildSkeleton } from '../../bench/skeleton.js';
import { detectSites } from '../../src/onnx/sites/index.js';
import { matchLayerNorm } from '../../src/onnx/sites/pattern.js';
import type { LinearWeights, ModelSites } from '../../src/onnx/sites/types.js';
import { attrFloat, tensorDims, tensorValues, toHalfBits } from '../../src/onnx/tensor.js';
import { buildVariant } from '../../src/onnx/compile.js';
import { VariantNames, type ProjectionRequest, type VariantManifest, type VariantRequest } from '../../src/onnx/variant.js';
import { FIXTURE_MODELS, REPO, bool, fixturePath, int64, maxAbs, maxAbsDiff, numbers, session, tempDir } from './helpers.js';

export const TINY_GPT2 = join(REPO, 'generated', 'tiny-gpt2', 'model.onnx');

let skeleton: string | undefined;
/** The benchmark's synthetic GPT-2 (MatMul + Add linears, fused LayerNorm, keys [b, h, dh, s],
 *  untied LM head without bias, position_ids input), small, random, weights embedded. */
export function skeletonModel(): string {
  if (!skeleton) {
    skeleton = join(tempDir('skeleton-ref'), 'skeleton.onnx');
    writeModel(skeleton, buildSkeleton({ layers: 3, heads: 2, dModel: 16, vocab: 64, positions: 16, dMlp: 64 }, { lazy: false, seed: 11 }));
  }
  return skeleton;
}

/** The fixture models, the synthetic skeleton, and generated/tiny-gpt2 once it exists. */
export function testModels(): { name: string; path: string }[] {
  const list: { name: string; path: string }[] = FIXTURE_MODELS.map((name) => ({ name, path: fixturePath(name) }));
  list.push({ name: 'skeleton', path: skeletonModel() });
  if (existsSync(TINY_GPT2)) list.push({ name: 'tiny-gpt2', path: TINY_GPT2 });
  return list;
}

export interface Matrix { readonly rows: number; readonly cols: number; readonly data: Float64Array }

export interface Norm { readonly gamma: Float64Array; readonly beta: Float64Array; readonly eps: number }

export class ModelRef {
  readonly model: ModelProto;
  readonly sites: ModelSites;
  readonly ix: GraphIndex;
  readonly fp16: boolean;

  constructor(readonly path: string) {
    this.model = decodeModel(readFileSync(path), path);
    this.sites = detectSites(this.model, path);
    this.ix = new GraphIndex(this.model.graph!);
    this.fp16 = this.sites.dtype === 10;
  }

  /** An initializer (or Constant) as a matrix (1-D tensors: one row). */
  matrix(name: string): Matrix {
    const t = this.ix.constantTensor(name);
    if (!t) throw new Error(`no constant ${name}`);
    const dims = tensorDims(t);
    const values = tensorValues(t, 1 << 26);
    if (!values) throw new Error(`constant ${name} is not readable`);
    const cols = dims[dims.length - 1] ?? 1;
    return { rows: values.length / cols, cols, data: Float64Array.from(values) };
  }

  vector(name: string): Float64Array {
    return this.matrix(name).data;
  }

  /** A linear layer's weight as [in, out]. */
  linearIo(w: LinearWeights): Matrix {
    const m = this.matrix(w.weight);
    return w.layout === 'io' ? m : transpose(m);
  }

  /** The LayerNorm reading tensor `x` (γ, β, ε from the graph). */
  norm(x: string): Norm {
    const n = matchLayerNorm(this.ix, x);
    if (!n) throw new Error(`no LayerNorm reads ${x}`);
    let gamma: string | undefined;
    let beta: string | undefined;
    let eps = 1e-5;
    const fused = [...n.nodes].find((m) => m.opType === 'LayerNormalization');
    if (fused) {
      gamma = fused.input![1];
      beta = fused.input![2];
      eps = attrFloat(fused, 'epsilon', 1e-5)!;
    } else {
      gamma = n.scale;
      const last = [...n.nodes].find((m) => m.output?.[0] === n.output)!;
      beta = last.opType === 'Add' ? last.input!.find((i) => this.ix.isConstant(i)) : undefined;
      const sqrt = [...n.nodes].find((m) => m.opType === 'Sqrt');
      const add = sqrt && [...n.nodes].find((m) => m.output?.[0] === sqrt.input?.[0] && m.opType === 'Add');
      const c = add?.input?.find((i) => this.ix.isConstant(i));
      if (c) eps = this.ix.constantValues(c)![0]!;
    }
    const d = this.sites.dModel;
    return {
      gamma: gamma ? this.vector(gamma) : new Float64Array(d).fill(1),
      beta: beta ? this.vector(beta) : new Float64Array(d),
      eps,
    };
  }
}

export function transpose(m: Matrix): Matrix {
  const out = new Float64Array(m.data.length);
  for (let i = 0; i < m.rows; i++) for (let j = 0; j < m.cols; j++) out[j * m.rows + i] = m.data[i * m.cols + j]!;
  return { rows: m.cols, cols: m.rows, data: out };
}

export function layerNorm(x: ArrayLike<number>, n: Norm): number[] {
  const d = x.length;
  let mean = 0;
  for (let i = 0; i < d; i++) mean += x[i]!;
  mean /= d;
  let v = 0;
  for (let i = 0; i < d; i++) v += (x[i]! - mean) ** 2;
  v /= d;
  const s = Math.sqrt(v + n.eps);
  return Array.from({ length: d }, (_, i) => ((x[i]! - mean) / s) * n.gamma[i]! + n.beta[i]!);
}

/** x [in] · W [in, out] (+ b). */
export function vecMat(x: ArrayLike<number>, w: Matrix, b?: ArrayLike<number>): number[] {
  const out = new Array<number>(w.cols).fill(0);
  for (let i = 0; i < w.rows; i++) {
    const xi = x[i]!;
    if (xi === 0) continue;
    for (let j = 0; j < w.cols; j++) out[j]! += xi * w.data[i * w.cols + j]!;
  }
  if (b) for (let j = 0; j < w.cols; j++) out[j]! += b[j]!;
  return out;
}

/** x [d] · Eᵀ with E [V, d]. */
export function vecMatT(x: ArrayLike<number>, e: Matrix): number[] {
  return Array.from({ length: e.rows }, (_, v) => {
    let s = 0;
    for (let i = 0; i < e.cols; i++) s += x[i]! * e.data[v * e.cols + i]!;
    return s;
  });
}

export function geluNew(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
}

/** GPT-2 MLP sublayer update for a residual vector r (block `layer`). */
export function mlpUpdate(ref: ModelRef, layer: number, r: ArrayLike<number>): number[] {
  const L = ref.sites.perLayer[layer]!;
  const h = layerNorm(r, ref.norm(L.residMid));
  const pre = vecMat(h, ref.linearIo(L.mlpFc), L.mlpFc.bias ? ref.vector(L.mlpFc.bias) : undefined);
  return vecMat(pre.map(geluNew), ref.linearIo(L.mlpProj), L.mlpProj.bias ? ref.vector(L.mlpProj.bias) : undefined);
}

export interface TopK { readonly ids: number[]; readonly scores: number[]; readonly rank: number; readonly all: number[] }

/** Top-k (descending; ties: lowest id), and the target's rank (strictly greater scores), ids ≥ limit excluded. */
export function topK(scores: readonly number[], k: number, target: number, limit = scores.length): TopK {
  const s = scores.map((x, i) => (i < limit ? x : -Infinity));
  const order = [...s.keys()].sort((a, b) => s[b]! - s[a]! || a - b);
  const ids = order.slice(0, k);
  return { ids, scores: ids.map((i) => s[i]!), rank: s.filter((x) => x > s[target]!).length, all: s };
}

export interface Got { ids: number[]; scores: number[]; rank: number }

/** Compares one top-k row with the JS reference, allowing swaps and rank shifts only at near-ties. */
export function checkRow(t: { true(c: boolean, m?: string): void }, got: Got, ref: TopK, target: number, rel: number, what: string): void {
  const finite = ref.all.filter(Number.isFinite);
  const tol = rel * Math.max(maxAbs(finite), 1e-3);
  for (let j = 0; j < ref.ids.length; j++) {
    t.true(Math.abs(got.scores[j]! - ref.scores[j]!) <= tol, `${what}: score #${j} ${got.scores[j]} vs ${ref.scores[j]}`);
    if (got.ids[j] !== ref.ids[j]) {
      const gap = Math.abs(ref.all[got.ids[j]!]! - ref.all[ref.ids[j]!]!);
      t.true(gap <= tol, `${what}: id #${j} ${got.ids[j]} vs ${ref.ids[j]} (not a near-tie: gap ${gap})`);
    }
  }
  const ties = ref.all.filter((x) => Math.abs(x - ref.all[target]!) <= tol).length - 1;
  t.true(Math.abs(got.rank - ref.rank) <= ties, `${what}: target rank ${got.rank} vs ${ref.rank} (${ties} near-ties)`);
}

/** Adds graph outputs for internal tensors (test taps), typed as the model's activations. */
export function tap(bytes: Uint8Array, names: readonly string[], elemType: number): Uint8Array {
  const m = decodeModel(bytes);
  for (const name of names) m.graph!.output!.push({ name, type: { tensorType: { elemType } } });
  return encodeModel(m);
}

/** Model inputs for equal-length rows, from the detected sites (past inputs empty). */
export function feedsFor(sites: ModelSites, ids: readonly (readonly number[])[], masks?: readonly (readonly number[])[]): Record<string, ort.Tensor> {
  const b = ids.length;
  const n = ids[0]!.length;
  const f: Record<string, ort.Tensor> = { [sites.inputs.inputIds]: int64(ids.flat(), [b, n]) };
  if (sites.inputs.attentionMask) f[sites.inputs.attentionMask] = int64(masks ? masks.flat() : new Array(b * n).fill(1), [b, n]);
  if (sites.inputs.positionIds) f[sites.inputs.positionIds] = int64(ids.flatMap((r) => r.map((_, i) => i)), [b, n]);
  const kvHeads = sites.kvHeads ?? sites.heads; // a grouped-query cache holds the key/value heads
  for (const p of sites.inputs.past) {
    for (const t of [p.key, p.value]) {
      f[t] = sites.dtype === 10
        ? new ort.Tensor('float16', new Uint16Array(0), [b, kvHeads, 0, sites.dHead])
        : new ort.Tensor('float32', new Float32Array(0), [b, kvHeads, 0, sites.dHead]);
    }
  }
  return f;
}

/** A tensor of the model's activation dtype from numbers. */
export function activations(sites: ModelSites, values: ArrayLike<number>, dims: readonly number[]): ort.Tensor {
  return sites.dtype === 10
    ? new ort.Tensor('float16', Uint16Array.from(Array.from(values), toHalfBits), dims)
    : new ort.Tensor('float32', Float32Array.from(values), dims);
}

/** The raw element buffer of an activation tensor (fp16 kept as bits), for exact copies. */
export function sameDtype(t: ort.Tensor, dims: readonly number[], from = 0): ort.Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  if (t.type === 'float16') return new ort.Tensor('float16', (t.data as Uint16Array).slice(from, from + n), dims);
  return new ort.Tensor('float32', (t.data as Float32Array).slice(from, from + n), dims);
}

/** Index helper for a row-major tensor of shape dims. */
export function at(dims: readonly number[], ...idx: number[]): number {
  let o = 0;
  for (let i = 0; i < dims.length; i++) o = o * dims[i]! + (idx[i] ?? 0);
  return o;
}

export interface Harness {
  readonly sites: ModelSites;
  readonly manifest: VariantManifest;
  readonly session: ort.InferenceSession;
  /** Runs rows of token ids (all real tokens) with neutral dissect inputs, overridden by `extra`. */
  run(ids: readonly (readonly number[])[], extra?: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>>;
}

/** A session on a variant of `path` with optional taps on internal tensors. */
export async function harness(path: string, request: VariantRequest, taps: (sites: ModelSites) => string[] = () => []): Promise<Harness> {
  const built = buildVariant(path, request);
  const bytes = tap(built.bytes, taps(built.sites), built.sites.dtype);
  const s = await session(bytes, built.manifest.weights.sessionConfig);
  const { sites, manifest } = built;
  return {
    sites, manifest, session: s,
    run: async (ids, extra = {}) => {
      const b = ids.length;
      const n = ids[0]!.length;
      const f = { ...feedsFor(sites, ids), ...neutralFeeds(sites, manifest.inputs, b, n, new Array(b).fill(n - 1), new Array(b).fill(0)) };
      return s.run({ ...f, ...extra });
    },
  };
}

/** The variant's own inputs for rows of length n, set to change nothing, with each row's last index and target. */
export function neutralFeeds(
  sites: ModelSites, manifestInputs: readonly { name: string }[], b: number, n: number, last: readonly number[], target: readonly number[],
): Record<string, ort.Tensor> {
  const has = (name: string): boolean => manifestInputs.some((i) => i.name === name);
  const L = sites.layers;
  const f: Record<string, ort.Tensor> = {};
  if (has(VariantNames.knockout)) f[VariantNames.knockout] = bool(new Uint8Array(b * L * n * n), [b, L, 1, n, n]);
  f[VariantNames.lastIndex] = int64(last, [b]);
  f[VariantNames.target] = int64(target, [b]);
  for (const g of [VariantNames.gateAttention, VariantNames.gateMlp]) {
    if (has(g)) f[g] = new ort.Tensor('float32', new Float32Array(b * L * n).fill(1), [b, L, n]);
  }
  if (has(VariantNames.patchLayer)) {
    f[VariantNames.patchLayer] = int64(new Array(b).fill(-1), [b]);
    f[VariantNames.patchMask] = bool(new Uint8Array(b * n), [b, n]);
    f[VariantNames.patchValues] = activations(sites, new Float64Array(b * n * sites.dModel), [b, n, sites.dModel]);
  }
  if (has(VariantNames.projPositions)) f[VariantNames.projPositions] = int64(new Array(b).fill(0), [b, 1]);
  return f;
}

/** Gate input [b, L, n] of ones with the listed (row, layer, position) entries set. */
export function gateTensor(b: number, L: number, n: number, set: readonly [number, number, number, number][]): ort.Tensor {
  const g = new Float32Array(b * L * n).fill(1);
  for (const [row, layer, pos, value] of set) g[(row * L + layer) * n + pos] = value;
  return new ort.Tensor('float32', g, [b, L, n]);
}

export interface KnockoutProbe {
  run(mask: Uint8Array, heads: number, rows?: readonly (readonly number[])[], masks?: readonly (readonly number[])[]): Promise<{ probs: number[][]; logits: number[] }>;
  maskOf(heads: number): { m: Uint8Array; set(l: number, h: number, q: number, k: number): void };
  row(r: { probs: number[][] }, l: number, h: number, q: number): number[];
}

export interface KnockoutDims { readonly L: number; readonly H: number; readonly n: number }

/**
 * Blocks the keys of each [layer, query, keys] (one mask for all heads): blocked weights are exactly 0, rows
 * still sum to 1 and open keys keep weight; the first block's other rows are untouched; blocking keys after the query changes nothing.
 */
export async function checkKnockoutBlocks(
  t: ExecutionContext, { run, maskOf, row }: KnockoutProbe, { L, H, n }: KnockoutDims, blocks: readonly (readonly [number, number, readonly number[]])[],
): Promise<void> {
  const base = await run(maskOf(1).m, 1);
  const { m, set } = maskOf(1);
  for (const [l, q, keys] of blocks) for (const k of keys) set(l, 0, q, k);
  const r = await run(m, 1);
  const [l0, q0] = blocks[0]!;
  for (let h = 0; h < H; h++) {
    for (const [l, q, keys] of blocks) {
      const p = row(r, l, h, q);
      for (const k of keys) t.is(p[k], 0, `layer ${l} head ${h} row ${q} key ${k}`);
      t.true(p.every((x) => x >= 0));
      t.true(Math.abs(p.reduce((a, x) => a + x, 0) - 1) <= 1e-6, `layer ${l} head ${h} row ${q} sums to 1`);
      t.true(p.some((x, k) => k <= q && !keys.includes(k) && x > 0), 'open keys keep weight');
    }
    for (let q = 0; q < n; q++) if (q !== q0) t.deepEqual(row(r, l0, h, q), row(base, l0, h, q), `layer ${l0} head ${h} row ${q} untouched`);
  }
  t.notDeepEqual(r.logits, base.logits);
  const future = maskOf(1);
  for (let l = 0; l < L; l++) for (let q = 0; q < n; q++) for (let k = q + 1; k < n; k++) future.set(l, 0, q, k);
  const f = await run(future.m, 1);
  t.deepEqual(f.logits, base.logits);
  t.deepEqual(f.probs, base.probs);
}

/**
 * Fully blocked rows (queries 2 and 5 of `layers`) are uniform over their causal prefix; with every edge blocked,
 * for `rows` whose second is right-padded, row 0 is too and nothing is NaN or infinite.
 */
export async function checkFullyBlockedRows(
  t: ExecutionContext, { run, maskOf, row }: KnockoutProbe, { L, H, n }: KnockoutDims, layers: readonly number[],
  rows: readonly (readonly number[])[], masks: readonly (readonly number[])[],
): Promise<void> {
  const { m, set } = maskOf(1);
  for (const l of layers) for (const q of [2, 5]) for (let k = 0; k <= q; k++) set(l, 0, q, k);
  const r = await run(m, 1);
  for (const l of layers) {
    for (let h = 0; h < H; h++) {
      for (const q of [2, 5]) {
        const p = row(r, l, h, q);
        t.true(p.every((x, k) => Math.abs(x - (k <= q ? 1 / (q + 1) : 0)) <= 1e-7), `layer ${l} head ${h} row ${q}: ${p.join(' ')}`);
        t.true(p.slice(q + 1).every((x) => x === 0), 'future keys get exactly 0');
      }
    }
  }
  const all = await run(new Uint8Array(2 * L * n * n).fill(1), 1, rows, masks);
  for (let l = 0; l < L; l++) {
    for (let q = 0; q < n; q++) {
      const p = all.probs[l]!.slice((0 * H * n + q) * n, (0 * H * n + q + 1) * n);
      t.true(p.every((x, k) => Math.abs(x - (k <= q ? 1 / (q + 1) : 0)) <= 1e-7), `layer ${l} row 0 query ${q}`);
    }
  }
  t.true([...all.logits, ...all.probs.flat()].every(Number.isFinite), 'no NaN or infinity');
}

/** A model's projection-test setup: its sites, weights, sizes, probed positions / targets and the JS vocabulary projection. */
export interface ProjectionSetup {
  readonly sites: ModelSites;
  readonly ref: ModelRef;
  readonly L: number;
  readonly n: number;
  readonly d: number;
  readonly dh: number;
  readonly H: number;
  readonly positions: readonly (readonly number[])[];
  readonly targets: readonly number[];
  readonly project: (x: readonly number[], via: ProjectionRequest['via']) => number[];
  /** Relative tolerance of scores and norms (fp16 models need more). */
  readonly rel: number;
}

/** The [d] vector a projection site reads at (row, layer l, position pos, head) from the tapped outputs. */
export function projectionSiteVector(
  c: ProjectionSetup, out: Record<string, ort.Tensor>, site: ProjectionRequest['site'], row: number, l: number, pos: number, head: number,
): number[] {
  const { L, n, d, dh } = c;
  const slice = (xs: number[], o: number) => xs.slice(o, o + d);
  if (site === 'hidden') return slice(numbers(out.dissect_hidden_states!), at([2, L + 1, n, d], row, l, pos));
  const Lx = c.sites.perLayer[l]!;
  if (site === 'attention') return slice(numbers(out[Lx.attnOut]!), at([2, n, d], row, pos));
  if (site === 'mlp') return slice(numbers(out[Lx.mlpOut]!), at([2, n, d], row, pos));
  const o = at([2, n, d], row, pos) + head * dh;
  const ctx = numbers(out[Lx.contextMerged]!).slice(o, o + dh);
  const wo: Matrix = c.ref.linearIo(Lx.attnProj);
  return vecMat(ctx, { rows: dh, cols: d, data: wo.data.slice(head * dh * d, (head + 1) * dh * d) });
}

/**
 * Every projection output in `out` (ids, scores, target rank: their shapes, types, and values
 * against the JS reference on the `tapped` site tensors; the norm of the site's vector).
 */
export function checkProjections(
  t: ExecutionContext, out: Record<string, ort.Tensor>, tapped: Record<string, ort.Tensor>, projections: readonly ProjectionRequest[], c: ProjectionSetup,
): void {
  const { H, positions: POSITIONS, targets: TARGETS } = c;
  const P = POSITIONS[0]!.length;
  for (const pr of projections) {
    const heads = pr.site === 'heads' ? H : 1;
    const dims = [2, pr.layers.length, ...(pr.site === 'heads' ? [H] : []), P];
    const output = (part: string): ort.Tensor => out[`dissect_proj_${pr.site}_${part}`]!;
    for (const [part, type, shape] of [['ids', 'int64', [...dims, pr.k]], ['scores', 'float32', [...dims, pr.k]], ['target_rank', 'int64', dims],
      ['norm', 'float32', dims]] as const) {
      t.deepEqual(output(part).dims, shape, `${pr.site} ${part}`);
      t.is(output(part).type, type, `${pr.site} ${part}`);
    }
    const I = numbers(output('ids'));
    const S = numbers(output('scores'));
    const R = numbers(output('target_rank'));
    const N = numbers(output('norm'));
    for (let b = 0; b < 2; b++) {
      pr.layers.forEach((l, li) => {
        for (let hd = 0; hd < heads; hd++) {
          for (let pi = 0; pi < P; pi++) {
            const o = at(dims, ...(pr.site === 'heads' ? [b, li, hd, pi] : [b, li, pi]));
            const x = projectionSiteVector(c, tapped, pr.site, b, l, POSITIONS[b]![pi]!, hd);
            const r = topK(c.project(x, pr.via), pr.k, TARGETS[b]!, pr.vocabLimit);
            const got = { ids: I.slice(o * pr.k, (o + 1) * pr.k), scores: S.slice(o * pr.k, (o + 1) * pr.k), rank: R[o]! };
            const what = `${pr.site} ${pr.via} limit ${pr.vocabLimit} row ${b} layer ${l}${pr.site === 'heads' ? ` head ${hd}` : ''} position ${POSITIONS[b]![pi]}`;
            checkRow(t, got, r, TARGETS[b]!, c.rel, what);
            t.true(got.ids.every((id) => id < pr.vocabLimit));
            const norm = Math.hypot(...x);
            t.true(Math.abs(N[o]! - norm) <= c.rel * norm, `${what}: norm ${N[o]} vs ${norm}`);
          }
        }
      });
    }
  }
}

/**
 * Each head's share of every block's attention update at the setup's positions, summed over
 * the heads, is the update less the output projection's bias (if any), times the attention
 * gate where `gate` ([2, L, n]) is fed.
 */
export async function checkHeadSharesSum(t: ExecutionContext, path: string, rows: readonly (readonly number[])[], c: ProjectionSetup, gate?: ort.Tensor): Promise<void> {
  const { L, n, d, H, positions: POSITIONS } = c;
  const P = POSITIONS[0]!.length;
  const blocks = Array.from({ length: L }, (_, l) => l);
  const shares = (layer: number): string => `dissect/proj/heads/layer${layer}/${gate ? 'gated_shares' : 'shares'}`;
  const h = await harness(path, {
    knockout: false, logits: false, projections: [{ site: 'heads', layers: blocks, via: 'embedding', k: 3, vocabLimit: c.sites.vocab }],
    ...(gate ? { gates: { attention: 'zero_update' as const } } : {}),
  }, () => c.sites.perLayer.flatMap((Lx) => [Lx.attnOut, shares(Lx.layer)]));
  const out = await h.run(rows.map((r) => [...r]), { dissect_proj_positions: int64(POSITIONS.flat(), [2, P]), ...(gate ? { dissect_gate_attention: gate } : {}) });
  const g = gate ? numbers(gate) : undefined;
  for (const Lx of c.sites.perLayer) {
    const S = numbers(out[shares(Lx.layer)]!);
    t.deepEqual(out[shares(Lx.layer)]!.dims, [2, H, P, d]);
    const attn = numbers(out[Lx.attnOut]!);
    const bias = Lx.attnProj.bias ? c.ref.vector(Lx.attnProj.bias) : new Float64Array(d);
    for (let b = 0; b < 2; b++) {
      for (let pi = 0; pi < P; pi++) {
        const pos = POSITIONS[b]![pi]!;
        const factor = g ? g[at([2, L, n], b, Lx.layer, pos)]! : 1;
        const sum = new Array<number>(d).fill(0);
        for (let hd = 0; hd < H; hd++) for (let i = 0; i < d; i++) sum[i]! += S[at([2, H, P, d], b, hd, pi) + i]!;
        const update = attn.slice(at([2, n, d], b, pos), at([2, n, d], b, pos) + d);
        const diff = maxAbsDiff(sum, update.map((a, i) => factor * (a - bias[i]!)));
        t.true(diff <= (c.ref.fp16 ? 1e-2 : 1e-5) * Math.max(maxAbs(update), 1e-3),
          `${gate ? 'gated ' : ''}layer ${Lx.layer} row ${b} position ${pos}: Σ shares vs gate·(update − bias): ${diff}`);
      }
    }
  }
}

/**
 * Per-head knockout at `layer`: head `full` loses every key before its query q, so all its
 * weight lands on q itself; head `one` loses key 0 of its query. Every other (layer up to
 * `layer`, head, row) is unchanged. Returns the runs without and with the knockout.
 */
export async function checkPerHeadKnockout(
  t: ExecutionContext, { run, maskOf, row }: KnockoutProbe, { H, n }: KnockoutDims, layer: number,
  full: { head: number; q: number }, one: { head: number; q: number },
): Promise<{ probs: number[][]; logits: number[] }[]> {
  const base = await run(maskOf(H).m, H);
  const { m, set } = maskOf(H);
  for (let k = 0; k < full.q; k++) set(layer, full.head, full.q, k);
  set(layer, one.head, one.q, 0);
  const r = await run(m, H);
  for (let l = 0; l <= layer; l++) {
    for (let h = 0; h < H; h++) {
      for (let q = 0; q < n; q++) {
        if (l === layer && ((h === full.head && q === full.q) || (h === one.head && q === one.q))) continue;
        t.deepEqual(row(r, l, h, q), row(base, l, h, q), `layer ${l} head ${h} row ${q} unchanged`);
      }
    }
  }
  t.deepEqual(row(r, layer, full.head, full.q), Array.from({ length: n }, (_, k) => (k === full.q ? 1 : 0)));
  t.is(row(r, layer, one.head, one.q)[0], 0);
  t.notDeepEqual(row(r, layer, one.head, one.q), row(base, layer, one.head, one.q));
  return [base, r];
}
