// Element-type inference over a whole graph. value_info is optional in ONNX (TorchScript
// exports carry none), so the rewrite derives the dtype of every tensor it touches from the
// graph inputs, initializers and op semantics, with value_info only as a fallback.

import { GraphIndex } from './graph.js';
import { DataType, type NodeProto } from './proto.js';
import { attrInt, getAttr } from './tensor.js';

const INT64_OUT = new Set(['Shape', 'Size', 'ArgMax', 'ArgMin', 'NonZero', 'NonMaxSuppression']);
const BOOL_OUT = new Set([
  'Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'Not', 'And', 'Or', 'Xor', 'IsNaN', 'IsInf',
]);

function nodeOutputTypes(node: NodeProto, typeOf: (t: string) => number | undefined): (number | undefined)[] {
  const op = node.opType ?? '';
  const ins = node.input ?? [];
  const nOut = (node.output ?? []).length;
  const first = (): number | undefined => {
    for (const i of ins) {
      const t = i ? typeOf(i) : undefined;
      if (t !== undefined) return t;
    }
    return undefined;
  };
  const all = (t: number | undefined): (number | undefined)[] => new Array(nOut).fill(t);
  if (node.domain && node.domain !== 'ai.onnx' && node.domain !== 'com.microsoft') return all(undefined);
  if (INT64_OUT.has(op)) return all(DataType.INT64);
  if (BOOL_OUT.has(op)) return all(DataType.BOOL);
  switch (op) {
    case 'Cast': return all(attrInt(node, 'to'));
    case 'CastLike': return all(ins[1] ? typeOf(ins[1]) : undefined);
    case 'Constant': {
      const a = node.attribute?.[0];
      if (!a) return all(undefined);
      if (a.name === 'value') return all(a.t?.dataType);
      if (a.name === 'value_float' || a.name === 'value_floats') return all(DataType.FLOAT);
      if (a.name === 'value_int' || a.name === 'value_ints') return all(DataType.INT64);
      if (a.name === 'value_string' || a.name === 'value_strings') return all(DataType.STRING);
      return all(undefined);
    }
    case 'ConstantOfShape': return all(getAttr(node, 'value')?.t?.dataType ?? DataType.FLOAT);
    case 'Where': return all(ins[1] ? typeOf(ins[1]) : undefined);
    case 'TopK': return [ins[0] ? typeOf(ins[0]) : undefined, DataType.INT64];
    case 'Unique': return [ins[0] ? typeOf(ins[0]) : undefined, DataType.INT64, DataType.INT64, DataType.INT64];
    case 'LayerNormalization': return [ins[0] ? typeOf(ins[0]) : undefined, DataType.FLOAT, DataType.FLOAT].slice(0, nOut);
    case 'Dropout': return [ins[0] ? typeOf(ins[0]) : undefined, DataType.BOOL].slice(0, nOut);
    case 'EyeLike': case 'RandomNormalLike': case 'RandomUniformLike':
      return all(attrInt(node, 'dtype') ?? (ins[0] ? typeOf(ins[0]) : undefined));
    case 'RandomNormal': case 'RandomUniform': return all(attrInt(node, 'dtype') ?? DataType.FLOAT);
    case 'QuantizeLinear': return all(ins[2] ? typeOf(ins[2]) : DataType.UINT8);
    case 'DequantizeLinear': return all(ins[1] ? typeOf(ins[1]) : DataType.FLOAT);
    case 'If': case 'Loop': case 'Scan': return all(undefined);
    case 'Gather': case 'GatherElements': case 'GatherND': case 'Reshape': case 'Expand': case 'Slice': case 'Tile':
    case 'Transpose': case 'Squeeze': case 'Unsqueeze': case 'Flatten': case 'Identity': case 'Pad':
      return all(ins[0] ? typeOf(ins[0]) : undefined);
    default: return all(first());
  }
}

/** dtype of every tensor of the main graph whose type can be derived. */
export function inferDtypes(ix: GraphIndex): Map<string, number> {
  const types = new Map<string, number>();
  for (const [name, t] of ix.initializers) if (t.dataType) types.set(name, t.dataType);
  for (const [name, v] of ix.inputs) {
    const et = v.type?.tensorType?.elemType;
    if (et && !types.has(name)) types.set(name, et);
  }
  const hint = (t: string): number | undefined =>
    ix.valueInfo.get(t)?.type?.tensorType?.elemType ?? ix.outputs.get(t)?.type?.tensorType?.elemType ?? undefined;
  const typeOf = (t: string): number | undefined => types.get(t) ?? hint(t);
  for (const node of ix.nodes) {
    const outs = nodeOutputTypes(node, typeOf);
    (node.output ?? []).forEach((o, i) => {
      if (!o) return;
      const t = outs[i] ?? hint(o);
      if (t) types.set(o, t);
    });
  }
  return types;
}
