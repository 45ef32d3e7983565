// One gradient rule per op, all in this table: given the gradients of a node's outputs (undefined
// where an output does not reach y), a rule emits the nodes computing the gradients of the
// inputs that need one (GradientEmitter.needs) and returns them by input position. Rules read
// the forward node's own tensors (its inputs and outputs), so no forward value is recomputed
// that the graph already holds. Keys are op types; ops of another domain are `domain:op`.

import { DataType } from '../proto.js';
import { attrFloat, attrInt, attrInts, floatAttr, getAttr, intAttr, intsAttr } from '../tensor.js';
import type { GradientEmitter } from './emitter.js';

type Gradients = readonly (string | undefined)[];
export type GradientRule = (e: GradientEmitter, g: Gradients) => Gradients;

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);
const GELU_TANH_CUBIC = 0.044715;
const I64 = DataType.INT64;

/** Gradients for the inputs that need one: `make(i)` is only called for those. */
function forInputs(e: GradientEmitter, count: number, make: (i: number) => string): Gradients {
  return Array.from({ length: count }, (_, i) => (e.needs(i) ? make(i) : undefined));
}

/** The single output's gradient (every rule but Split's differentiates one output). */
function only(e: GradientEmitter, g: Gradients): string {
  if (g.slice(1).some(Boolean)) e.unsupported('only its first output is differentiated, and another one reaches y');
  return g[0]!;
}

/** An elementwise op of one input: dx = g · f'(x), with f' built from the node's input x and output y. */
function elementwise(derivative: (e: GradientEmitter, x: string, y: string) => string): GradientRule {
  return (e, g) => [e.mul(only(e, g), derivative(e, e.in(0), e.out(0)))];
}

/**
 * d/da a^b = b · a^(b−1). A constant scalar b (a norm's square, a gelu's cube) is folded: b · a for
 * b = 2 and a Pow by the constant b − 1 otherwise, since onnxruntime's Pow by an exponent computed
 * at run time takes its slow general path (on the default model the backward's Pows cost more than
 * all its other elementwise ops).
 */
function powerDerivative(e: GradientEmitter, a: string, b: string): string {
  const constant = e.forward.constantValues(b);
  if (constant?.length === 1) {
    const p = constant[0]!;
    return e.mul(e.scalar(p, a), p === 2 ? a : e.op('Pow', [a, e.scalar(p - 1, a)]));
  }
  const exponent = e.op('Cast', [b], [intAttr('to', e.rw.dtype(a))], e.rw.dtype(a));
  return e.mul(exponent, e.op('Pow', [a, e.sub(exponent, e.scalar(1, a))]));
}

/** Passes the gradient through a reshape of the same elements. */
const reshapeBack: GradientRule = (e, g) => [e.op('Reshape', [only(e, g), e.shape(e.in(0))])];

/** The axes an op reduces, from its `axes` attribute or its second input; undefined = all axes. */
function reducedAxes(e: GradientEmitter): number[] | undefined {
  const fromAttr = attrInts(e.node, 'axes');
  if (fromAttr) return fromAttr;
  if (!e.in(1)) return undefined;
  const fromInput = e.forward.constantValues(e.in(1));
  if (!fromInput) e.unsupported('its axes are computed at run time');
  return fromInput;
}

/** ReduceSum / ReduceMean: the gradient spread back over the reduced axes (divided by their size for a mean). */
function reduceBack(mean: boolean): GradientRule {
  return (e, g) => {
    const x = e.in(0);
    const axes = reducedAxes(e);
    if (axes?.length === 0 && attrInt(e.node, 'noop_with_empty_axes', 0) === 1) return [only(e, g)];
    let kept = only(e, g);
    if (attrInt(e.node, 'keepdims', 1) === 0) {
      const rank = e.rank(x);
      const all = axes?.length ? axes.map((a) => e.axis(a, () => rank)) : [...Array(rank).keys()];
      kept = e.op('Unsqueeze', [kept, e.ints([...all].sort((a, b) => a - b))]);
    }
    const spread = e.op('Expand', [kept, e.shape(x)]);
    if (!mean) return [spread];
    const count = (t: string): string => e.op('Cast', [e.op('Size', [t], undefined, I64)], [intAttr('to', e.rw.dtype(x))], e.rw.dtype(x));
    return [e.div(e.mul(spread, count(e.out(0))), count(x))];
  };
}

/** Σ over `axis` with keepdims, the shared step of Softmax's and the norms' gradients. */
function sumOver(e: GradientEmitter, t: string, axes: readonly number[]): string {
  return e.reduce('ReduceSum', t, axes, true);
}

function meanOver(e: GradientEmitter, t: string, axes: readonly number[]): string {
  return e.reduce('ReduceMean', t, axes, true);
}

/** The normalised axes of LayerNormalization and its RMS form: `axis` to the last. */
function normAxes(e: GradientEmitter): number[] {
  const axis = attrInt(e.node, 'axis', -1)!;
  if (axis < 0) return Array.from({ length: -axis }, (_, k) => axis + k);
  const rank = e.rank(e.in(0));
  return Array.from({ length: rank - axis }, (_, k) => axis + k);
}

/**
 * LayerNormalization (centred) and SimplifiedLayerNormalization (RMS): with x̂ the normalised
 * input, r = 1/√(var + ε) and gs = g · scale, dx = r · (gs − mean(gs) − x̂ · mean(gs · x̂)),
 * the mean(gs) term only when the norm centres. The statistics are recomputed from x.
 */
function normBack(centred: boolean): GradientRule {
  return (e, g) => {
    if ([1, 2].some((i) => e.needs(i))) e.unsupported('its scale or bias depends on the differentiated tensors');
    const axes = normAxes(e);
    const x = e.in(0);
    const centredX = centred ? e.sub(x, meanOver(e, x, axes)) : x;
    const variance = meanOver(e, e.mul(centredX, centredX), axes);
    const epsilon = attrFloat(e.node, 'epsilon', 1e-5)!;
    const r = e.op('Reciprocal', [e.op('Sqrt', [e.add(variance, e.scalar(epsilon, x))])]);
    const normalised = e.mul(centredX, r);
    const gs = e.mul(only(e, g), e.in(1));
    const projected = e.mul(normalised, meanOver(e, e.mul(gs, normalised), axes));
    const inner = centred ? e.sub(e.sub(gs, meanOver(e, gs, axes)), projected) : e.sub(gs, projected);
    return [e.mul(r, inner)];
  };
}

/** The standard normal density times x, for the exact GELU: x · exp(−x²/2) / √(2π). */
function geluErfDerivative(e: GradientEmitter, x: string): string {
  const cdf = e.mul(e.scalar(0.5, x), e.add(e.scalar(1, x), e.op('Erf', [e.mul(x, e.scalar(Math.SQRT1_2, x))])));
  const density = e.mul(e.op('Exp', [e.mul(e.mul(x, x), e.scalar(-0.5, x))]), e.scalar(1 / Math.sqrt(2 * Math.PI), x));
  return e.add(cdf, e.mul(x, density));
}

/** GELU's tanh approximation 0.5x(1 + tanh(u)), u = √(2/π)(x + 0.044715x³): 0.5(1 + t) + 0.5x(1 − t²)u'. */
function geluTanhDerivative(e: GradientEmitter, x: string): string {
  const x2 = e.mul(x, x);
  const u = e.mul(e.scalar(SQRT_2_OVER_PI, x), e.add(x, e.mul(e.scalar(GELU_TANH_CUBIC, x), e.mul(x2, x))));
  const t = e.op('Tanh', [u]);
  const du = e.mul(e.scalar(SQRT_2_OVER_PI, x), e.add(e.scalar(1, x), e.mul(e.scalar(3 * GELU_TANH_CUBIC, x), x2)));
  const half = e.scalar(0.5, x);
  return e.add(e.mul(half, e.add(e.scalar(1, x), t)), e.mul(e.mul(half, x), e.mul(e.sub(e.scalar(1, x), e.mul(t, t)), du)));
}

function stringAttr(e: GradientEmitter, name: string, dflt: string): string {
  const s = getAttr(e.node, name)?.s;
  return s ? new TextDecoder().decode(s) : dflt;
}

/** The permutation swapping the last two axes of a rank-r tensor. */
function swapLast(rank: number): number[] {
  const perm = [...Array(rank).keys()];
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1]!, perm[rank - 2]!];
  return perm;
}

export const GRADIENT_RULES: Readonly<Record<string, GradientRule>> = {
  Identity: (e, g) => [only(e, g)],
  Dropout: (e, g) => [only(e, g)],
  Cast: (e, g) => [e.op('Cast', [only(e, g)], [intAttr('to', e.rw.dtype(e.in(0)))], e.rw.dtype(e.in(0)))],

  Add: (e, g) => forInputs(e, 2, (i) => e.sumTo(only(e, g), i)),
  Sub: (e, g) => forInputs(e, 2, (i) => e.sumTo(i === 0 ? only(e, g) : e.neg(only(e, g)), i)),
  Mul: (e, g) => forInputs(e, 2, (i) => e.sumTo(e.mul(only(e, g), e.in(1 - i)), i)),
  Div: (e, g) => forInputs(e, 2, (i) => e.sumTo(i === 0 ? e.div(only(e, g), e.in(1)) : e.neg(e.div(e.mul(only(e, g), e.out(0)), e.in(1))), i)),
  Neg: (e, g) => [e.neg(only(e, g))],
  // d(a^b)/da = b · a^(b−1); d(a^b)/db = a^b · ln a (b may be of another type than a)
  Pow: (e, g) => forInputs(e, 2, (i) => {
    const [a, b] = [e.in(0), e.in(1)];
    const castTo = (t: string, like: string): string => e.op('Cast', [t], [intAttr('to', e.rw.dtype(like))], e.rw.dtype(like));
    const local = i === 0 ? powerDerivative(e, a, b) : castTo(e.mul(e.out(0), e.op('Log', [a])), b);
    return e.sumTo(e.mul(only(e, g), local), i);
  }),
  Where: (e, g) => forInputs(e, 3, (i) => {
    const zeros = e.scalar(0, only(e, g));
    const branches = i === 1 ? [only(e, g), zeros] : [zeros, only(e, g)];
    return e.sumTo(e.op('Where', [e.in(0), ...branches], undefined, e.rw.dtype(only(e, g))), i);
  }),

  Relu: (e, g) => {
    const dy = only(e, g);
    const positive = e.op('Greater', [e.in(0), e.scalar(0, e.in(0))], undefined, DataType.BOOL);
    return [e.op('Where', [positive, dy, e.scalar(0, dy)], undefined, e.rw.dtype(dy))];
  },
  Sqrt: elementwise((e, _x, y) => e.div(e.scalar(0.5, y), y)),
  Reciprocal: elementwise((e, _x, y) => e.neg(e.mul(y, y))),
  Exp: elementwise((_e, _x, y) => y),
  Log: elementwise((e, x) => e.op('Reciprocal', [x])),
  Tanh: elementwise((e, _x, y) => e.sub(e.scalar(1, y), e.mul(y, y))),
  Sigmoid: elementwise((e, _x, y) => e.mul(y, e.sub(e.scalar(1, y), y))),
  Erf: elementwise((e, x) => e.mul(e.scalar(TWO_OVER_SQRT_PI, x), e.op('Exp', [e.neg(e.mul(x, x))]))),
  Gelu: elementwise((e, x) => (stringAttr(e, 'approximate', 'none') === 'tanh' ? geluTanhDerivative(e, x) : geluErfDerivative(e, x))),
  'com.microsoft:Gelu': elementwise((e, x) => geluErfDerivative(e, x)),
  'com.microsoft:FastGelu': (e, g) => {
    if (e.in(1)) e.unsupported('the bias input is folded in (site detection expands it out)');
    return [e.mul(only(e, g), geluTanhDerivative(e, e.in(0)))];
  },
  // x · σ(αx): σ(αx) + αx · σ(αx)(1 − σ(αx))
  'com.microsoft:QuickGelu': elementwise((e, x) => {
    const ax = e.mul(x, e.scalar(attrFloat(e.node, 'alpha', 1.702)!, x));
    const s = e.op('Sigmoid', [ax]);
    return e.add(s, e.mul(ax, e.mul(s, e.sub(e.scalar(1, x), s))));
  }),

  // y ⊙ (g − Σ_axis g ⊙ y)
  Softmax: (e, g) => {
    const [y, dy] = [e.out(0), only(e, g)];
    return [e.mul(y, e.sub(dy, sumOver(e, e.mul(dy, y), [attrInt(e.node, 'axis', -1)!])))];
  },
  // g − softmax(x) · Σ_axis g
  LogSoftmax: (e, g) => {
    const dy = only(e, g);
    return [e.sub(dy, e.mul(e.op('Exp', [e.out(0)]), sumOver(e, dy, [attrInt(e.node, 'axis', -1)!])))];
  },
  LayerNormalization: normBack(true),
  SimplifiedLayerNormalization: normBack(false),
  ReduceMean: reduceBack(true),
  ReduceSum: reduceBack(false),

  MatMul: (e, g) => forInputs(e, 2, (i) => {
    const [a, b] = [e.in(0), e.in(1)];
    const [rankA, rankB] = [e.rank(a), e.rank(b)];
    if (rankA < 2 || rankB < 2) e.unsupported('a 1-D operand (a vector product) is not differentiated');
    const dy = only(e, g);
    const product = i === 0
      ? e.op('MatMul', [dy, e.op('Transpose', [b], [intsAttr('perm', swapLast(rankB))])])
      : e.op('MatMul', [e.op('Transpose', [a], [intsAttr('perm', swapLast(rankA))]), dy]);
    return e.sumTo(product, i, { matrixAxes: 2 });
  }),
  // y = α·op(A)·op(B) + β·C, op = transpose where transA / transB
  Gemm: (e, g) => {
    const dy = only(e, g);
    const [transA, transB] = [attrInt(e.node, 'transA', 0)!, attrInt(e.node, 'transB', 0)!];
    const [alpha, beta] = [attrFloat(e.node, 'alpha', 1)!, attrFloat(e.node, 'beta', 1)!];
    const gemm = (x: string, y: string, tx: number, ty: number): string =>
      e.op('Gemm', [x, y], [intAttr('transA', tx), intAttr('transB', ty), floatAttr('alpha', alpha)]);
    return forInputs(e, 3, (i) => {
      if (i === 0) return transA ? gemm(e.in(1), dy, transB, 1) : gemm(dy, e.in(1), 0, 1 - transB);
      if (i === 1) return transB ? gemm(dy, e.in(0), 1, transA) : gemm(e.in(0), dy, 1 - transA, 0);
      return e.sumTo(beta === 1 ? dy : e.mul(dy, e.scalar(beta, dy)), 2, { outRank: 2 });
    });
  },

  Reshape: reshapeBack,
  Flatten: reshapeBack,
  Squeeze: reshapeBack,
  Unsqueeze: reshapeBack,
  Expand: (e, g) => [e.sumTo(only(e, g), 0)],
  Transpose: (e, g) => {
    const perm = attrInts(e.node, 'perm');
    if (!perm) return [e.op('Transpose', [only(e, g)])];
    const inverse = new Array<number>(perm.length);
    perm.forEach((p, k) => { inverse[p] = k; });
    return [e.op('Transpose', [only(e, g)], [intsAttr('perm', inverse)])];
  },
  // the pieces of the gradient, cut where the inputs were joined
  Concat: (e, g) => {
    const axis = attrInt(e.node, 'axis', 0)!;
    const inputs = e.node.input ?? [];
    const sizes = e.op('Concat', inputs.map((t) => e.op('Gather', [e.shape(t), e.ints([axis])], [intAttr('axis', 0)], I64)), [intAttr('axis', 0)], I64);
    const pieces = e.ops('Split', [only(e, g), sizes], inputs.length, [intAttr('axis', axis)]);
    return forInputs(e, inputs.length, (i) => pieces[i]!);
  },
  // the outputs' gradients joined, zeros for outputs that do not reach y
  Split: (e, g) => {
    const outputs = e.node.output ?? [];
    const parts = outputs.map((o, k) => g[k] ?? e.zerosLike(o));
    return [e.op('Concat', parts, [intAttr('axis', attrInt(e.node, 'axis', 0)!)])];
  },
  Slice: (e, g) => [e.scatterInto(e.in(0), (ix) => e.op('Slice', [ix, ...(e.node.input ?? []).slice(1)], undefined, I64), only(e, g), false)],
  Gather: (e, g) => {
    const indices = e.forward.constantValues(e.in(1));
    const repeats = !indices || new Set(indices).size !== indices.length;
    return [e.scatterInto(e.in(0), (ix) => e.op('Gather', [ix, e.in(1)], [intAttr('axis', attrInt(e.node, 'axis', 0)!)], I64), only(e, g), repeats)];
  },
  GatherElements: (e, g) => [e.scatterInto(e.in(0),
    (ix) => e.op('GatherElements', [ix, e.in(1)], [intAttr('axis', attrInt(e.node, 'axis', 0)!)], I64), only(e, g), true)],
};

/** The rule's key for a node: its op type, prefixed by its domain outside the default one. */
export function ruleKey(opType: string, domain: string | undefined): string {
  return domain && domain !== 'ai.onnx' ? `${domain}:${opType}` : opType;
}
