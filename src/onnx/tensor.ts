// Small tensors: building initializers and reading constant values. Weights are never read
// here: a tensor whose data lives in an external file yields `undefined`.

import {
  AttributeType, DataLocation, DataType, int,
  type AttributeProto, type Int64, type NodeProto, type TensorProto,
} from './proto.js';

/** The lowest finite value of a floating dtype (torch.finfo(dtype).min). */
export function lowestFinite(dt: number): number {
  switch (dt) {
    case DataType.FLOAT: return -3.4028234663852886e38;
    case DataType.FLOAT16: return -65504;
    case DataType.BFLOAT16: return -3.3895313892515355e38;
    case DataType.DOUBLE: return -Number.MAX_VALUE;
    default: throw new Error(`internal: no lowest finite value for a non-float dtype #${dt}`);
  }
}

export function isFloatType(dt: number | undefined): boolean {
  return dt === DataType.FLOAT || dt === DataType.FLOAT16 || dt === DataType.BFLOAT16 || dt === DataType.DOUBLE;
}

// IEEE half from a double (round to nearest even); exact for the values used here.
export function toHalfBits(v: number): number {
  const f32 = new Float32Array([v]);
  const x = new Uint32Array(f32.buffer)[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && (half & 1))) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++;
  return sign | half;
}

export function fromHalfBits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

function bf16Bits(v: number): number {
  const f32 = new Float32Array([v]);
  const x = new Uint32Array(f32.buffer)[0]!;
  const rounding = 0x7fff + ((x >>> 16) & 1);
  return ((x + rounding) >>> 16) & 0xffff;
}

/** A tensor with raw little-endian data. */
export function makeTensor(name: string, dataType: number, dims: readonly number[], values: readonly (number | bigint | boolean)[]): TensorProto {
  const n = values.length;
  let raw: Uint8Array;
  switch (dataType) {
    case DataType.FLOAT: raw = new Uint8Array(Float32Array.from(values as number[]).buffer); break;
    case DataType.DOUBLE: raw = new Uint8Array(Float64Array.from(values as number[]).buffer); break;
    case DataType.FLOAT16: raw = new Uint8Array(Uint16Array.from((values as number[]).map(toHalfBits)).buffer); break;
    case DataType.BFLOAT16: raw = new Uint8Array(Uint16Array.from((values as number[]).map(bf16Bits)).buffer); break;
    case DataType.INT64: raw = new Uint8Array(BigInt64Array.from(values.map((v) => BigInt(v as number))).buffer); break;
    case DataType.INT32: raw = new Uint8Array(Int32Array.from(values as number[]).buffer); break;
    case DataType.BOOL: case DataType.UINT8: raw = Uint8Array.from(values.map((v) => Number(v))); break;
    default: throw new Error(`internal: makeTensor does not handle dtype #${dataType}`);
  }
  if (raw.length === 0 && n === 0) raw = new Uint8Array(0);
  return { name, dataType, dims: [...dims], rawData: raw };
}

export function isExternal(t: TensorProto): boolean {
  return t.dataLocation === DataLocation.EXTERNAL;
}

export function tensorDims(t: TensorProto): number[] {
  return (t.dims ?? []).map((d) => int(d));
}

export function elementCount(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** The most elements tensorValues reads: shape arithmetic and constants, never weights. */
export const TENSOR_VALUES_LIMIT = 1 << 16;

/** The values of a small embedded tensor as numbers (int64 via Number), or undefined. */
export function tensorValues(t: TensorProto, limit = TENSOR_VALUES_LIMIT): number[] | undefined {
  if (isExternal(t)) return undefined;
  const count = elementCount(tensorDims(t));
  if (count > limit) return undefined;
  const dt = t.dataType ?? 0;
  const raw = t.rawData;
  if (raw && raw.length > 0) {
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const out: number[] = [];
    for (let i = 0; i < count; i++) {
      switch (dt) {
        case DataType.FLOAT: out.push(view.getFloat32(i * 4, true)); break;
        case DataType.DOUBLE: out.push(view.getFloat64(i * 8, true)); break;
        case DataType.FLOAT16: out.push(fromHalfBits(view.getUint16(i * 2, true))); break;
        case DataType.BFLOAT16: out.push(new Float32Array(new Uint32Array([view.getUint16(i * 2, true) << 16]).buffer)[0]!); break;
        case DataType.INT64: out.push(Number(view.getBigInt64(i * 8, true))); break;
        case DataType.UINT64: out.push(Number(view.getBigUint64(i * 8, true))); break;
        case DataType.INT32: out.push(view.getInt32(i * 4, true)); break;
        case DataType.UINT32: out.push(view.getUint32(i * 4, true)); break;
        case DataType.INT16: out.push(view.getInt16(i * 2, true)); break;
        case DataType.UINT16: out.push(view.getUint16(i * 2, true)); break;
        case DataType.INT8: out.push(view.getInt8(i)); break;
        case DataType.UINT8: case DataType.BOOL: out.push(view.getUint8(i)); break;
        default: return undefined;
      }
    }
    return out;
  }
  switch (dt) {
    case DataType.FLOAT: return t.floatData ? [...t.floatData] : [];
    case DataType.DOUBLE: return t.doubleData ? [...t.doubleData] : [];
    case DataType.INT64: return (t.int64Data ?? []).map((v) => int(v));
    case DataType.UINT64: case DataType.UINT32: return (t.uint64Data ?? []).map((v) => int(v));
    case DataType.INT32: case DataType.INT16: case DataType.INT8: case DataType.UINT16: case DataType.UINT8: case DataType.BOOL:
      return t.int32Data ? [...t.int32Data] : [];
    case DataType.FLOAT16: return (t.int32Data ?? []).map(fromHalfBits);
    default: return undefined;
  }
}

// ---- attributes ----

export function getAttr(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute?.find((a) => a.name === name);
}

export function attrInt(node: NodeProto, name: string, dflt?: number): number | undefined {
  const a = getAttr(node, name);
  return a ? int(a.i) : dflt;
}

export function attrInts(node: NodeProto, name: string): number[] | undefined {
  const a = getAttr(node, name);
  return a ? (a.ints ?? []).map((v) => int(v)) : undefined;
}

export function attrFloat(node: NodeProto, name: string, dflt?: number): number | undefined {
  const a = getAttr(node, name);
  return a ? a.f ?? 0 : dflt;
}

export function intAttr(name: string, value: number): AttributeProto {
  return { name, type: AttributeType.INT, i: value };
}

export function intsAttr(name: string, values: readonly Int64[]): AttributeProto {
  return { name, type: AttributeType.INTS, ints: [...values] };
}

export function floatAttr(name: string, value: number): AttributeProto {
  return { name, type: AttributeType.FLOAT, f: value };
}

export function tensorAttr(name: string, t: TensorProto): AttributeProto {
  return { name, type: AttributeType.TENSOR, t };
}
