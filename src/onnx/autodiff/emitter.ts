// What a gradient rule builds its backward nodes with: the forward node's tensors, new nodes
// typed as the tensors they differentiate, and the shape plumbing several rules share —
// summing a broadcast gradient back to its operand's shape, scattering a gradient into the
// positions a Slice or Gather picked, zeros of a tensor's shape.

import { UserError } from '../../errors.js';
import { nodeLabel, type GraphIndex } from '../graph.js';
import { AttributeType, DataType, type AttributeProto, type NodeProto } from '../proto.js';
import type { Rewrite } from '../rewrite.js';
import { intAttr, makeTensor, tensorAttr } from '../tensor.js';

const I64 = DataType.INT64;

/** Ops whose inputs broadcast against each other (numpy rules; MatMul: all but the matrix axes): which inputs take part. */
const BROADCAST_INPUTS: Readonly<Record<string, readonly number[]>> = {
  Add: [0, 1], Sub: [0, 1], Mul: [0, 1], Div: [0, 1], Pow: [0, 1], Where: [0, 1, 2], MatMul: [0, 1],
};

export class GradientEmitter {
  private count = 0;

  /**
   * `forward`: the index of the graph before any backward node (constants and fixed shapes are
   * read there). `shapes`: Shape(t) per tensor, shared by the emitters of one backward pass.
   */
  constructor(readonly rw: Rewrite, readonly forward: GraphIndex, private readonly ranks: ReadonlyMap<string, number>, readonly node: NodeProto,
    private readonly base: string, private readonly active: ReadonlySet<string>, private readonly shapes: Map<string, string>) {}

  /** The dims of a forward tensor: as a pass recorded them for its new tensors, else as the graph fixes them. */
  dims(t: string): (number | undefined)[] | undefined {
    return this.rw.recordedDims(t) ?? this.forward.shapes.dims(t);
  }

  in(i: number): string {
    return this.node.input?.[i] ?? '';
  }

  out(i: number): string {
    return this.node.output?.[i] ?? '';
  }

  /** Whether forward input i carries a gradient (depends on the differentiated tensors). */
  needs(i: number): boolean {
    const t = this.in(i);
    return !!t && this.active.has(t);
  }

  /** A clear error for a case of the op that the rule does not differentiate. */
  unsupported(why: string): never {
    throw new UserError(`gradient attribution: cannot differentiate ${nodeLabel(this.node)}: ${why}`,
      'gradients are computed in the graph for the ops of transformer exports; report the model and the node');
  }

  /** A new node of one output, typed as `type` (default: as its first input). */
  op(op: string, inputs: readonly string[], attrs?: AttributeProto[], type?: number): string {
    return this.rw.op(op, inputs, `${this.base}/${this.count++}`, type ?? this.rw.dtype(inputs[0]!), undefined, attrs);
  }

  /** A new node of `count` outputs, all typed as its first input. */
  ops(op: string, inputs: readonly string[], count: number, attrs?: AttributeProto[]): string[] {
    const type = this.rw.dtype(inputs[0]!);
    return this.rw.node(op, inputs, `${this.base}/${this.count++}`, { outputs: count, types: new Array<number>(count).fill(type), ...(attrs ? { attrs } : {}) });
  }

  add(a: string, b: string): string { return this.op('Add', [a, b]); }
  sub(a: string, b: string): string { return this.op('Sub', [a, b]); }
  mul(a: string, b: string): string { return this.op('Mul', [a, b]); }
  div(a: string, b: string): string { return this.op('Div', [a, b]); }
  neg(a: string): string { return this.op('Neg', [a]); }

  /** A scalar constant of `like`'s element type. */
  scalar(value: number, like: string): string {
    return this.rw.constant(`${this.base}/c`, this.rw.dtype(like), [], [value]);
  }

  ints(values: readonly number[]): string {
    return this.rw.ints(`${this.base}/ints`, values);
  }

  /** A reduction over constant axes (Rewrite.reduce), typed as its input. */
  reduce(op: string, t: string, axes: readonly number[], keepdims: boolean): string {
    return this.rw.reduce(op, t, axes, `${this.base}/${this.count++}`, keepdims, this.rw.dtype(t));
  }

  /** Shape(t), one node per tensor in a backward pass. */
  shape(t: string): string {
    let s = this.shapes.get(t);
    if (!s) this.shapes.set(t, (s = this.op('Shape', [t], undefined, I64)));
    return s;
  }

  /** The rank of `t` as the graph fixes it, or a clear error. */
  rank(t: string): number {
    const rank = this.rw.recordedDims(t)?.length ?? this.ranks.get(t);
    if (rank === undefined) this.unsupported(`the rank of '${t}' is not fixed by the graph`);
    return rank;
  }

  /** A negative axis made non-negative for a tensor of `rank` dimensions. */
  axis(axis: number, rank: () => number): number {
    return axis < 0 ? axis + rank() : axis;
  }

  zerosLike(t: string): string {
    return filledLike(this.rw, t, 0, `${this.base}/${this.count++}`);
  }

  /**
   * The gradient `g` of this node's output summed over the axes along which input `i` was
   * broadcast, so it has input i's shape. Skipped where the graph's fixed dimensions prove input
   * i already has the output's shape; otherwise the broadcast axes are found at run time.
   * `matrixAxes`: trailing axes that do not broadcast (2 for MatMul's operands); `outRank`: the
   * output's rank where the op fixes it (Gemm).
   */
  sumTo(g: string, i: number, opts: { matrixAxes?: number; outRank?: number } = {}): string {
    const x = this.in(i);
    if (this.hasOutputShape(i, opts.matrixAxes ?? 0)) return g;
    const [rankX, rankOut] = [this.rank(x), opts.outRank ?? this.rank(this.out(0))];
    let s = g;
    if (rankOut > rankX) {
      s = this.reduce('ReduceSum', g, [...Array(rankOut - rankX).keys()], false);
    }
    if (rankX === 0) return s;
    const stretched = this.op('Not', [this.op('Equal', [this.shape(x), this.op('Shape', [s], undefined, I64)], undefined, DataType.BOOL)],
      undefined, DataType.BOOL);
    const axes = this.op('Reshape', [this.op('NonZero', [stretched], undefined, I64), this.ints([-1])], undefined, I64);
    return this.op('ReduceSum', [s, axes], [intAttr('keepdims', 1), intAttr('noop_with_empty_axes', 1)]);
  }

  /** Input i's dims provably equal the output's: every other operand fits inside them. */
  private hasOutputShape(i: number, matrixAxes: number): boolean {
    const dims = (t: string): (number | undefined)[] | undefined => this.dims(t)?.slice(0, matrixAxes ? -matrixAxes : undefined);
    const own = dims(this.in(i));
    const operands = BROADCAST_INPUTS[this.node.opType ?? ''];
    if (!own || !operands) return false;
    const others = operands.filter((j) => j !== i).map((j) => this.in(j));
    return others.every((o) => {
      const d = dims(o);
      if (!d || d.length > own.length) return false;
      return d.every((v, k) => v === 1 || (v !== undefined && own[own.length - d.length + k] === v));
    });
  }

  /**
   * The gradient of a node that picks elements of `x` (Slice, Gather, GatherElements): the same
   * pick applied to the flat element indices of x says where each element of `g` came from, and
   * `g` is scattered there into zeros. `accumulate`: several picks may land on one element.
   */
  scatterInto(x: string, pick: (indices: string) => string, g: string, accumulate: boolean): string {
    const size = this.op('Size', [x], undefined, I64);
    const flat = this.op('Range', [this.rw.constant(`${this.base}/zero`, I64, [], [0]), size, this.rw.constant(`${this.base}/one`, I64, [], [1])],
      undefined, I64);
    const picked = pick(this.op('Reshape', [flat, this.shape(x)], undefined, I64));
    const where = this.op('Unsqueeze', [this.op('Reshape', [picked, this.ints([-1])], undefined, I64), this.ints([1])], undefined, I64);
    const zeros = filled(this.rw, this.op('Reshape', [size, this.ints([1])], undefined, I64), this.rw.dtype(x), 0, `${this.base}/${this.count++}`);
    if (accumulate && this.rw.opset < 16) this.unsupported('its indices may repeat, and summing repeated indices needs ScatterND\'s reduction (opset ≥ 16)');
    const scattered = this.op('ScatterND', [zeros, where, this.op('Reshape', [g, this.ints([-1])])],
      accumulate ? [{ name: 'reduction', type: AttributeType.STRING, s: new TextEncoder().encode('add') }] : undefined);
    return this.op('Reshape', [scattered, this.shape(x)]);
  }
}

/** A tensor of `shape` (an int64 shape tensor) and element type `dtype`, every element `value`. */
function filled(rw: Rewrite, shape: string, dtype: number, value: number, base: string): string {
  return rw.op('ConstantOfShape', [shape], base, dtype, undefined, [tensorAttr('value', makeTensor('value', dtype, [1], [value]))]);
}

/** A tensor of t's shape and element type, every element `value`. */
export function filledLike(rw: Rewrite, t: string, value: number, base: string): string {
  return filled(rw, rw.op('Shape', [t], `${base}/shape`, I64), rw.dtype(t), value, base);
}
