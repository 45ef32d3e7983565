// A small structural matcher shared by the architecture families. Matching follows data
// edges (producers and consumers) and op types; names are never required. When a pattern
// breaks, PatternBreak names the node where it broke and what was expected there.

import { GraphIndex, nodeLabel } from '../graph.js';
import type { NodeProto } from '../proto.js';
import { attrFloat, attrInt } from '../tensor.js';

export class PatternBreak extends Error {
  constructor(readonly at: NodeProto | undefined, readonly tensor: string, readonly expected: string) {
    super(`at ${nodeLabel(at)}${tensor ? ` reading '${tensor}'` : ''}: expected ${expected}`);
    this.name = 'PatternBreak';
  }
}

/** Where a break is reported when a tensor has no suitable consumer: its first reader, else its producer. */
function breakPoint(ix: GraphIndex, t: string): NodeProto | undefined {
  return ix.dataConsumers(t)[0] ?? ix.producer(t);
}

export function fail(ix: GraphIndex, t: string, expected: string, at?: NodeProto): never {
  throw new PatternBreak(at ?? breakPoint(ix, t), t, expected);
}

export function isOp(node: NodeProto | undefined, ...ops: string[]): node is NodeProto {
  return !!node && ops.includes(node.opType ?? '');
}

/** The one data consumer of `t` with one of `ops` (and reading `t` at `slot`, if given). */
export function soleConsumer(ix: GraphIndex, t: string, ops: readonly string[], expected: string, slot?: number): NodeProto {
  const all = ix.dataConsumers(t);
  const hits = all.filter((n) => ops.includes(n.opType ?? '') && (slot === undefined || n.input?.[slot] === t));
  if (hits.length === 1) return hits[0]!;
  if (hits.length === 0) fail(ix, t, expected);
  throw new PatternBreak(hits[1], t, `${expected} (found ${hits.length} candidates: ${hits.map(nodeLabel).join(', ')})`);
}

/** The node producing `t`, which must be a `op`. */
export function soleProducer(ix: GraphIndex, t: string, op: string, expected: string): NodeProto {
  const p = ix.producer(t);
  if (!isOp(p, op)) fail(ix, t, expected, p);
  return p;
}

export function out0(node: NodeProto): string {
  return node.output?.[0] ?? '';
}

export function in0(node: NodeProto): string {
  return node.input?.[0] ?? '';
}

/** The other input of a binary node. */
export function otherInput(node: NodeProto, t: string): string {
  const ins = node.input ?? [];
  return ins[0] === t ? ins[1] ?? '' : ins[0] ?? '';
}

// ---- layer norm ----

export interface NormMatch {
  readonly input: string;
  readonly output: string;
  readonly op: 'LayerNormalization' | 'LayerNorm (decomposed)' | 'RMSNorm (decomposed)' | 'SimplifiedLayerNormalization' | 'RMSNormalization';
  readonly nodes: ReadonlySet<NodeProto>;
  readonly scale?: string;
  /** The ε added to the variance (RMSNorm matches; absent when not a readable constant). */
  readonly epsilon?: number;
}

/**
 * A LayerNorm reading `x`: the fused op, or ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div [· γ + β].
 * Nodes in `skip` are not taken as a norm's first node (to find a second norm reading `x`).
 */
export function matchLayerNorm(ix: GraphIndex, x: string, skip: ReadonlySet<NodeProto> = new Set()): NormMatch | undefined {
  for (const c of ix.dataConsumers(x)) {
    if (c.opType === 'LayerNormalization' && in0(c) === x && !skip.has(c)) {
      return { input: x, output: out0(c), op: 'LayerNormalization', nodes: new Set([c]), ...(c.input?.[1] ? { scale: c.input[1] } : {}) };
    }
  }
  for (const mean of ix.dataConsumers(x).filter((n) => n.opType === 'ReduceMean' && in0(n) === x && !skip.has(n))) {
    const m = out0(mean);
    const sub = ix.dataConsumers(x).find((n) => n.opType === 'Sub' && n.input?.[0] === x && n.input?.[1] === m);
    if (!sub) continue;
    const d = out0(sub);
    // d / √(var + ε), or d · 1/√(var + ε) (Cohere's rsqrt)
    const div = ix.dataConsumers(d).find((n) => (n.opType === 'Div' && in0(n) === d)
      || (n.opType === 'Mul' && !ix.isConstant(otherInput(n, d)) && otherInput(n, d) !== d));
    if (!div) continue;
    const nodes = new Set<NodeProto>([mean, sub, div]);
    // the variance branch: everything between d and the divisor (it must read d: a variance)
    const stack = [otherInput(div, d)];
    let readsD = false;
    for (let guard = 0; stack.length && guard < 16; guard++) {
      const p = ix.producer(stack.pop()!);
      if (!p || nodes.has(p)) continue;
      nodes.add(p);
      for (const i of p.input ?? []) {
        if (i === d) readsD = true;
        else if (i && !ix.isConstant(i)) stack.push(i);
      }
    }
    if (!readsD) continue;
    let y = out0(div);
    let scale: string | undefined;
    const mul = ix.dataConsumers(y).length === 1 ? ix.dataConsumers(y)[0] : undefined;
    if (isOp(mul, 'Mul') && ix.isConstant(otherInput(mul, y))) {
      nodes.add(mul);
      scale = otherInput(mul, y);
      y = out0(mul);
    }
    const add = ix.dataConsumers(y).length === 1 ? ix.dataConsumers(y)[0] : undefined;
    if (isOp(add, 'Add') && ix.isConstant(otherInput(add, y))) {
      nodes.add(add);
      y = out0(add);
    }
    return { input: x, output: y, op: 'LayerNorm (decomposed)', nodes, ...(scale ? { scale } : {}) };
  }
  return undefined;
}

// ---- RMS norm ----

const FUSED_RMS_NORMS = ['SimplifiedLayerNormalization', 'RMSNormalization'] as const;

/** The single data consumer of `t` if it has one of `ops`. */
function onlyConsumer(ix: GraphIndex, t: string, ...ops: string[]): NodeProto | undefined {
  const c = ix.dataConsumers(t);
  return c.length === 1 && isOp(c[0], ...ops) ? c[0] : undefined;
}

/**
 * An RMSNorm reading `x` (Llama): the fused op (SimplifiedLayerNormalization, RMSNormalization),
 * or [Cast →] x² (Pow 2 or Mul x·x) → ReduceMean → Add ε → Sqrt → Div(1, ·) | Reciprocal → Mul x
 * (or Div(x, Sqrt)) [→ Cast] [· γ]. No mean is subtracted: a LayerNorm never matches.
 */
export function matchRmsNorm(ix: GraphIndex, x: string, skip: ReadonlySet<NodeProto> = new Set()): NormMatch | undefined {
  for (const c of ix.dataConsumers(x)) {
    if (isOp(c, ...FUSED_RMS_NORMS) && in0(c) === x && !skip.has(c)) {
      const eps = attrFloat(c, 'epsilon', 1e-5);
      return {
        input: x, output: out0(c), op: c.opType as 'SimplifiedLayerNormalization' | 'RMSNormalization', nodes: new Set([c]),
        ...(c.input?.[1] ? { scale: c.input[1] } : {}), ...(eps !== undefined ? { epsilon: eps } : {}),
      };
    }
  }
  // the normalised tensor may be an upcast of x (fp16 models compute the norm in float32)
  const starts: { xs: string; cast?: NodeProto }[] = [{ xs: x }];
  for (const c of ix.dataConsumers(x)) if (isOp(c, 'Cast') && in0(c) === x && !skip.has(c)) starts.push({ xs: out0(c), cast: c });
  for (const { xs, cast } of starts) {
    for (const sq of ix.dataConsumers(xs).filter((n) => !skip.has(n))) {
      const square = (isOp(sq, 'Pow') && in0(sq) === xs && ix.constantValues(sq.input?.[1] ?? '')?.[0] === 2)
        || (isOp(sq, 'Mul') && sq.input?.[0] === xs && sq.input?.[1] === xs);
      if (!square) continue;
      const mean = onlyConsumer(ix, out0(sq), 'ReduceMean');
      if (!mean || attrInt(mean, 'keepdims', 1) !== 1) continue;
      const add = onlyConsumer(ix, out0(mean), 'Add');
      if (!add || !ix.isConstant(otherInput(add, out0(mean)))) continue;
      const sqrt = onlyConsumer(ix, out0(add), 'Sqrt');
      if (!sqrt) continue;
      const s = out0(sqrt);
      const nodes = new Set<NodeProto>([sq, mean, add, sqrt]);
      if (cast) nodes.add(cast);
      let y: string | undefined;
      const after = onlyConsumer(ix, s, 'Div', 'Reciprocal');
      if (isOp(after, 'Div') && after.input?.[0] === xs && after.input?.[1] === s) {
        nodes.add(after);
        y = out0(after);
      } else if (after && (after.opType === 'Reciprocal' || (after.input?.[1] === s && ix.constantValues(in0(after))?.[0] === 1))) {
        const mul = onlyConsumer(ix, out0(after), 'Mul');
        if (mul && otherInput(mul, out0(after)) === xs) {
          nodes.add(after).add(mul);
          y = out0(mul);
        }
      }
      if (!y) continue;
      const back = onlyConsumer(ix, y, 'Cast');
      if (back) {
        nodes.add(back);
        y = out0(back);
      }
      let scale: string | undefined;
      const mul = onlyConsumer(ix, y, 'Mul');
      if (mul && ix.isConstant(otherInput(mul, y))) {
        nodes.add(mul);
        scale = otherInput(mul, y);
        y = out0(mul);
      }
      const eps = ix.constantValues(otherInput(add, out0(mean)));
      return {
        input: x, output: y, op: 'RMSNorm (decomposed)', nodes,
        ...(scale ? { scale } : {}), ...(eps?.length === 1 ? { epsilon: eps[0] } : {}),
      };
    }
  }
  return undefined;
}

/** A LayerNorm or an RMSNorm reading `x`. */
export function matchNorm(ix: GraphIndex, x: string, skip: ReadonlySet<NodeProto> = new Set()): NormMatch | undefined {
  return matchLayerNorm(ix, x, skip) ?? matchRmsNorm(ix, x, skip);
}

/** Every norm reading `x` (GPT-NeoX's parallel block reads the residual stream with two). */
export function normsReading(ix: GraphIndex, x: string): NormMatch[] {
  const norms: NormMatch[] = [];
  const skip = new Set<NodeProto>();
  for (let n = matchNorm(ix, x); n; n = matchNorm(ix, x, skip)) {
    norms.push(n);
    for (const node of n.nodes) skip.add(node);
  }
  return norms;
}

// ---- linear layers ----

export interface LinearMatch {
  readonly input: string;
  readonly output: string;
  readonly weight: string;
  readonly bias?: string;
  readonly op: 'Gemm' | 'MatMul';
  readonly node: NodeProto;
  /** Gemm transB, or a MatMul reading the weight through a Transpose: the weight is [out, in]. */
  readonly transposed: boolean;
}

/** The [out, in] weight a MatMul reads through a Transpose (canonical.ts writes one for a Gemm it unflattens). */
function transposedWeight(ix: GraphIndex, c: NodeProto): string | undefined {
  const t = ix.producer(c.input?.[1] ?? '');
  return c.opType === 'MatMul' && isOp(t, 'Transpose') && ix.isConstant(in0(t)) ? in0(t) : undefined;
}

/** [Reshape →] Gemm(x, W, b) | MatMul(x, W) [+ b] [→ Reshape] with constant W (and b). */
export function matchLinear(ix: GraphIndex, x: string, what: string): LinearMatch {
  let t = x;
  let reshaped = false;
  let c = soleConsumer(ix, t, ['Reshape', 'Gemm', 'MatMul'], `${what}: a linear layer (Gemm or MatMul with a constant weight)`);
  if (c.opType === 'Reshape') {
    reshaped = true;
    t = out0(c);
    c = soleConsumer(ix, t, ['Gemm', 'MatMul'], `${what}: Gemm or MatMul after the Reshape`);
  }
  return linearFrom(ix, x, t, c, reshaped, what);
}

/** The linear layer `c` reading `t` (= x, or x reshaped to 2-D when `reshaped`). */
export function linearFrom(ix: GraphIndex, x: string, t: string, c: NodeProto, reshaped: boolean, what: string): LinearMatch {
  if (in0(c) !== t) fail(ix, t, `${what}: the activations as the first input of the ${c.opType}`, c);
  const viaTranspose = transposedWeight(ix, c);
  const weight = viaTranspose ?? c.input?.[1] ?? '';
  if (!ix.isConstant(weight)) fail(ix, t, `${what}: a constant weight as the second input of the ${c.opType}`, c);
  let bias: string | undefined;
  let y = out0(c);
  const op = c.opType === 'Gemm' ? 'Gemm' : 'MatMul';
  const transposed = (op === 'Gemm' && attrInt(c, 'transB', 0) === 1) || viaTranspose !== undefined;
  if (op === 'Gemm') {
    if (attrInt(c, 'transA', 0) === 1) fail(ix, t, `${what}: a Gemm without transA`, c);
    if (c.input?.[2]) bias = c.input[2];
  } else {
    const next = ix.dataConsumers(y);
    if (next.length === 1 && isOp(next[0], 'Add') && ix.isConstant(otherInput(next[0], y))) {
      bias = otherInput(next[0], y);
      y = out0(next[0]);
    }
  }
  if (reshaped) {
    const next = ix.dataConsumers(y);
    if (next.length === 1 && isOp(next[0], 'Reshape') && in0(next[0]) === y) y = out0(next[0]);
  }
  return { input: x, output: y, weight, ...(bias ? { bias } : {}), op, node: c, transposed };
}

/** Every linear layer reading `x` (directly, or through a Reshape to 2-D): one LayerNorm feeding several layers. */
export function linearConsumers(ix: GraphIndex, x: string, what: string): LinearMatch[] {
  const out: LinearMatch[] = [];
  const isLinear = (n: NodeProto, t: string): boolean => isOp(n, 'Gemm', 'MatMul') && in0(n) === t
    && (ix.isConstant(n.input?.[1] ?? '') || transposedWeight(ix, n) !== undefined);
  for (const c of ix.dataConsumers(x)) {
    if (isLinear(c, x)) out.push(linearFrom(ix, x, x, c, false, what));
    else if (isOp(c, 'Reshape') && in0(c) === x) {
      for (const g of ix.dataConsumers(out0(c))) if (isLinear(g, out0(c))) out.push(linearFrom(ix, x, out0(c), g, true, what));
    }
  }
  return out;
}

// ---- activations ----

const ACTIVATION_OPS = new Set(['Mul', 'Add', 'Pow', 'Tanh', 'Div', 'Erf', 'Sigmoid', 'Sqrt', 'Cast', 'Gelu', 'FastGelu', 'Relu', 'BiasGelu', 'QuickGelu']);

export interface ActivationMatch {
  readonly input: string;
  readonly output: string;
  /** gelu_tanh (gelu_new), gelu_erf, gelu, silu, relu, or 'elementwise' when unrecognised. */
  readonly kind: string;
  readonly nodes: readonly NodeProto[];
}

/**
 * An elementwise activation reading `x`: the largest region of elementwise nodes whose
 * non-constant inputs all come from `x` or the region, with exactly one result read outside.
 */
export function matchActivation(ix: GraphIndex, x: string, what: string): ActivationMatch {
  const region = new Set<string>([x]);
  const nodes: NodeProto[] = [];
  for (let changed = true; changed;) {
    changed = false;
    for (const t of [...region]) {
      for (const n of ix.dataConsumers(t)) {
        if (nodes.includes(n) || !ACTIVATION_OPS.has(n.opType ?? '')) continue;
        const ok = (n.input ?? []).every((i) => !i || region.has(i) || ix.isConstant(i));
        if (!ok) continue;
        nodes.push(n);
        for (const o of n.output ?? []) region.add(o);
        changed = true;
      }
    }
  }
  if (!nodes.length) fail(ix, x, `${what}: an activation function (gelu) on the MLP pre-activations`);
  const leaving = [...region].filter((t) => ix.dataConsumers(t).some((n) => !nodes.includes(n)) || ix.outputs.has(t));
  if (leaving.length !== 1 || leaving[0] === x) {
    const at = ix.dataConsumers(x).find((n) => !nodes.includes(n));
    fail(ix, x, `${what}: one activation output leaving the elementwise region (found ${leaving.length}: ${leaving.join(', ')})`, at);
  }
  const ops = new Set(nodes.map((n) => n.opType));
  const kind = ops.has('FastGelu') || ops.has('Tanh') ? 'gelu_tanh'
    : ops.has('Erf') ? 'gelu_erf'
    : ops.has('Gelu') || ops.has('BiasGelu') ? 'gelu'
    : ops.has('Sigmoid') ? 'silu'
    : ops.has('QuickGelu') ? 'quick_gelu'
    : ops.has('Relu') ? 'relu' : 'elementwise';
  return { input: x, output: leaving[0]!, kind, nodes };
}

/**
 * Walks forward from `t` through nodes with one of `pass` ops (each step: the unique data
 * consumer among pass and target ops) until a node with one of `target` ops.
 */
export function forwardTo(ix: GraphIndex, t: string, pass: readonly string[], target: readonly string[], expected: string): { node: NodeProto; via: NodeProto[] } {
  const via: NodeProto[] = [];
  let cur = t;
  for (let guard = 0; guard < 64; guard++) {
    const cands = ix.dataConsumers(cur);
    const targets = cands.filter((n) => target.includes(n.opType ?? ''));
    if (targets.length === 1) return { node: targets[0]!, via };
    const passes = cands.filter((n) => pass.includes(n.opType ?? ''));
    if (targets.length > 1 || passes.length !== 1) fail(ix, cur, expected, targets[1] ?? cands.find((n) => !pass.includes(n.opType ?? '')));
    via.push(passes[0]!);
    cur = out0(passes[0]!);
  }
  return fail(ix, cur, expected);
}

export interface BackTrace {
  /** The tensor where the walk stopped (output of a node not in `pass`, or a graph input). */
  readonly origin: string;
  readonly via: readonly NodeProto[];
}

/**
 * Walks backward from `t` through single-data-input ops in `pass`; at a Concat, follows the
 * input that is not a graph input (a kv-cache concatenation with the past).
 */
export function backThrough(ix: GraphIndex, t: string, pass: readonly string[]): BackTrace {
  const via: NodeProto[] = [];
  let cur = t;
  for (let guard = 0; guard < 64; guard++) {
    const p = ix.producer(cur);
    if (!p || !pass.includes(p.opType ?? '')) break;
    via.push(p);
    if (p.opType === 'Concat') {
      const live = (p.input ?? []).filter((i) => i && !ix.isGraphInput(i) && !ix.isConstant(i));
      if (live.length !== 1) break;
      cur = live[0]!;
    } else {
      cur = in0(p);
    }
  }
  return { origin: cur, via };
}
