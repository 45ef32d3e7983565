// Reading and writing ONNX ModelProto. The schema (onnx-schema.ts, IR ≤ 10) is parsed once
// with protobufjs' reflection, so every field a model of IR ≤ 10 may carry survives a round
// trip. Decoded messages are plain-ish objects (camelCase fields); int64 fields come back as
// Long or number, so read them through `int()`. New messages are built as plain objects.

import { readFileSync, writeFileSync } from 'node:fs';
import protobuf from 'protobufjs';
import type { Long } from 'protobufjs';
import { fsUserError, UserError } from '../errors.js';
import { MAX_IR_VERSION, ONNX_SCHEMA } from './onnx-schema.js';

export type Int64 = number | Long;

export interface StringStringEntryProto { key?: string; value?: string }
export interface OperatorSetIdProto { domain?: string; version?: Int64 }

export interface TensorProto {
  dims?: Int64[];
  dataType?: number;
  segment?: { begin?: Int64; end?: Int64 };
  floatData?: number[];
  int32Data?: number[];
  stringData?: Uint8Array[];
  int64Data?: Int64[];
  name?: string;
  docString?: string;
  rawData?: Uint8Array;
  externalData?: StringStringEntryProto[];
  dataLocation?: number;
  doubleData?: number[];
  uint64Data?: Int64[];
  metadataProps?: StringStringEntryProto[];
}

export interface SparseTensorProto { values?: TensorProto; indices?: TensorProto; dims?: Int64[] }

export interface DimensionProto { dimValue?: Int64; dimParam?: string; denotation?: string; value?: string }
export interface TensorShapeProto { dim?: DimensionProto[] }

export interface TypeProto {
  tensorType?: { elemType?: number; shape?: TensorShapeProto };
  sequenceType?: { elemType?: TypeProto };
  mapType?: { keyType?: number; valueType?: TypeProto };
  optionalType?: { elemType?: TypeProto };
  sparseTensorType?: { elemType?: number; shape?: TensorShapeProto };
  opaqueType?: { domain?: string; name?: string };
  denotation?: string;
  value?: string;
}

export interface ValueInfoProto { name?: string; type?: TypeProto; docString?: string; metadataProps?: StringStringEntryProto[] }

export interface AttributeProto {
  name?: string;
  refAttrName?: string;
  docString?: string;
  type?: number;
  f?: number;
  i?: Int64;
  s?: Uint8Array;
  t?: TensorProto;
  g?: GraphProto;
  sparseTensor?: SparseTensorProto;
  tp?: TypeProto;
  floats?: number[];
  ints?: Int64[];
  strings?: Uint8Array[];
  tensors?: TensorProto[];
  graphs?: GraphProto[];
  sparseTensors?: SparseTensorProto[];
  typeProtos?: TypeProto[];
}

export interface NodeProto {
  input?: string[];
  output?: string[];
  name?: string;
  opType?: string;
  domain?: string;
  overload?: string;
  attribute?: AttributeProto[];
  docString?: string;
  metadataProps?: StringStringEntryProto[];
}

export interface TensorAnnotation { tensorName?: string; quantParameterTensorNames?: StringStringEntryProto[] }

export interface GraphProto {
  node?: NodeProto[];
  name?: string;
  initializer?: TensorProto[];
  sparseInitializer?: SparseTensorProto[];
  docString?: string;
  input?: ValueInfoProto[];
  output?: ValueInfoProto[];
  valueInfo?: ValueInfoProto[];
  quantizationAnnotation?: TensorAnnotation[];
  metadataProps?: StringStringEntryProto[];
}

export interface FunctionProto {
  name?: string;
  input?: string[];
  output?: string[];
  attribute?: string[];
  attributeProto?: AttributeProto[];
  node?: NodeProto[];
  docString?: string;
  opsetImport?: OperatorSetIdProto[];
  domain?: string;
  overload?: string;
  valueInfo?: ValueInfoProto[];
  metadataProps?: StringStringEntryProto[];
}

export interface TrainingInfoProto {
  initialization?: GraphProto;
  algorithm?: GraphProto;
  initializationBinding?: StringStringEntryProto[];
  updateBinding?: StringStringEntryProto[];
}

export interface ModelProto {
  irVersion?: Int64;
  opsetImport?: OperatorSetIdProto[];
  producerName?: string;
  producerVersion?: string;
  domain?: string;
  modelVersion?: Int64;
  docString?: string;
  graph?: GraphProto;
  metadataProps?: StringStringEntryProto[];
  trainingInfo?: TrainingInfoProto[];
  functions?: FunctionProto[];
}

/** TensorProto.DataType values (IR 10). */
export const DataType = {
  UNDEFINED: 0, FLOAT: 1, UINT8: 2, INT8: 3, UINT16: 4, INT16: 5, INT32: 6, INT64: 7, STRING: 8, BOOL: 9,
  FLOAT16: 10, DOUBLE: 11, UINT32: 12, UINT64: 13, COMPLEX64: 14, COMPLEX128: 15, BFLOAT16: 16,
  FLOAT8E4M3FN: 17, FLOAT8E4M3FNUZ: 18, FLOAT8E5M2: 19, FLOAT8E5M2FNUZ: 20, UINT4: 21, INT4: 22,
} as const;

export const AttributeType = {
  UNDEFINED: 0, FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8,
  TENSORS: 9, GRAPHS: 10, SPARSE_TENSOR: 11, SPARSE_TENSORS: 12, TYPE_PROTO: 13, TYPE_PROTOS: 14,
} as const;

export const DataLocation = { DEFAULT: 0, EXTERNAL: 1 } as const;

const DTYPE_NAMES: Record<number, string> = {
  0: 'undefined', 1: 'float32', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64', 8: 'string',
  9: 'bool', 10: 'float16', 11: 'float64', 12: 'uint32', 13: 'uint64', 14: 'complex64', 15: 'complex128',
  16: 'bfloat16', 17: 'float8e4m3fn', 18: 'float8e4m3fnuz', 19: 'float8e5m2', 20: 'float8e5m2fnuz', 21: 'uint4', 22: 'int4',
};

export function dtypeName(dt: number): string {
  return DTYPE_NAMES[dt] ?? `dtype#${dt}`;
}

let root: protobuf.Root | undefined;

/** The protobufjs root holding the ONNX IR-10 schema (package `onnx`). */
export function onnxRoot(): protobuf.Root {
  // resolveAll before the first encode: field options (packed) are read when codecs are generated.
  if (!root) {
    root = protobuf.parse(ONNX_SCHEMA, { keepCase: false }).root;
    root.resolveAll();
  }
  return root;
}

export function onnxType(name: string): protobuf.Type {
  return onnxRoot().lookupType(`onnx.${name}`);
}

/** An int64 field value (number or Long) as a JS number. */
export function int(v: Int64 | undefined | null): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === 'number') return v;
  const l = v as Long;
  return (l.unsigned ? l.high >>> 0 : l.high) * 4294967296 + (l.low >>> 0);
}

export function checkIrVersion(ir: number, source: string): void {
  if (ir > MAX_IR_VERSION) {
    throw new UserError(
      `${source}: ONNX IR version ${ir} is newer than dissect supports (IR ≤ ${MAX_IR_VERSION}, ONNX 1.16); ` +
      `fields it added could be lost when the graph is rewritten`,
      'Export the model with an older ONNX/opset, or convert it with onnx.version_converter.',
    );
  }
}

/** The hint of every error on a file that does not decode as a ModelProto. */
export const UNREADABLE_MODEL_HINT = 'an ONNX model is the .onnx file torch.onnx.export or Optimum writes (a protobuf ModelProto); check the path, and that the file was copied whole';

/** Decodes a serialized ModelProto; refuses IR versions newer than the schema. */
export function decodeModel(bytes: Uint8Array, source = 'model'): ModelProto {
  let model: ModelProto;
  try {
    model = onnxType('ModelProto').decode(bytes) as unknown as ModelProto;
  } catch (e) {
    throw new UserError(`${source}: not a readable ONNX model (${(e as Error).message})`, UNREADABLE_MODEL_HINT);
  }
  checkModel(model, source);
  return model;
}

/** Refuses a decoded model dissect cannot rewrite: an IR version newer than the schema, or no graph. */
export function checkModel(model: ModelProto, source: string): void {
  checkIrVersion(int(model.irVersion), source);
  if (!model.graph) throw new UserError(`${source}: the ONNX model has no graph`);
}

export function encodeModel(model: ModelProto): Uint8Array {
  checkIrVersion(int(model.irVersion), 'model to write');
  return onnxType('ModelProto').encode(model as unknown as protobuf.Message).finish();
}

export function readModel(path: string): ModelProto {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw fsUserError('read the model', path, e, 'give the path of an .onnx file');
  }
  return decodeModel(bytes, path);
}

export function writeModel(path: string, model: ModelProto): void {
  writeFileSync(path, encodeModel(model));
}

/** The opset version imported for a domain ('' = ai.onnx), or undefined. */
export function opsetVersion(model: ModelProto, domain = ''): number | undefined {
  for (const o of model.opsetImport ?? []) {
    const d = o.domain ?? '';
    if (d === domain || (domain === '' && d === 'ai.onnx')) return int(o.version);
  }
  return undefined;
}
