// onnxruntime-node sessions on CPU or CUDA, and decoding of their outputs.
// - Every session gets explicit thread counts: each session owns a thread pool, and this
//   project runs on 2 cores (tests use 1).
// - `cuda` / `cuda:N` use the CUDA execution provider with that device id. The npm package
//   ships CPU binaries only; the CUDA provider libraries come from onnxruntime-node's
//   install script, which this project skips by default (.npmrc). When they are missing the
//   result is a RunError that says so and how to opt in.
// - fp16 outputs arrive as raw IEEE half bit patterns (Uint16Array) and are decoded to
//   Float32Array here.

import { existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { runError, type RunError } from './errors.js';
import { halfToFloat32Array } from './half.js';
import type { VariantManifest } from '../onnx/variant.js';

// onnxruntime's telemetry reads the machine id, keeps an event database under ~/.cache (model
// producer, graph name, opsets) that its client may upload, and leaves a mat-debug-<pid>.log in
// the temp folder. It reads this variable when it creates its environment, at the first session;
// onnxruntime-node has no API for it. Every session of dissect is created below.
process.env['ORT_DISABLE_TELEMETRY'] = '1';

export type Device = 'cpu' | 'cuda' | `cuda:${number}`;

export interface SessionOptions {
  /** Default 'cpu'. */
  readonly device?: Device | string;
  /** Intra-op threads (default 1). */
  readonly threads?: number;
  /** Inter-op threads (default 1; execution is sequential). */
  readonly interOpThreads?: number;
  /** onnxruntime graph optimizations (default 'all', onnxruntime's own default). */
  readonly graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  /**
   * onnxruntime session config entries (flat keys), e.g. a manifest's weights.sessionConfig:
   * { 'session.model_external_initializers_file_folder_path': folder } lets a variant held
   * in memory read its external weights from the source model's folder.
   */
  readonly sessionConfig?: Readonly<Record<string, string>>;
}

export type ParsedDevice = { readonly kind: 'cpu' } | { readonly kind: 'cuda'; readonly deviceId: number };

export function parseDevice(device: string): ParsedDevice | RunError {
  if (device === 'cpu') return { kind: 'cpu' };
  if (device === 'cuda') return { kind: 'cuda', deviceId: 0 };
  const m = /^cuda:(\d+)$/.exec(device);
  if (m) return { kind: 'cuda', deviceId: Number(m[1]) };
  return runError('device', `unknown device ${JSON.stringify(device)}`, { hint: 'use cpu, cuda or cuda:N' });
}

/** A decoded output: fp16 becomes float32; other types keep onnxruntime's typed array. */
export interface DecodedTensor {
  readonly dims: readonly number[];
  /** onnxruntime's type of the output ('float16' for decoded halves). */
  readonly sourceType: string;
  readonly data: Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | BigUint64Array;
}

export interface RunSession {
  readonly session: ort.InferenceSession;
  readonly device: string;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Run and decode every output (fp16 → float32). */
  run(feeds: Record<string, ort.Tensor>, fetches?: readonly string[]): Promise<Record<string, DecodedTensor>>;
  release(): Promise<void>;
}

const CUDA_HINT = 'the CUDA execution provider is not installed: onnxruntime-node ships CPU binaries only, and this project runs no '
  + 'dependency install scripts. On a CUDA 12 machine: `ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node --ignore-scripts=false`. '
  + 'See the README, section GPUs. Or run with --device cpu.';

/** The folder of onnxruntime-node's native binding for this platform. */
function bindingFolder(): string | undefined {
  try {
    const req = createRequire(import.meta.url);
    const main = req.resolve('onnxruntime-node'); // .../onnxruntime-node/dist/index.js
    return join(dirname(dirname(main)), 'bin', 'napi-v6', process.platform, process.arch);
  } catch {
    return undefined;
  }
}

/** Why CUDA cannot be used here, or undefined if it may be. */
export function cudaUnavailable(): string | undefined {
  const backends = ort.listSupportedBackends();
  const cuda = backends.find((b) => b.name === 'cuda');
  if (!cuda) return `this onnxruntime-node build (${process.platform}/${process.arch}) has no CUDA execution provider`;
  if (cuda.bundled) return undefined;
  const folder = bindingFolder();
  const lib = process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
  if (folder && existsSync(join(folder, lib))) return undefined;
  return `${lib} is not installed${folder ? ` in ${folder}` : ''}`;
}

/**
 * The session config a variant needs on `device`: its weights' (where onnxruntime finds them),
 * and, for a variant with the clean stream in the graph on the CPU, no prepacking: onnxruntime
 * packs each matrix product's weights for its own node, so the clean copy's nodes would hold
 * them packed a second time (XL's shape: 9.5 GB peak, 7.0 GB unpacked, about 30% slower; the
 * CPU's default plan is the host's).
 */
export function variantSessionConfig(manifest: Pick<VariantManifest, 'weights' | 'cleanStream'>, device = 'cpu'): Record<string, string> {
  const parsed = parseDevice(device);
  const cpu = 'code' in parsed || parsed.kind === 'cpu';
  return { ...manifest.weights.sessionConfig, ...(manifest.cleanStream && cpu ? { 'session.disable_prepacking': '1' } : {}) };
}

/** A session of a built variant, with the config it needs (variantSessionConfig). */
export function createVariantSession(
  variant: { readonly bytes: Uint8Array; readonly manifest: Pick<VariantManifest, 'weights' | 'cleanStream'> }, opts: Omit<SessionOptions, 'sessionConfig'> = {},
): Promise<RunSession | RunError> {
  return createSession(variant.bytes, { ...opts, sessionConfig: variantSessionConfig(variant.manifest, opts.device) });
}

export async function createSession(model: string | Uint8Array, opts: SessionOptions = {}): Promise<RunSession | RunError> {
  const deviceName = opts.device ?? 'cpu';
  const device = parseDevice(deviceName);
  if ('code' in device) return device;
  if (typeof model === 'string' && (!existsSync(model) || statSync(model).isDirectory())) {
    return runError('model', `model file not found: ${model}`, { file: model });
  }
  const threads = opts.threads ?? 1;
  const inter = opts.interOpThreads ?? 1;
  for (const [name, v] of [['threads', threads], ['interOpThreads', inter]] as const) {
    if (!Number.isInteger(v) || v < 1) return runError('device', `${name} must be a positive integer, got ${v}`);
  }
  const options: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: threads,
    interOpNumThreads: inter,
    executionMode: 'sequential',
    graphOptimizationLevel: opts.graphOptimizationLevel ?? 'all',
    logSeverityLevel: 3,
    executionProviders: device.kind === 'cuda' ? [{ name: 'cuda', deviceId: device.deviceId }] : ['cpu'],
  };
  if (opts.sessionConfig) options.extra = { ...opts.sessionConfig };
  if (device.kind === 'cuda') {
    const why = cudaUnavailable();
    if (why) return runError('device', `--device ${deviceName}: ${why}`, { hint: CUDA_HINT });
  }
  let session: ort.InferenceSession;
  try {
    session = typeof model === 'string'
      ? await ort.InferenceSession.create(model, options)
      : await ort.InferenceSession.create(model, options);
  } catch (e) {
    const msg = (e as Error).message;
    const where = typeof model === 'string' ? model : `<${model.byteLength} bytes>`;
    if (device.kind === 'cuda') {
      const missing = /shared library|providers_cuda|providers_shared|libcudart|libcublas|libcudnn|CUDA/i.test(msg);
      return runError('device', `--device ${deviceName}: onnxruntime could not start the CUDA execution provider for ${where}: ${firstLine(msg)}`,
        { hint: missing ? CUDA_HINT : 'check the CUDA 12 / cuDNN 9 installation and the device number' });
    }
    return runError('model', `onnxruntime cannot load ${where}: ${firstLine(msg)}`, typeof model === 'string' ? { file: model } : {});
  }
  return {
    session,
    device: deviceName,
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    async run(feeds, fetches) {
      const out = fetches ? await session.run(feeds, [...fetches]) : await session.run(feeds);
      const decoded: Record<string, DecodedTensor> = {};
      for (const [name, value] of Object.entries(out)) decoded[name] = decodeTensor(value as ort.Tensor);
      return decoded;
    },
    release: () => session.release(),
  };
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.trim();
}

export interface DoctorInfo {
  readonly ortVersion: string;
  readonly backends: readonly { readonly name: string; readonly bundled: boolean }[];
  /** NVIDIA_TF32_OVERRIDE as set in the environment ('0' keeps fp32 matmuls exact on GPU). */
  readonly tf32Override: string | undefined;
  /** Why --device cuda would fail here, if it would. */
  readonly cudaUnavailable: string | undefined;
}

export function doctorInfo(): DoctorInfo {
  return {
    ortVersion: ort.env.versions.node ?? ort.env.versions.common,
    backends: ort.listSupportedBackends().map((b) => ({ name: b.name, bundled: b.bundled })),
    tf32Override: process.env['NVIDIA_TF32_OVERRIDE'],
    cudaUnavailable: cudaUnavailable(),
  };
}

export function decodeTensor(t: ort.Tensor): DecodedTensor {
  const dims = [...t.dims];
  if (t.type === 'float16') {
    const d = t.data as unknown;
    const data = d instanceof Uint16Array ? halfToFloat32Array(d) : Float32Array.from(d as ArrayLike<number>);
    return { dims, sourceType: 'float16', data };
  }
  if (t.type === 'string') throw new Error('string tensors are not supported');
  return { dims, sourceType: t.type, data: t.data as DecodedTensor['data'] };
}

/** int64 values to numbers (throws beyond 2^53, which no token id or rank reaches). */
export function int64ToNumbers(data: BigInt64Array): number[] {
  return Array.from(data, (v) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n)) throw new RangeError(`int64 value ${v} does not fit a number`);
    return n;
  });
}
