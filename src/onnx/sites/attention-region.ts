// Attention from its q, k, v parts (three projections, or the parts of a fused one) to the output
// projection: forward from each part, a region of head reshapes, transposes, rotary, scale and
// repeat ops reaches an activation × activation MatMul; q and k meet in q·kᵀ (slots 0 and 1),
// v in probs·V. Optimum-style exports (text-generation-with-past) add a kv cache: the k and v
// regions each concatenate a past input before the new positions (the present.* outputs read
// that Concat), and the rotary's sin/cos are gathered with a position_ids input instead of a
// range over the sequence length.

import { GraphIndex, nodeLabel } from '../graph.js';
import type { NodeProto } from '../proto.js';
import { DataType } from '../proto.js';
import { attrInt, tensorDims } from '../tensor.js';
import { matchOutputProjection, matchSoftmax, perm, weightsOf, type Embedding } from './common.js';
import type { Recorder } from './findings.js';
import { fail, forwardTo, in0, isOp, out0, type LinearMatch } from './pattern.js';
import type { HeadProjection, KvCacheInput, LinearWeights } from './types.js';

const PROBS_PASS_OPS = ['Cast', 'Identity', 'Dropout'];
const CAST_OPS = ['Cast', 'Identity'];
const HEAD_REGION_LIMIT = 256;
/** Ops that read only their input's shape: a position trace through them reads no input's values. */
const SHAPE_OPS = ['Shape', 'Size'];
/** How far back from the rotary's sin/cos a position_ids input is looked for. */
const POSITION_TRACE_LIMIT = 64;

export interface Rotary {
  dims: number;
  style: 'interleaved' | 'half';
}

export interface AttentionFacts {
  heads?: number;
  kvHeads?: number;
  dHead?: number;
  kLayout?: 'bhsd' | 'bhds';
  softmaxNode?: string;
  rotary?: Rotary;
  qProj?: HeadProjection;
  kProj?: HeadProjection;
  vProj?: HeadProjection;
  attnProj?: LinearWeights;
  /** The kv-cache inputs concatenated before the keys and values (Optimum exports). */
  past?: { key: string; value: string };
  /** The graph input the rotary's sin/cos are gathered with (Optimum's position_ids). */
  positionIds?: string;
  /** A plain export's positions, computed in the graph, that the rotary looks its sin/cos up by. */
  rotaryPositions?: string;
  /** The attention update passes through a norm before the residual add (Gemma 2). */
  attnPostNorm?: boolean;
}

/** q, k or v: a projection's output, or a part of a fused projection's (at `offset` units; per head with `perHead`). */
export interface QkvPart {
  readonly lin: LinearMatch;
  /** The tensor the part's head region starts from. */
  readonly start: string;
  readonly offset: number;
  /** Units of a fused projection's part (absent: the projection's whole width). */
  readonly width?: number;
  /** GPT-NeoX: the fused output was split into heads first, each head holding q | k | v (stride 3·dh). */
  readonly perHead?: { readonly heads: number; readonly dHead: number; readonly stride: number };
}

export interface Region {
  readonly part: QkvPart;
  readonly lin: LinearMatch;
  readonly nodes: readonly NodeProto[];
  /** The activation × activation MatMul(s) reached, and the input slot read. */
  readonly hits: readonly { readonly node: NodeProto; readonly slot: number }[];
  /** Concats reading a graph input: a kv cache (checked once q, k and v are known). */
  readonly past: readonly NodeProto[];
}

/** Ops between a q/k/v part and its attention MatMul: head split, rotary, scale, kv repeat, dtype casts. */
const HEAD_REGION_OPS = ['Reshape', 'Transpose', 'Slice', 'Neg', 'Concat', 'Mul', 'Add', 'Sub', 'Div', 'Unsqueeze', 'Squeeze', 'Cast', 'Identity',
  'Split', 'Flatten', 'Expand', 'Tile',
  // a norm of q and of k per head (Qwen3, OLMo 2): decomposed, or fused
  'Pow', 'ReduceMean', 'Sqrt', 'Reciprocal', 'LayerNormalization', 'SimplifiedLayerNormalization', 'RMSNormalization'];
const HEAD_REGION_WHAT = 'head reshapes, transposes, a norm, a rotary embedding, a scale and the key/value repeat';
const REPEAT_OPS = ['Expand', 'Tile'];

/** Everything between a part and the attention MatMul it reaches. */
function headRegion(ix: GraphIndex, part: QkvPart): Region {
  const nodes: NodeProto[] = [];
  const hits: { node: NodeProto; slot: number }[] = [];
  const past: NodeProto[] = [];
  const seen = new Set<string>([part.start]);
  const stack = [part.start];
  while (stack.length) {
    const t = stack.pop()!;
    for (const n of ix.dataConsumers(t)) {
      if (isOp(n, 'MatMul') && !ix.isConstant(n.input?.[1] ?? '') && !ix.isConstant(in0(n))) {
        const slot = (n.input ?? []).indexOf(t);
        if (!hits.some((h) => h.node === n && h.slot === slot)) hits.push({ node: n, slot });
        continue;
      }
      if (!HEAD_REGION_OPS.includes(n.opType ?? '')) fail(ix, t, `q, k and v reaching the attention MatMuls through ${HEAD_REGION_WHAT}`, n);
      if (nodes.includes(n)) continue;
      nodes.push(n);
      if (isOp(n, 'Concat') && (n.input ?? []).some((i) => ix.isGraphInput(i))) past.push(n);
      if (nodes.length > HEAD_REGION_LIMIT) fail(ix, t, `an attention projection reaching its MatMul within ${HEAD_REGION_LIMIT} nodes`, n);
      for (const o of n.output ?? []) {
        if (o && !seen.has(o)) {
          seen.add(o);
          stack.push(o);
        }
      }
    }
  }
  return { part, lin: part.lin, nodes, hits, past };
}

/**
 * The past input a k or v region concatenates before its new positions: a graph input as the
 * first of two Concat inputs on the sequence axis of [b, heads, seq, dh] (the knockout counts
 * the past's keys first).
 */
function cacheInput(ix: GraphIndex, g: Region, what: 'keys' | 'values'): string | undefined {
  const [concat, other] = g.past;
  if (other) fail(ix, g.lin.output, `one kv-cache Concat on the ${what}`, other);
  if (!concat) return undefined;
  const axis = attrInt(concat, 'axis', 0);
  if ((concat.input ?? []).length !== 2 || !ix.isGraphInput(in0(concat)) || (axis !== 2 && axis !== -2)) {
    fail(ix, g.lin.output, `the past ${what} (a graph input [b, heads, past, dh]) concatenated before the new ones on axis 2`, concat);
  }
  return in0(concat);
}

/** The Muls of a q or k region by a position-dependent (non-constant, outside) tensor: the rotary's cos / sin. */
function positionalMuls(ix: GraphIndex, region: Region, inRegion: ReadonlySet<string>): NodeProto[] {
  const outside = (i: string): boolean => !!i && !inRegion.has(i) && !ix.isConstant(i);
  return region.nodes.filter((n) => isOp(n, 'Mul') && (n.input ?? []).some(outside));
}

function outputsOf(region: Region): Set<string> {
  const s = new Set(region.nodes.flatMap((n) => n.output ?? []));
  s.add(region.part.start);
  return s;
}

/**
 * Walks back from what the rotary's sin/cos Muls read (outside the region), tensor by tensor
 * (shape computations excluded: they read no values): `step` says whether to go on to the
 * producer's inputs, stop at this tensor, or give up (false is returned).
 */
function traceRotaryInputs(ix: GraphIndex, region: Region, step: (t: string) => 'expand' | 'stop' | 'abort'): boolean {
  const inRegion = outputsOf(region);
  const stack = positionalMuls(ix, region, inRegion).flatMap((m) => (m.input ?? []).filter((i) => !inRegion.has(i)));
  const seen = new Set<string>();
  while (stack.length && seen.size < POSITION_TRACE_LIMIT) {
    const t = stack.pop()!;
    if (seen.has(t)) continue;
    seen.add(t);
    const verdict = step(t);
    if (verdict === 'abort') return false;
    const p = ix.producer(t);
    if (verdict === 'expand' && p && !SHAPE_OPS.includes(p.opType ?? '')) stack.push(...(p.input ?? []).filter(Boolean));
  }
  return true;
}

/**
 * The integer graph input whose values the rotary's sin/cos depend on: position_ids, when the
 * export takes them as an input. A plain export derives positions from the sequence length,
 * whose trace ends at a Shape, so it has none.
 */
function positionInput(ix: GraphIndex, region: Region): string | undefined {
  const found = new Set<string>();
  traceRotaryInputs(ix, region, (t) => {
    if (!ix.isGraphInput(t)) return 'expand';
    const et = ix.inputs.get(t)?.type?.tensorType?.elemType;
    if (et === DataType.INT64 || et === DataType.INT32) found.add(t);
    return 'stop';
  });
  return found.size === 1 ? [...found][0] : undefined;
}

/**
 * The positions a plain export's rotary looks its sin/cos up by: the indices of Gathers from a
 * constant table (GPT-J's embed_positions), derived inside the graph from the sequence length.
 * Undefined when the lookup is not that simple (a table sliced to the sequence length first,
 * as Llama's, would not take positions beyond it), or when the positions are an input.
 */
function rotaryTablePositions(ix: GraphIndex, region: Region): string | undefined {
  const indices = new Set<string>();
  const simple = traceRotaryInputs(ix, region, (t) => {
    if (ix.isConstant(t)) return 'stop';
    if (ix.isGraphInput(t)) return 'abort';
    const p = ix.producer(t);
    const table = !!p && ix.isConstant(in0(p)) && tensorDims(ix.constantTensor(in0(p)) ?? {}).length >= 2;
    if (!table) return 'expand';
    if (!isOp(p, 'Gather') || attrInt(p, 'axis', 0) !== 0) return 'abort'; // a table cut or read otherwise: no position beyond the sequence
    indices.add(p.input![1]!);
    return 'stop';
  });
  return simple && indices.size === 1 ? [...indices][0] : undefined;
}

function back(ix: GraphIndex, t: string, ops: readonly string[]): string {
  let cur = t;
  for (let guard = 0; guard < 8; guard++) {
    const p = ix.producer(cur);
    if (!p || !ops.includes(p.opType ?? '')) break;
    cur = in0(p);
  }
  return cur;
}

/** Constant 1-element int input of a Slice (starts, ends, axes, steps). */
function sliceArg(ix: GraphIndex, n: NodeProto, i: number): number | undefined {
  const t = n.input?.[i];
  if (!t) return undefined;
  const v = ix.constantValues(t);
  return v?.length === 1 ? v[0] : undefined;
}

/** Ops a part may pass before its head split, each by a constant (OPT scales q right after its projection). */
const BEFORE_HEADS_OPS = ['Mul', 'Div', 'Add', 'Cast'];

/** The Reshape splitting a part into heads: reading the part, or the part scaled by a constant. */
function headReshape(ix: GraphIndex, g: Region): NodeProto | undefined {
  let t = g.part.start;
  for (let guard = 0; guard < 4; guard++) {
    const readers = ix.dataConsumers(t);
    const split = readers.find((n) => isOp(n, 'Reshape') && in0(n) === t);
    if (split || readers.length !== 1 || !isOp(readers[0], ...BEFORE_HEADS_OPS)) return split;
    const op = readers[0];
    if (op.opType !== 'Cast' && !ix.isConstant(op.input?.[in0(op) === t ? 1 : 0] ?? '')) return undefined;
    t = out0(op);
  }
  return undefined;
}

/** Output units of a linear layer. */
export function linearWidth(ix: GraphIndex, lin: LinearMatch): number | undefined {
  const dims = tensorDims(ix.constantTensor(lin.weight) ?? {});
  return lin.transposed ? dims[0] : dims[1];
}

/**
 * The head split of a projection: a Reshape to [b, s, heads, dh] whose heads and dh are
 * constants, or one of them −1 (transformers writes `view(*input_shape, -1, head_dim)`),
 * inferred from the projection's width.
 */
function headSplit(ix: GraphIndex, g: Region): { heads: number; dHead: number } | undefined {
  if (g.part.perHead) return g.part.perHead;
  const split = headReshape(ix, g);
  return split ? headsOf(ix, split, g.part.width ?? linearWidth(ix, g.lin)) : undefined;
}

/** Heads and head size of a Reshape to [b, s, heads, dh] of `width` units (one of heads and dh may be −1). */
export function headsOf(ix: GraphIndex, reshape: NodeProto, width: number | undefined): { heads: number; dHead: number } | undefined {
  const shape = ix.shapes.values(reshape.input?.[1] ?? '');
  if (!shape || shape.length !== 4) return undefined;
  let [, , heads, dHead] = shape;
  if (heads === -1 && dHead !== undefined && dHead > 0 && width !== undefined) heads = width / dHead;
  if (dHead === -1 && heads !== undefined && heads > 0 && width !== undefined) dHead = width / heads;
  if (heads === undefined || dHead === undefined || !Number.isInteger(heads) || !Number.isInteger(dHead) || heads < 1 || dHead < 1) return undefined;
  return { heads, dHead };
}

/** Rotary on the head dimension within a q or k region: its width and style, or undefined. */
/**
 * Rotary on the head dimension within a q or k region: its width and style, or undefined. Its
 * width is the head size unless the cos / sin Muls read a Slice [0, r) of the head (Llama's,
 * GPT-NeoX's partial rotary) or, interleaved (GPT-J), a Slice [0, r) is taken of a whole head.
 */
function rotaryOf(ix: GraphIndex, region: Region, dHead: number): Rotary | undefined {
  const inRegion = outputsOf(region);
  // a kv-cache Concat is not the rotary's
  const has = (op: string): boolean => region.nodes.some((n) => n.opType === op && !region.past.includes(n));
  const positional = positionalMuls(ix, region, inRegion);
  if (!has('Neg') || !has('Concat') || !positional.length) return undefined;
  const lastAxis = (n: NodeProto): boolean => {
    const axis = sliceArg(ix, n, 3);
    return axis === 3 || axis === -1;
  };
  const slices = region.nodes.filter((n) => isOp(n, 'Slice') && lastAxis(n));
  const style = slices.some((n) => sliceArg(ix, n, 4) === 2) ? 'interleaved' as const : 'half' as const;
  const readByPositional = positional.flatMap((m) => {
    const x = (m.input ?? []).find((i) => inRegion.has(i));
    const src = x ? ix.producer(x) : undefined;
    return isOp(src, 'Slice') && lastAxis(src) ? [src] : [];
  });
  const ofWholeHead = style === 'interleaved' ? slices.filter((n) => isOp(ix.producer(in0(n)), 'Reshape', 'Transpose')) : [];
  let dims = dHead;
  for (const n of [...readByPositional, ...ofWholeHead]) {
    const end = sliceArg(ix, n, 2);
    if (sliceArg(ix, n, 1) === 0 && (sliceArg(ix, n, 4) ?? 1) === 1 && end !== undefined && end > 0 && end < dHead) dims = Math.min(dims, end);
  }
  return { dims, style };
}

/** The heads of q, k and v (grouped-query attention: fewer key/value heads, repeated before the MatMuls); recorded in facts as found. */
function matchHeads(ix: GraphIndex, q: Region, k: Region, v: Region, facts: AttentionFacts): void {
  const qs = headSplit(ix, q);
  if (!qs) fail(ix, q.part.start, 'a Reshape of q into heads [b, s, h, dh] with constant head count and head size', q.lin.node);
  facts.heads = qs.heads;
  facts.dHead = qs.dHead;
  const ks = headSplit(ix, k);
  const vs = headSplit(ix, v);
  if (!ks || !vs || ks.dHead !== qs.dHead || vs.dHead !== qs.dHead || ks.heads !== vs.heads) {
    fail(ix, (ks ? v : k).part.start, `Reshapes of k and v into the same number of heads of size ${qs.dHead} [b, s, kv_heads, ${qs.dHead}]`, (ks ? v : k).lin.node);
  }
  if (ks.heads < 1 || ks.heads > qs.heads || qs.heads % ks.heads !== 0) {
    fail(ix, k.part.start, `key/value heads dividing the ${qs.heads} query heads (found ${ks.heads})`, k.lin.node);
  }
  facts.kvHeads = ks.heads;
  if (ks.heads < qs.heads) {
    for (const [name, g] of [['keys', k], ['values', v]] as const) {
      if (!g.nodes.some((n) => REPEAT_OPS.includes(n.opType ?? ''))) {
        fail(ix, g.part.start, `the ${ks.heads} ${name} heads repeated to the ${qs.heads} query heads (Expand or Tile) before the attention MatMul`, g.hits[0]!.node);
      }
    }
  }
}

/**
 * The probabilities after an sdpa export's guard Where(IsNaN(p), 0, p) (a fully masked row's
 * NaNs become 0), or `p` itself. The probs site stays the Softmax output.
 */
function nanGuarded(ix: GraphIndex, p: string): string {
  const readers = ix.dataConsumers(p);
  const isNan = readers.find((n) => isOp(n, 'IsNaN'));
  const where = readers.find((n) => isOp(n, 'Where') && n.input?.[0] === out0(isNan ?? {}) && n.input?.[2] === p && ix.isConstant(n.input?.[1] ?? ''));
  return isNan && where && readers.length === 2 && ix.dataConsumers(out0(isNan)).length === 1 ? out0(where) : p;
}

/** The per-head projection of a part: its weights, where its units start and, split per head, how far apart heads are. */
function headProjection(part: QkvPart): HeadProjection {
  return { ...weightsOf(part.lin), offset: part.offset, ...(part.perHead ? { headStride: part.perHead.stride } : {}) };
}

/** The attention from its q, k, v parts to the output projection writing attnOut (directly, or through a norm: Gemma 2). */
export function matchRegionAttention(
  ix: GraphIndex, rec: Recorder, normOut: string, parts: readonly QkvPart[], attnOut: string, facts: AttentionFacts,
): void {
  const regions = parts.map((p) => headRegion(ix, p));
  for (const g of regions) {
    if (g.hits.length !== 1) fail(ix, g.part.start, `one attention MatMul reached from each of q, k, v (found ${g.hits.length})`, g.hits[1]?.node ?? g.lin.node);
  }
  const qkRegions = regions.filter((g) => regions.some((o) => o !== g && o.hits[0]!.node === g.hits[0]!.node));
  const q = qkRegions.find((g) => g.hits[0]!.slot === 0);
  const k = qkRegions.find((g) => g.hits[0]!.slot === 1);
  const v = regions.find((g) => !qkRegions.includes(g));
  if (qkRegions.length !== 2 || !q || !k || !v || v.hits[0]!.slot !== 1) {
    fail(ix, normOut, 'q and k meeting in one MatMul q·kᵀ (inputs 0 and 1) and v as input 1 of another (probs·V)', regions[0]!.hits[0]!.node);
  }
  const qk = q.hits[0]!.node;

  matchHeads(ix, q, k, v, facts);
  const dHead = facts.dHead!;
  if (q.past.length) fail(ix, q.part.start, 'queries with no past input concatenated (only keys and values are cached)', q.past[0]);
  const pastKey = cacheInput(ix, k, 'keys');
  const pastValue = cacheInput(ix, v, 'values');
  if (!pastKey !== !pastValue) {
    fail(ix, (pastKey ? v : k).part.start, `past ${pastKey ? 'values' : 'keys'} concatenated too (a kv cache holds both, or neither)`, qk);
  }
  if (pastKey && pastValue) facts.past = { key: pastKey, value: pastValue };

  const rq = rotaryOf(ix, q, dHead);
  const rk = rotaryOf(ix, k, dHead);
  if (!rq !== !rk) {
    fail(ix, (rq ? k : q).part.start, `a rotary position embedding on ${rq ? 'the keys' : 'the queries'} too (Neg, Concat and a Mul by position-dependent sin/cos on the head dimension)`, qk);
  }
  if (rq && rk) {
    if (rq.dims !== rk.dims || rq.style !== rk.style) {
      fail(ix, k.part.start, `the same rotary embedding on q and k (q: ${rq.dims} dims ${rq.style}, k: ${rk.dims} dims ${rk.style})`, qk);
    }
    facts.rotary = rq;
    const positionIds = positionInput(ix, q);
    if (positionIds) facts.positionIds = positionIds;
    const tablePositions = positionIds ? undefined : rotaryTablePositions(ix, q);
    if (tablePositions && tablePositions === rotaryTablePositions(ix, k)) facts.rotaryPositions = tablePositions;
  }

  // q, k after any rotary (and repeat): the MatMul's inputs before dtype casts (and before the keys' transpose)
  const inRegion = (g: Region, t: string): boolean => t === g.part.start || g.nodes.some((n) => (n.output ?? []).includes(t));
  const qT = back(ix, qk.input?.[0] ?? '', CAST_OPS);
  if (!inRegion(q, qT)) fail(ix, qk.input?.[0] ?? '', 'the queries computed in the q region', qk);
  rec.found('q', qT);
  let kT = back(ix, qk.input?.[1] ?? '', CAST_OPS);
  const kTranspose = ix.producer(kT);
  if (isOp(kTranspose, 'Transpose') && perm(kTranspose) === '0,1,3,2') {
    kT = back(ix, in0(kTranspose), CAST_OPS);
    facts.kLayout = 'bhsd';
  } else {
    facts.kLayout = 'bhds';
  }
  if (!inRegion(k, kT)) fail(ix, qk.input?.[1] ?? '', 'the keys computed in the k region', qk);
  rec.found('k', kT);

  const { softmaxNode, probs } = matchSoftmax(ix, rec, out0(qk));
  facts.softmaxNode = softmaxNode;

  const pv = v.hits[0]!.node;
  const guarded = nanGuarded(ix, probs);
  const reached = forwardTo(ix, guarded, PROBS_PASS_OPS, ['MatMul'], 'the MatMul probs·V').node;
  if (reached !== pv || back(ix, in0(pv), PROBS_PASS_OPS) !== guarded) {
    fail(ix, probs, `the probabilities as input 0 of the MatMul the values reach (${nodeLabel(pv)})`, reached);
  }
  const vT = back(ix, pv.input?.[1] ?? '', CAST_OPS);
  if (!inRegion(v, vT)) fail(ix, pv.input?.[1] ?? '', 'the values computed in the v region', pv);
  rec.found('v', vT);
  const context = rec.found('context', out0(pv));

  const { proj, postNorm } = matchOutputProjection(ix, rec, context, attnOut);
  if (postNorm) facts.attnPostNorm = true;
  facts.qProj = headProjection(q.part);
  facts.kProj = headProjection(k.part);
  facts.vProj = headProjection(v.part);
  facts.attnProj = weightsOf(proj);
}

/** What the attention layers read from graph inputs, gathered over the layers: kv cache and position ids. */
export class AttentionInputs {
  readonly past: KvCacheInput[] = [];
  private positionIds?: string;
  private readonly tablePositions = new Set<string | undefined>();

  add(layer: number, facts: Pick<AttentionFacts, 'past' | 'positionIds' | 'rotaryPositions'>): void {
    if (facts.past) this.past.push({ layer, ...facts.past });
    this.positionIds ??= facts.positionIds;
    this.tablePositions.add(facts.rotaryPositions);
  }

  /** The positions every layer's rotary looks its sin/cos up by, when they all use the same tensor. */
  rotaryPositions(): string | undefined {
    return this.tablePositions.size === 1 ? [...this.tablePositions][0] : undefined;
  }

  pastNames(): Set<string> {
    return new Set(this.past.flatMap((p) => [p.key, p.value]));
  }

  /** The embedding's facts with the position ids the rotary reads (recorded as a model site), if any. */
  embedding(rec: Recorder, emb: Embedding): Embedding {
    return this.positionIds ? { ...emb, positionIds: rec.found('positionIds', this.positionIds) } : emb;
  }

  /** Names the kv-cache inputs (`holds`: what the cached heads are), for inspect. */
  note(notes: string[], holds: string): void {
    if (!this.past.length) return;
    notes.push(`kv cache (fed empty for whole prompts, the clean run's for last-position rows), concatenated before attention, ${holds}: ` +
      this.past.map((p) => `layer ${p.layer} ${p.key}, ${p.value}`).join('; '));
  }
}
