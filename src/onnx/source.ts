// The source model of a run, read once: its graph without the weights, its sites, and where
// onnxruntime finds the weights. Reading a model with inline weights whole would hold them in
// JavaScript (and a variant serialized with them a second time, and onnxruntime's a third), so
// the graph is read field by field from the file and every initializer's raw data too large for
// anything in dissect to read (tensorValues' limit) is left on disk: the tensor becomes external
// data whose location is the .onnx file itself, at the offset where its bytes lie. onnxruntime
// then reads those bytes from the file like any external weights.

import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { fsUserError, UserError } from '../errors.js';
import { checkExternalData, externalRefs, type ExternalRef } from './external.js';
import { modelLimits, type ModelLimits } from './limits.js';
import { checkModel, DataLocation, UNREADABLE_MODEL_HINT, decodeModel, encodeModel, onnxType, type GraphProto, type ModelProto, type TensorProto } from './proto.js';
import { detectSites } from './sites/index.js';
import type { ModelSites, SiteOverride } from './sites/types.js';
import { TENSOR_VALUES_LIMIT } from './tensor.js';

/** Raw data over this many bytes stays on disk: more elements than tensorValues reads, whatever the element size (≤ 8 bytes). */
export const LEFT_ON_DISK_BYTES = 8 * TENSOR_VALUES_LIMIT;

export interface SourceModel {
  /** Absolute path of the .onnx file. */
  readonly path: string;
  /** sha256 of the .onnx file (the graph and any inline weights; external weight files are not hashed), computed once when first asked. */
  readonly sha256: () => string;
  /**
   * The graph as detection left it (fused ops expanded, exporter no-ops removed), weights on
   * disk. Never rewritten: a variant rewrites a copy (copyModel).
   */
  readonly model: ModelProto;
  readonly sites: ModelSites;
  /** Files holding weights, relative to the model's folder: external data files, and the .onnx file itself when it holds weights. */
  readonly files: readonly string[];
  /** What the graph bounds its inputs by (token ids, prompt length). */
  readonly limits: ModelLimits;
}

/** How a source model's graph is read (injectable, so that a test can count the reads of a run). */
export type GraphReader = (path: string) => ModelProto;

/** Reads a model once for a whole run: graph, sites, weight files; the weights stay on disk. */
export function readSourceModel(path: string, overrides: readonly SiteOverride[] = [], read: GraphReader = readModelGraph): SourceModel {
  const model = read(path);
  const files = checkExternalData(model, path);
  const sites = detectSites(model, path, overrides);
  const limits = modelLimits(model, sites);
  let hash: string | undefined;
  return { path: resolve(path), sha256: () => (hash ??= sha256File(path)), model, sites, files, limits };
}

/** A copy of a graph to rewrite (the weights, left on disk, are referenced by both). */
export function copyModel(model: ModelProto): ModelProto {
  return decodeModel(encodeModel(model));
}

/** Whether an external-data location is the .onnx file at `modelPath` itself, where readModelGraph leaves inline weights. */
const inModelFile = (location: string | undefined, modelPath: string): boolean => location === basename(modelPath);

/** The external data files proper of a model at `modelPath`: `files` less the .onnx file itself. */
export function externalDataFiles(files: readonly string[], modelPath: string): string[] {
  return files.filter((f) => !inModelFile(f, modelPath));
}

/** The tensors of a graph read by readModelGraph that lie in external data files proper (not left in the .onnx file). */
export function externalDataRefs(model: ModelProto, modelPath: string): ExternalRef[] {
  return externalRefs(model).filter((r) => !inModelFile(r.location, modelPath));
}

/** Whether some of the source's weights lie in its .onnx file (as read by readModelGraph). */
export function weightsInGraphFile(source: SourceModel): boolean {
  return source.files.some((f) => inModelFile(f, source.path));
}

/**
 * Puts the bytes of the tensors readModelGraph left in the .onnx file back into `model` (a copy
 * of the source's), so that a variant written to disk is whole without the source file.
 */
export function inlineGraphFileWeights(model: ModelProto, source: SourceModel): void {
  const inGraphFile = new Map(externalRefs(model).filter((r) => inModelFile(r.location, source.path)).map((r) => [r.tensor, r]));
  const fd = openSync(source.path, 'r');
  try {
    for (const t of model.graph?.initializer ?? []) {
      const ref = inGraphFile.get(t.name ?? '');
      if (!ref) continue;
      const raw = Buffer.allocUnsafe(ref.length!); // readModelGraph writes every length
      readSync(fd, raw, 0, raw.length, ref.offset);
      t.rawData = raw;
      t.externalData = [];
      t.dataLocation = DataLocation.DEFAULT;
    }
  } finally {
    closeSync(fd);
  }
}

export function sha256File(path: string): string {
  const hash = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const chunk = Buffer.allocUnsafe(1 << 22);
    for (let read; (read = readSync(fd, chunk, 0, chunk.length, null)) > 0;) hash.update(chunk.subarray(0, read));
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

// ---- reading a graph field by field ----

/** Field numbers on the way to an initializer's bytes (onnx.proto). */
const MODEL_GRAPH = 7;
const GRAPH_INITIALIZER = 5;
const TENSOR_RAW_DATA = 9;
const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_BYTES = 2;
const WIRE_FIXED32 = 5;

/** One field of a message in the file: its tag at `start`, its value at `value` … `end`. */
interface Field { readonly number: number; readonly wire: number; readonly start: number; readonly value: number; readonly end: number }

/** Positioned reads of a file through a window, so that skipped fields are never read. */
class FileBytes {
  private window = Buffer.alloc(0);
  private windowStart = 0;
  constructor(private readonly fd: number, readonly size: number, private readonly source: string) {}

  byte(pos: number): number {
    if (pos < this.windowStart || pos >= this.windowStart + this.window.length) {
      if (pos >= this.size) throw this.truncated();
      this.window = Buffer.allocUnsafe(Math.min(1 << 20, this.size - pos));
      readSync(this.fd, this.window, 0, this.window.length, pos);
      this.windowStart = pos;
    }
    return this.window[pos - this.windowStart]!;
  }

  bytes(start: number, end: number): Buffer {
    const out = Buffer.allocUnsafe(end - start);
    if (readSync(this.fd, out, 0, out.length, start) !== out.length) throw this.truncated();
    return out;
  }

  /** A varint at `pos` and the position after it. */
  varint(pos: number): { value: number; next: number } {
    let value = 0;
    for (let shift = 0, p = pos; shift < 64; shift += 7, p++) {
      const b = this.byte(p);
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return { value, next: p + 1 };
    }
    throw this.unreadable(`a varint at byte ${pos} does not end`);
  }

  *fields(start: number, end: number): Generator<Field> {
    for (let pos = start; pos < end;) {
      const tag = this.varint(pos);
      const wire = tag.value % 8;
      let value = tag.next;
      let next: number;
      if (wire === WIRE_VARINT) next = this.varint(value).next;
      else if (wire === WIRE_FIXED64) next = value + 8;
      else if (wire === WIRE_FIXED32) next = value + 4;
      else if (wire === WIRE_BYTES) {
        const length = this.varint(value);
        value = length.next;
        next = value + length.value;
      } else throw this.unreadable(`wire type ${wire} at byte ${pos}`);
      if (next > end) throw this.truncated();
      yield { number: Math.floor(tag.value / 8), wire, start: pos, value, end: next };
      pos = next;
    }
  }

  unreadable(why: string): UserError {
    return new UserError(`${this.source}: not a readable ONNX model (${why})`, UNREADABLE_MODEL_HINT);
  }

  private truncated(): UserError {
    return this.unreadable('the file ends inside a field: truncated?');
  }
}

/**
 * A message from its fields in the file: those `special` takes are read by it, the others are
 * decoded by protobufjs as they are (a message is the concatenation of its fields).
 */
function readMessage<T>(file: FileBytes, type: string, start: number, end: number, special: (f: Field) => boolean): T {
  const kept: Buffer[] = [];
  for (const f of file.fields(start, end)) if (!special(f)) kept.push(file.bytes(f.start, f.end));
  try {
    return onnxType(type).decode(Buffer.concat(kept)) as unknown as T;
  } catch (e) {
    throw file.unreadable((e as Error).message);
  }
}

/** A `special` that takes the message fields numbered `number` into `into`. */
function collect(number: number, into: Field[]): (f: Field) => boolean {
  return (f) => {
    if (f.number !== number || f.wire !== WIRE_BYTES) return false;
    into.push(f);
    return true;
  };
}

/** An initializer; raw data over LEFT_ON_DISK_BYTES becomes external data at its place in the file. */
function readTensor(file: FileBytes, location: string, start: number, end: number): TensorProto {
  let onDisk: Field | undefined;
  const tensor = readMessage<TensorProto>(file, 'TensorProto', start, end, (f) => {
    if (f.number !== TENSOR_RAW_DATA || f.wire !== WIRE_BYTES || f.end - f.value <= LEFT_ON_DISK_BYTES) return false;
    onDisk = f;
    return true;
  });
  if (onDisk) {
    tensor.dataLocation = DataLocation.EXTERNAL;
    tensor.externalData = [
      { key: 'location', value: location },
      { key: 'offset', value: String(onDisk.value) },
      { key: 'length', value: String(onDisk.end - onDisk.value) },
    ];
  }
  return tensor;
}

/** Reads a model's graph; its large inline weights stay in the file (see the top of this file). */
export function readModelGraph(path: string): ModelProto {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw fsUserError('read the model', path, e, 'give the path of an .onnx file');
  }
  try {
    const stat = fstatSync(fd);
    // a folder opens for reading; reading it is what fails
    if (stat.isDirectory()) throw fsUserError('read the model', path, { code: 'EISDIR' }, 'give the path of an .onnx file');
    const file = new FileBytes(fd, stat.size, path);
    const location = basename(path);
    const graphs: Field[] = [];
    const model = readMessage<ModelProto>(file, 'ModelProto', 0, file.size, collect(MODEL_GRAPH, graphs));
    if (graphs.length > 1) throw file.unreadable('more than one graph field');
    const g = graphs[0];
    if (g) {
      const initializers: Field[] = [];
      const graph = readMessage<GraphProto>(file, 'GraphProto', g.value, g.end, collect(GRAPH_INITIALIZER, initializers));
      graph.initializer = initializers.map((f) => readTensor(file, location, f.value, f.end));
      model.graph = graph;
    }
    checkModel(model, path);
    return model;
  } finally {
    closeSync(fd);
  }
}
