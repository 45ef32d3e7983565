// A synthetic GPT-2-architecture ONNX graph of any size: fused LayerNormalization, MatMul + Add
// linear layers, fused qkv Split, Reshape with 0-dims, tanh gelu, causal Where + padding Add,
// tied-free LM head. With `lazy`, weights carry dims only (external: a sparse file), so a
// GPT-J-sized skeleton costs no memory or disk; otherwise weights are random and the model runs.
// writeSkeleton writes random weights to the external file as they are drawn, a chunk at a
// time, so GPT-2 XL's 6.5 GB are never held in JavaScript.

import { join } from 'node:path';
import { ExternalDataWriter } from '../src/onnx/external.js';
import { DataType, writeModel, type ModelProto, type NodeProto, type TensorProto } from '../src/onnx/proto.js';
import { elementCount, floatAttr, intAttr, intsAttr, makeTensor } from '../src/onnx/tensor.js';

export interface SkeletonShape {
  readonly layers: number;
  readonly heads: number;
  readonly dModel: number;
  readonly vocab: number;
  readonly positions: number;
  readonly dMlp: number;
}

export const GPTJ_SIZE: SkeletonShape = { layers: 28, heads: 16, dModel: 4096, vocab: 50400, positions: 2048, dMlp: 16384 };

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  };
}

export interface SkeletonOptions {
  /** Float weights carry dims only (no values). */
  readonly lazy: boolean;
  readonly seed?: number;
}

/** Makes a float weight: uniform in ±scale/2, drawn in the order the graph asks for them. */
type WeightMaker = (name: string, dims: number[], scale: number) => TensorProto;

/** Weights inside the graph: random values, or dims only when lazy. */
function inlineWeights(opts: SkeletonOptions, rand: () => number): WeightMaker {
  return (name, dims, scale) => (opts.lazy
    ? { name, dataType: DataType.FLOAT, dims }
    : makeTensor(name, DataType.FLOAT, dims, Array.from({ length: elementCount(dims) }, () => rand() * scale)));
}

/** Builds the skeleton graph with its weights inline; with `lazy` the float initializers carry dims only. */
export function buildSkeleton(shape: SkeletonShape, opts: SkeletonOptions): ModelProto {
  return skeletonGraph(shape, inlineWeights(opts, rng(opts.seed ?? 7)));
}

function skeletonGraph(shape: SkeletonShape, makeWeight: WeightMaker): ModelProto {
  const { layers: L, heads: H, dModel: d, vocab: V, positions: P, dMlp: M } = shape;
  const dh = d / H;
  const nodes: NodeProto[] = [];
  const inits: TensorProto[] = [];
  let counter = 0;
  const weight = (name: string, dims: number[], scale: number): string => {
    inits.push(makeWeight(name, dims, scale));
    return name;
  };
  const constant = (dataType: number, dims: number[], values: (number | boolean)[]): string => {
    const name = `const_${counter++}`;
    inits.push(makeTensor(name, dataType, dims, values));
    return name;
  };
  const node = (op: string, inputs: string[], attrs: NodeProto['attribute'] = [], outputs = 1): string[] => {
    const outs = Array.from({ length: outputs }, () => `t${counter++}`);
    nodes.push({ opType: op, input: inputs, output: outs, name: `${op}_${counter++}`, ...(attrs?.length ? { attribute: attrs } : {}) });
    return outs;
  };
  const one = (op: string, inputs: string[], attrs: NodeProto['attribute'] = []): string => node(op, inputs, attrs)[0]!;
  const linear = (x: string, name: string, din: number, dout: number): string =>
    one('Add', [one('MatMul', [x, weight(`${name}.weight`, [din, dout], 0.2 / Math.sqrt(din))]), weight(`${name}.bias`, [dout], 0.02)]);
  const layerNorm = (x: string, name: string): string =>
    one('LayerNormalization', [x, weight(`${name}.weight`, [d], 0.1), weight(`${name}.bias`, [d], 0.1)], [intAttr('axis', -1), floatAttr('epsilon', 1e-5)]);

  const F = DataType.FLOAT;
  // embeddings: tokens + positions (position_ids input, Optimum style)
  const tok = one('Gather', [weight('wte.weight', [V, d], 1), 'input_ids']);
  const pos = one('Gather', [weight('wpe.weight', [P, d], 0.1), 'position_ids']);
  let r = one('Add', [tok, pos]);
  // padding mask [b, 1, 1, s]: (1 - mask) · lowest
  const m = one('Cast', ['attention_mask'], [intAttr('to', F)]);
  const pad = one('Unsqueeze', [one('Mul', [one('Sub', [constant(F, [], [1]), m]), constant(F, [], [-3.4028234663852886e38])]), constant(DataType.INT64, [2], [1, 2])]);
  // causal [1, 1, s, s] sliced from a P×P lower triangle
  const tril: boolean[] = [];
  for (let i = 0; i < P; i++) for (let j = 0; j < P; j++) tril.push(j <= i);
  const causalAll = constant(DataType.BOOL, [1, 1, P, P], tril);
  const seqLen = one('Slice', [one('Shape', ['input_ids']), constant(DataType.INT64, [1], [1]), constant(DataType.INT64, [1], [2])]);
  const ends = one('Concat', [seqLen, seqLen], [intAttr('axis', 0)]);
  const causal = one('Slice', [causalAll, constant(DataType.INT64, [2], [0, 0]), ends, constant(DataType.INT64, [2], [2, 3])]);
  const lowest = constant(F, [], [-3.4028234663852886e38]);
  const scale = constant(F, [], [Math.sqrt(dh)]);
  const headShape = constant(DataType.INT64, [4], [0, 0, H, dh]);
  const mergeShape = constant(DataType.INT64, [3], [0, 0, d]);
  const splitSizes = constant(DataType.INT64, [3], [d, d, d]);

  for (let l = 0; l < L; l++) {
    const a = layerNorm(r, `h.${l}.ln_1`);
    const qkv = linear(a, `h.${l}.attn.c_attn`, d, 3 * d);
    const [qs, ks, vs] = node('Split', [qkv, splitSizes], [intAttr('axis', 2)], 3) as [string, string, string];
    const q = one('Transpose', [one('Reshape', [qs, headShape])], [intsAttr('perm', [0, 2, 1, 3])]);
    const kT = one('Transpose', [one('Reshape', [ks, headShape])], [intsAttr('perm', [0, 2, 3, 1])]);
    const v = one('Transpose', [one('Reshape', [vs, headShape])], [intsAttr('perm', [0, 2, 1, 3])]);
    const s = one('Div', [one('MatMul', [q, kT]), scale]);
    const masked = one('Add', [one('Where', [causal, s, lowest]), pad]);
    const p = one('Softmax', [masked], [intAttr('axis', -1)]);
    const ctx = one('Reshape', [one('Transpose', [one('MatMul', [p, v])], [intsAttr('perm', [0, 2, 1, 3])]), mergeShape]);
    r = one('Add', [r, linear(ctx, `h.${l}.attn.c_proj`, d, d)]);
    const b = layerNorm(r, `h.${l}.ln_2`);
    const pre = linear(b, `h.${l}.mlp.c_fc`, d, M);
    const cube = one('Mul', [one('Pow', [pre, constant(F, [], [3])]), constant(F, [], [0.044715])]);
    const inner = one('Mul', [one('Add', [pre, cube]), constant(F, [], [Math.sqrt(2 / Math.PI)])]);
    const act = one('Mul', [one('Mul', [pre, constant(F, [], [0.5])]), one('Add', [one('Tanh', [inner]), constant(F, [], [1])])]);
    r = one('Add', [r, linear(act, `h.${l}.mlp.c_proj`, M, d)]);
  }
  const f = layerNorm(r, 'ln_f');
  nodes.push({ opType: 'MatMul', input: [f, weight('lm_head.weight', [d, V], 0.2 / Math.sqrt(d))], output: ['logits'], name: 'lm_head' });

  const io = (name: string, elemType: number, dims: (number | string)[]) => ({
    name, type: { tensorType: { elemType, shape: { dim: dims.map((x) => (typeof x === 'number' ? { dimValue: x } : { dimParam: x })) } } },
  });
  return {
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    producerName: 'dissect-bench-skeleton',
    graph: {
      name: 'skeleton',
      node: nodes,
      initializer: inits,
      input: [io('input_ids', DataType.INT64, ['batch', 'seq']), io('attention_mask', DataType.INT64, ['batch', 'seq']), io('position_ids', DataType.INT64, ['batch', 'seq'])],
      output: [io('logits', F, ['batch', 'seq', V])],
    },
  };
}

/** Weights of at least this many bytes go to the external file. */
const EXTERNAL_BYTES = 1024;
/** Floats drawn and written at a time. */
const CHUNK = 1 << 20;

/**
 * Writes `model.onnx` + `weights.bin` into `dir`: weights of at least 1 KiB external (each at
 * a 4096-byte boundary; a sparse hole when lazy), smaller ones inline. The values equal
 * buildSkeleton's for the same seed.
 */
export function writeSkeleton(dir: string, shape: SkeletonShape, opts: SkeletonOptions): string {
  const rand = rng(opts.seed ?? 7);
  const inline = inlineWeights(opts, rand);
  const file = new ExternalDataWriter(dir, 'weights.bin');
  try {
    const model = skeletonGraph(shape, (name, dims, scale) => {
      const count = elementCount(dims);
      if (4 * count < EXTERNAL_BYTES) return inline(name, dims, scale);
      return file.place({ name, dataType: DataType.FLOAT, dims }, 4 * count, opts.lazy ? undefined : (write) => {
        const chunk = new Float32Array(Math.min(count, CHUNK));
        for (let done = 0; done < count; done += chunk.length) {
          const part = chunk.subarray(0, Math.min(chunk.length, count - done));
          for (let i = 0; i < part.length; i++) part[i] = rand() * scale;
          write(new Uint8Array(part.buffer, 0, part.byteLength), 4 * done);
        }
      });
    });
    const path = join(dir, 'model.onnx');
    writeModel(path, model);
    return path;
  } finally {
    file.close();
  }
}
