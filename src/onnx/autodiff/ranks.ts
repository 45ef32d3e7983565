// Tensor ranks, inferred forward over a topologically ordered graph. Gradient rules need ranks
// (a MatMul operand's transpose, a broadcast operand's leading axes) where exports record no
// shapes at all (TorchScript writes no value_info) and the dimensions themselves are dynamic.

import type { GraphIndex } from '../graph.js';
import type { NodeProto } from '../proto.js';
import { attrInt, attrInts, tensorDims } from '../tensor.js';

/** Ops whose output has their first input's rank. */
const SAME_RANK = new Set([
  'Identity', 'Cast', 'CastLike', 'Dropout', 'Neg', 'Sqrt', 'Reciprocal', 'Exp', 'Log', 'Tanh', 'Sigmoid', 'Erf', 'Gelu', 'FastGelu', 'QuickGelu',
  'Relu', 'Cos', 'Sin', 'Floor', 'Ceil', 'Round', 'Sign', 'Softmax', 'LogSoftmax', 'LayerNormalization', 'SimplifiedLayerNormalization', 'RMSNormalization', 'Transpose', 'Slice', 'Split',
  'Concat', 'Not', 'IsNaN', 'IsInf', 'Abs', 'Trilu', 'CumSum', 'ScatterND', 'ScatterElements', 'GatherElements', 'Tile', 'Pad', 'Softplus',
]);
/** Ops whose output has the largest rank among their inputs (numpy broadcasting). */
const BROADCAST = new Set([
  'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Where', 'Max', 'Min', 'Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'And', 'Or', 'Xor', 'Mod',
]);
const REDUCE = new Set(['ReduceMean', 'ReduceSum', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL2', 'ReduceSumSquare', 'ArgMax', 'ArgMin']);

/** The rank of every tensor whose rank the graph fixes. */
export function inferRanks(ix: GraphIndex): Map<string, number> {
  const ranks = new Map<string, number>();
  for (const [name, t] of ix.initializers) ranks.set(name, tensorDims(t).length);
  for (const [name, v] of [...ix.inputs, ...ix.valueInfo]) {
    const dims = v.type?.tensorType?.shape?.dim;
    if (dims && !ranks.has(name)) ranks.set(name, dims.length);
  }
  /** Lengths of 1-D tensors (shapes, axes lists) computed from ranks: Shape(x) has rank(x) elements. */
  const lengths = new Map<string, number>();
  const length = (t: string): number | undefined => lengths.get(t) ?? ix.shapes.values(t)?.length ?? ix.shapes.dims(t)?.[0];
  /** The first element of a shape tensor; Shape(v) of a 1-D v holds v's length. */
  const firstValue = (t: string): number | undefined => {
    const p = ix.producer(t);
    const v = p?.opType === 'Shape' && ranks.get(p.input?.[0] ?? '') === 1 ? length(p.input![0]!) : undefined;
    return v ?? ix.shapes.values(t)?.[0];
  };
  for (const n of ix.nodes) {
    const ins = (n.input ?? []).map((t) => (t ? ranks.get(t) : undefined));
    const op = n.opType ?? '';
    const first = ins[0];
    const axesCount = (): number | undefined => attrInts(n, 'axes')?.length ?? (n.input?.[1] ? length(n.input[1]) : undefined);
    let rank: number | undefined;
    if (SAME_RANK.has(op)) rank = first;
    else if (BROADCAST.has(op)) rank = ins.some((r) => r === undefined) ? undefined : Math.max(...(ins as number[]));
    else if (REDUCE.has(op)) {
      const axes = op.startsWith('Arg') ? 1 : axesCount();
      rank = attrInt(n, 'keepdims', 1) ? first : first !== undefined && axes !== undefined ? first - axes : undefined;
    } else {
      switch (op) {
        case 'MatMul': rank = first !== undefined && ins[1] !== undefined ? Math.max(first, ins[1]) : undefined; break;
        case 'Gemm': rank = 2; break;
        case 'Shape': case 'Size': rank = op === 'Shape' ? 1 : 0; break;
        case 'Constant': { const c = ix.constantTensor(n.output?.[0] ?? ''); rank = c ? tensorDims(c).length : undefined; break; }
        case 'Reshape': rank = length(n.input?.[1] ?? ''); break;
        case 'ConstantOfShape': rank = length(n.input?.[0] ?? ''); break;
        case 'Expand': { const target = length(n.input?.[1] ?? ''); rank = target !== undefined && first !== undefined ? Math.max(first, target) : undefined; break; }
        case 'Unsqueeze': { const a = axesCount(); rank = first !== undefined && a !== undefined ? first + a : undefined; break; }
        case 'Squeeze': { const a = axesCount(); rank = first !== undefined && a !== undefined ? first - a : undefined; break; }
        case 'Flatten': rank = 2; break;
        case 'Gather': rank = first !== undefined && ins[1] !== undefined ? first - 1 + ins[1] : undefined; break;
        case 'GatherND': {
          const last = ix.shapes.dims(n.input?.[1] ?? '')?.at(-1);
          rank = first !== undefined && ins[1] !== undefined && last !== undefined ? first + ins[1] - last - 1 - attrInt(n, 'batch_dims', 0)! : undefined;
          break;
        }
        case 'Range': case 'NonZero': rank = op === 'Range' ? 1 : 2; break;
        default: rank = undefined;
      }
    }
    if (rank !== undefined) for (const o of n.output ?? []) if (o && !ranks.has(o)) ranks.set(o, rank);
    const size = op === 'ConstantOfShape' ? firstValue(n.input?.[0] ?? '')
      : vectorLength(op, n, first, (i) => length(n.input?.[i] ?? ''), (n.input ?? []).map((t) => (t ? length(t) : undefined)),
        (i) => (n.input?.[i] ? ix.constantValues(n.input[i]!) : undefined));
    if (size !== undefined && n.output?.[0]) lengths.set(n.output[0], size);
  }
  return ranks;
}

/** The length of a 1-D output of shape arithmetic, from its input's rank or its inputs' lengths. */
function vectorLength(op: string, n: NodeProto, inputRank: number | undefined, length: (i: number) => number | undefined,
  lengths: readonly (number | undefined)[], constants: (i: number) => number[] | undefined): number | undefined {
  switch (op) {
    case 'Shape': {
      if (inputRank === undefined) return undefined;
      const norm = (i: number): number => Math.min(Math.max(i < 0 ? i + inputRank : i, 0), inputRank);
      return norm(attrInt(n, 'end', inputRank)!) - norm(attrInt(n, 'start', 0)!);
    }
    case 'Concat': return lengths.every((l) => l !== undefined) ? (lengths as number[]).reduce((a, b) => a + b, 0) : undefined;
    case 'Cast': case 'Identity': case 'Neg': case 'Abs': return length(0);
    case 'Add': case 'Sub': case 'Mul': case 'Div': case 'Max': case 'Min': case 'Where': {
      const known = lengths.filter((l): l is number => l !== undefined && l !== 1);
      return known.length ? known[0] : lengths.every((l) => l === 1) ? 1 : undefined;
    }
    case 'Gather': return inputRank === 1 ? length(1) : undefined;
    case 'Slice': {
      const [whole, [start], [end], step] = [length(0), constants(1) ?? [], constants(2) ?? [], constants(4)?.[0] ?? 1];
      if (whole === undefined || start === undefined || end === undefined || step === 0) return undefined;
      const clamp = (i: number): number => Math.min(Math.max(i < 0 ? i + whole : i, step > 0 ? 0 : -1), step > 0 ? whole : whole - 1);
      return Math.max(0, Math.ceil((clamp(end) - clamp(start)) / step));
    }
    default: return undefined;
  }
}
