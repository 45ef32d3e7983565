// Shape arithmetic, evaluated where the graph fixes it. Exporters compute split points and view
// shapes from Shape() at run time (`torch.chunk` on a projection becomes Shape → Gather → Add →
// Div → Slice), although the dimensions they read are constants of the weights or of a Reshape.
// This evaluates such small integer tensors, element by element (undefined where a value is
// truly dynamic, like the batch or sequence length), and the static dimensions of tensors they
// read, so matching can use the numbers without running the graph.

import type { GraphIndex } from './graph.js';
import { int, type NodeProto } from './proto.js';
import { attrInt, attrInts, tensorDims } from './tensor.js';

type Partial = (number | undefined)[];

const SAME_SHAPE = new Set(['Cast', 'Identity', 'Relu', 'Sigmoid', 'Tanh', 'Erf', 'Neg', 'Sqrt', 'Reciprocal', 'Softmax', 'LayerNormalization',
  'SimplifiedLayerNormalization', 'RMSNormalization', 'Dropout', 'Silu', 'Gelu', 'FastGelu', 'QuickGelu', 'RotaryEmbedding', 'CumSum', 'Not', 'Abs', 'Exp', 'Log', 'IsNaN']);
const BROADCAST = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Where', 'Max', 'Min', 'Equal', 'And', 'Or', 'Less', 'Greater']);
const INT_ARITHMETIC: Readonly<Record<string, (a: number, b: number) => number>> = {
  Add: (a, b) => a + b, Sub: (a, b) => a - b, Mul: (a, b) => a * b, Div: (a, b) => Math.trunc(a / b),
};
/** How deep evaluation goes before giving up: a residual stream's dimensions go back through every layer. */
const DEPTH = 2000;
const REDUCE = new Set(['ReduceMean', 'ReduceSum', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL2']);

export class StaticShapes {
  private readonly valueMemo = new Map<string, Partial | undefined>();
  private readonly dimMemo = new Map<string, Partial | undefined>();

  constructor(private readonly ix: GraphIndex) {}

  /** The elements of a small integer tensor (flattened): numbers where fixed, undefined where dynamic; undefined if its length is unknown. */
  values(t: string, depth = 0): Partial | undefined {
    return this.memoised(this.valueMemo, t, depth, (d) => this.computeValues(t, d));
  }

  /** The dimensions of `t`: numbers where fixed by the graph; undefined if even its rank is unknown. */
  dims(t: string, depth = 0): Partial | undefined {
    return this.memoised(this.dimMemo, t, depth, (d) => this.computeDims(t, d));
  }

  /** A depth cut-off is not remembered: the same tensor reached from nearer may still be known. */
  private memoised(memo: Map<string, Partial | undefined>, t: string, depth: number, compute: (depth: number) => Partial | undefined): Partial | undefined {
    if (memo.has(t)) return memo.get(t);
    if (depth > DEPTH) return undefined;
    const v = compute(depth + 1);
    memo.set(t, v);
    return v;
  }

  private computeValues(t: string, depth: number): Partial | undefined {
    const c = this.ix.constantValues(t);
    if (c) return c;
    const p = this.ix.producer(t);
    if (!p) return undefined;
    const ins = p.input ?? [];
    const op = p.opType ?? '';
    switch (op) {
      case 'Shape': {
        const d = this.dims(ins[0] ?? '', depth);
        const [start, end] = [attrInt(p, 'start'), attrInt(p, 'end')];
        if (!d) {
          // the dynamo exporter reads dimensions as Shape(x, start, end): end − start values, even of an unknown rank
          return start !== undefined && end !== undefined && start >= 0 && end > start ? new Array<undefined>(end - start).fill(undefined) : undefined;
        }
        const norm = (i: number): number => Math.min(Math.max(i < 0 ? i + d.length : i, 0), d.length);
        return d.slice(norm(start ?? 0), norm(end ?? d.length));
      }
      case 'Size': {
        const d = this.dims(ins[0] ?? '', depth);
        return d ? [d.every((x) => x !== undefined) ? d.reduce<number>((a, x) => a * x!, 1) : undefined] : undefined;
      }
      case 'Gather': {
        const data = this.values(ins[0] ?? '', depth);
        const idx = this.ix.constantValues(ins[1] ?? '');
        if (!data || !idx || attrInt(p, 'axis', 0) !== 0) return undefined;
        return idx.map((i) => data[i < 0 ? i + data.length : i]);
      }
      case 'Concat': {
        const parts = ins.map((i) => this.values(i, depth));
        return parts.every(Boolean) ? parts.flatMap((x) => x!) : undefined;
      }
      // a dynamic scalar unsqueezed into a shape is one unknown element
      case 'Unsqueeze': return this.values(ins[0] ?? '', depth) ?? [undefined];
      case 'Squeeze': case 'Reshape': case 'Cast': case 'Identity': case 'Flatten':
        return this.values(ins[0] ?? '', depth);
      case 'Slice': {
        const data = this.values(ins[0] ?? '', depth);
        const [start, end] = [this.values(ins[1] ?? '', depth)?.[0], this.values(ins[2] ?? '', depth)?.[0]];
        if (!data || start === undefined || end === undefined) return undefined;
        const norm = (i: number): number => Math.min(Math.max(i < 0 ? i + data.length : i, 0), data.length);
        return data.slice(norm(start), norm(end));
      }
      default: {
        const f = INT_ARITHMETIC[op];
        if (!f) return undefined;
        const [a, b] = [this.values(ins[0] ?? '', depth), this.values(ins[1] ?? '', depth)];
        if (!a || !b || (a.length !== b.length && a.length !== 1 && b.length !== 1)) return undefined;
        const n = Math.max(a.length, b.length);
        return Array.from({ length: n }, (_, i) => {
          const [x, y] = [a[a.length === 1 ? 0 : i], b[b.length === 1 ? 0 : i]];
          return x === undefined || y === undefined ? undefined : f(x, y);
        });
      }
    }
  }

  private computeDims(t: string, depth: number): Partial | undefined {
    const constant = this.ix.constantTensor(t);
    if (constant) return tensorDims(constant);
    const declared = this.ix.inputs.get(t) ?? this.ix.valueInfo.get(t);
    const dimsOf = declared?.type?.tensorType?.shape?.dim;
    // a symbolic dimension (dim_param) has no value, whatever the decoder's default for dim_value
    if (dimsOf) return dimsOf.map((d) => (d.dimParam || d.dimValue === undefined || d.dimValue === null ? undefined : int(d.dimValue)));
    const p = this.ix.producer(t);
    if (!p) return undefined;
    const ins = p.input ?? [];
    const op = p.opType ?? '';
    const x = (): Partial | undefined => this.dims(ins[0] ?? '', depth);
    if (SAME_SHAPE.has(op)) return x();
    if (BROADCAST.has(op)) return this.broadcast(ins.filter(Boolean).map((i) => this.dims(i, depth)));
    if (REDUCE.has(op)) {
      const d = x();
      const axes = attrInts(p, 'axes') ?? (ins[1] ? this.ix.constantValues(ins[1]) : undefined);
      if (!d || !axes) return undefined;
      const reduced = new Set(axes.map((a) => (a < 0 ? a + d.length : a)));
      return attrInt(p, 'keepdims', 1) ? d.map((v, i) => (reduced.has(i) ? 1 : v)) : d.filter((_, i) => !reduced.has(i));
    }
    switch (op) {
      case 'Unsqueeze': case 'Squeeze': {
        const d = x();
        const axes = attrInts(p, 'axes') ?? (ins[1] ? this.ix.constantValues(ins[1]) : undefined);
        if (!d || !axes) return undefined;
        if (op === 'Squeeze') return d.filter((_, i) => !axes.some((a) => (a < 0 ? a + d.length : a) === i));
        const out = d.slice();
        for (const a of [...axes].map((v) => (v < 0 ? v + d.length + axes.length : v)).sort((u, v) => u - v)) out.splice(a, 0, 1);
        return out;
      }
      case 'Expand': return this.broadcast([x(), this.values(ins[1] ?? '', depth)]);
      case 'Concat': {
        const parts = ins.map((i) => this.dims(i, depth));
        if (parts.some((q) => !q)) return undefined;
        const rank = parts[0]!.length;
        const axis = (attrInt(p, 'axis', 0)! + rank) % rank;
        return parts[0]!.map((v, i) => (i === axis ? parts.reduce<number | undefined>((a, q) => (a === undefined || q![i] === undefined ? undefined : a + q![i]!), 0) : v));
      }
      case 'Split': {
        const d = x();
        if (!d) return undefined;
        const axis = (attrInt(p, 'axis', 0)! + d.length) % d.length;
        const k = (p.output ?? []).indexOf(t);
        const sizes = ins[1] ? this.values(ins[1], depth) : attrInts(p, 'split');
        const whole = d[axis];
        const size = sizes ? sizes[k] : whole !== undefined ? whole / (p.output ?? []).length : undefined;
        return d.map((v, i) => (i === axis ? size : v));
      }
      case 'Transpose': {
        const d = x();
        const perm = attrInts(p, 'perm');
        return d && perm ? perm.map((i) => d[i]) : d?.slice().reverse();
      }
      case 'Reshape': return this.reshaped(p, x(), depth);
      case 'MatMul': {
        const [a, b] = [x(), this.dims(ins[1] ?? '', depth)];
        return a && b && a.length >= 2 ? [...a.slice(0, -1), b[b.length - 1]] : undefined;
      }
      case 'Gemm': {
        const [a, b] = [x(), this.dims(ins[1] ?? '', depth)];
        if (!a || !b || a.length !== 2 || b.length !== 2) return undefined;
        return [attrInt(p, 'transA', 0) ? a[1] : a[0], attrInt(p, 'transB', 0) ? b[0] : b[1]];
      }
      case 'Gather': {
        const [data, idx] = [x(), this.dims(ins[1] ?? '', depth)];
        const axis = attrInt(p, 'axis', 0)!;
        return data && idx ? [...data.slice(0, axis), ...idx, ...data.slice(axis + 1)] : undefined;
      }
      case 'Slice': return this.sliced(p, x(), depth);
      case 'Range': return [undefined]; // one axis, as long as the run's values make it
      // onnxruntime's fused attention: [b, s, width] of the query; MultiHeadAttention's width is the values',
      // GroupQueryAttention's the query heads' (a packed query also holds the keys' and the values')
      case 'MultiHeadAttention': case 'GroupQueryAttention': {
        const d = x();
        if (d?.length !== 3) return undefined;
        const [heads, kvHeads] = [attrInt(p, 'num_heads', 0)!, attrInt(p, 'kv_num_heads', 0)!];
        const width = op === 'MultiHeadAttention' ? this.dims(ins[2] ?? '', depth)?.[2]
          : ins[1] || d[2] === undefined ? d[2] : d[2] * heads / (heads + 2 * kvHeads);
        return [d[0], d[1], width];
      }
      default: return undefined;
    }
  }

  /** Numpy broadcasting of known ranks; a dimension is known where an input fixes it (1 stretches). */
  private broadcast(shapes: (Partial | undefined)[]): Partial | undefined {
    if (!shapes.length || shapes.some((s) => !s)) return undefined;
    const rank = Math.max(...shapes.map((s) => s!.length));
    return Array.from({ length: rank }, (_, i) => {
      const at = shapes.map((s) => s![s!.length - rank + i]).filter((d) => d !== undefined && d !== 1);
      return at.length ? at[0] : shapes.every((s) => s![s!.length - rank + i] === 1) ? 1 : undefined;
    });
  }

  private reshaped(p: NodeProto, input: Partial | undefined, depth: number): Partial | undefined {
    const target = this.values(p.input?.[1] ?? '', depth);
    if (!target) return undefined;
    const allowZero = attrInt(p, 'allowzero', 0) === 1;
    const out = target.map((d, i) => (d === 0 && !allowZero ? input?.[i] : d === -1 ? undefined : d));
    const minus = target.indexOf(-1);
    if (minus >= 0 && input?.every((d) => d !== undefined) && out.every((d, i) => i === minus || d !== undefined)) {
      const total = input.reduce<number>((a, d) => a * d!, 1);
      const rest = out.reduce<number>((a, d, i) => (i === minus ? a : a * d!), 1);
      out[minus] = rest ? total / rest : undefined;
    }
    return out;
  }

  private sliced(p: NodeProto, input: Partial | undefined, depth: number): Partial | undefined {
    if (!input) return undefined;
    const arg = (i: number): Partial | undefined => (p.input?.[i] ? this.values(p.input[i]!, depth) : undefined);
    const [starts, ends, axes, steps] = [arg(1), arg(2), arg(3), arg(4)];
    const out = input.slice();
    if (axes?.some((a) => a === undefined)) return input.map(() => undefined);
    (axes ?? starts?.map((_, i) => i) ?? []).forEach((a, k) => {
      const axis = a! < 0 ? a! + input.length : a!;
      const d = input[axis];
      const [s, e] = [starts?.[k], ends?.[k]];
      if (d === undefined || s === undefined || e === undefined || (steps?.[k] ?? 1) !== 1) {
        out[axis] = undefined;
        return;
      }
      const norm = (i: number): number => Math.min(Math.max(i < 0 ? i + d : i, 0), d);
      out[axis] = Math.max(norm(e) - norm(s), 0);
    });
    return out;
  }
}
