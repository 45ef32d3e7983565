// External data: models over 2 GB keep initializers in files beside the graph
// (data_location = EXTERNAL, external_data {location, offset, length}). dissect reads the
// graph only; a variant refers to the same weight files. onnxruntime resolves `location`
// against the variant's own folder and refuses paths that leave it (symlinks included), so
// the weight files are hardlinked next to the variant when possible, else the variant is
// written next to the source model. Weight bytes are never read or copied.

import { existsSync, linkSync, mkdirSync, realpathSync, statSync, unlinkSync } from 'node:fs';
import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { dirname, isAbsolute, join, normalize, relative, resolve, sep } from 'node:path';
import { UserError } from '../errors.js';
import { DataLocation, type GraphProto, type ModelProto, type TensorProto } from './proto.js';
import { elementCount, tensorDims } from './tensor.js';
import type { OutputFolder } from '../output/folder.js';

export interface ExternalRef {
  readonly tensor: string;
  readonly location: string;
  readonly offset: number;
  readonly length?: number;
}

function entry(t: TensorProto, key: string): string | undefined {
  return t.externalData?.find((e) => e.key === key)?.value;
}

function* graphTensors(g: GraphProto | undefined): Generator<TensorProto> {
  if (!g) return;
  yield* g.initializer ?? [];
  for (const s of g.sparseInitializer ?? []) {
    if (s.values) yield s.values;
    if (s.indices) yield s.indices;
  }
  for (const n of g.node ?? []) {
    for (const a of n.attribute ?? []) {
      if (a.t) yield a.t;
      yield* a.tensors ?? [];
      yield* graphTensors(a.g);
      for (const sub of a.graphs ?? []) yield* graphTensors(sub);
    }
  }
}

/** Every tensor of the model (graph, subgraphs, functions) stored as external data. */
export function externalRefs(model: ModelProto): ExternalRef[] {
  const refs: ExternalRef[] = [];
  const visit = (t: TensorProto): void => {
    if (t.dataLocation !== DataLocation.EXTERNAL) return;
    const length = entry(t, 'length');
    refs.push({
      tensor: t.name ?? '',
      location: entry(t, 'location') ?? '',
      offset: Number(entry(t, 'offset') ?? 0),
      ...(length !== undefined ? { length: Number(length) } : {}),
    });
  };
  for (const t of graphTensors(model.graph)) visit(t);
  for (const f of model.functions ?? []) for (const n of f.node ?? []) for (const a of n.attribute ?? []) if (a.t) visit(a.t);
  return refs;
}

/** `p` is `root` or lies below it. A name that merely starts with two dots (`..model.onnx_data`) is inside. */
function inside(root: string, p: string): boolean {
  const rel = relative(root, p);
  return rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

/**
 * Checks every external location: relative, inside the model's folder (after resolving
 * symlinks), existing and long enough for offset + length (by stat; nothing is read).
 * Returns the distinct files, relative to the model's folder.
 */
export function checkExternalData(model: ModelProto, modelPath: string): string[] {
  const dir = dirname(resolve(modelPath));
  const realDir = realpathSync(dir);
  const files = new Map<string, number>();
  for (const ref of externalRefs(model)) {
    const loc = ref.location;
    const where = `${modelPath}: initializer '${ref.tensor}' has external data location '${loc}'`;
    if (!loc) throw new UserError(`${modelPath}: initializer '${ref.tensor}' is marked external but has no location`);
    if (isAbsolute(loc) || /^[a-zA-Z]:[\\/]/.test(loc) || loc.startsWith('\\')) {
      throw new UserError(`${where}, an absolute path; external data must lie inside the model's folder`);
    }
    const norm = normalize(loc.replace(/\\/g, '/'));
    if (norm === '..' || norm.startsWith(`..${sep}`) || norm.split(/[\\/]/).includes('..')) {
      throw new UserError(`${where}, which leaves the model's folder; onnxruntime refuses such paths`);
    }
    const full = join(dir, norm);
    if (!existsSync(full)) throw new UserError(`${where}, but ${full} does not exist`);
    const real = realpathSync(full);
    if (!inside(realDir, real)) {
      throw new UserError(`${where}, which resolves (through a symlink) to ${real}, outside the model's folder; onnxruntime refuses it`);
    }
    const stat = statSync(full);
    if (!stat.isFile()) throw new UserError(`${where}, but ${full} is ${stat.isDirectory() ? 'a folder' : 'not a regular file'}`);
    const size = stat.size;
    const end = ref.offset + (ref.length ?? 0);
    if (end > size) throw new UserError(`${where}: it needs bytes up to ${end} but the file has ${size}`);
    files.set(norm, size);
  }
  return [...files.keys()];
}

/**
 * Makes `files` (relative to `srcDir`) available in `outDir` under the same relative paths
 * as hardlinks. Returns false (and removes any links it made) when the filesystem refuses.
 */
export function hardlinkWeights(files: readonly string[], srcDir: string, out: OutputFolder): boolean {
  const made: string[] = [];
  try {
    for (const f of files) {
      const src = join(srcDir, f);
      const dst = out.file(f);
      if (resolve(src) === resolve(dst)) continue;
      mkdirSync(dirname(dst), { recursive: true });
      if (existsSync(dst)) {
        const a = statSync(src);
        const b = statSync(dst);
        if (a.ino === b.ino && a.dev === b.dev) continue;
        if (!out.owns(f)) throw new UserError(`cannot link the weights file ${f} into ${out.dir}: a file of that name is in the way`, 'dissect never replaces files it did not write: move it, or choose another --out');
        unlinkSync(dst);
      }
      out.claim(f);
      linkSync(src, dst);
      made.push(dst);
    }
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EXDEV' || code === 'EPERM' || code === 'ENOTSUP' || code === 'EMLINK' || code === 'EACCES' || code === 'ENOSYS') {
      for (const m of made) { try { unlinkSync(m); } catch { /* best effort */ } }
      return false;
    }
    throw e;
  }
}

const BYTES_PER_ELEMENT: Record<number, number> = { 1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2 };

/**
 * An external-data file being written: each tensor's bytes start at a 4096-byte boundary, and
 * close() gives the file its final size (sparse where nothing was written).
 */
export class ExternalDataWriter {
  private offset = 0;
  private readonly fd: number;

  constructor(dir: string, readonly fileName: string) {
    this.fd = openSync(join(dir, fileName), 'w');
  }

  /**
   * Places a tensor of `size` bytes, which `fill` writes (`at`: a byte offset within the
   * tensor; nothing written: a hole), and makes `t` external data there, in place.
   */
  place(t: TensorProto, size: number, fill?: (write: (bytes: Uint8Array, at: number) => void) => void): TensorProto {
    const offset = this.offset;
    fill?.((bytes, at) => { writeSync(this.fd, bytes, 0, bytes.length, offset + at); });
    this.offset += Math.ceil(size / 4096) * 4096;
    t.rawData = new Uint8Array(0);
    t.dataLocation = DataLocation.EXTERNAL;
    t.externalData = [
      { key: 'location', value: this.fileName },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(size) },
    ];
    return t;
  }

  close(): void {
    try {
      ftruncateSync(this.fd, this.offset);
    } finally {
      closeSync(this.fd);
    }
  }
}

/**
 * Moves the raw data of initializers of at least `threshold` bytes into one external file
 * `fileName` in `dir`, in place. For tests and benchmarks.
 */
export function externalizeInitializers(model: ModelProto, dir: string, fileName: string, opts: { threshold?: number } = {}): void {
  const threshold = opts.threshold ?? 1024;
  const file = new ExternalDataWriter(dir, fileName);
  try {
    for (const t of model.graph?.initializer ?? []) {
      const size = elementCount(tensorDims(t)) * (BYTES_PER_ELEMENT[t.dataType ?? 0] ?? 0);
      if (size < threshold || size === 0) continue;
      const raw = t.rawData;
      if (!raw || raw.length !== size) throw new Error(`internal: externalize: '${t.name}' has no raw data of ${size} bytes`);
      file.place(t, size, (write) => write(raw, 0));
    }
  } finally {
    file.close();
  }
}
