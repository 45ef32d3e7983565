// onnxruntime's fused attention ops one at a time: a graph of the op alone, run in onnxruntime
// as written and after expandFusedOps, must give the same outputs, for the inputs and attributes
// the expansion reproduces (in-op rotary, half and interleaved, partial; packed q | k | v; padded
// prompts; a past with rows of different lengths; local windows, soft-caps; MultiHeadAttention's
// bias, padding mask, attention bias and past). The real exports with these ops are checked in
// fused.test.ts and real-exports.test.ts; what the expansion does not reproduce is refused here.

import test from 'ava';
import ort from 'onnxruntime-node';
import { UserError } from '../../src/errors.js';
import { expandFusedOps } from '../../src/onnx/expand-fused.js';
import { tensorValueInfo } from '../../src/onnx/graph.js';
import { DataType, encodeModel, type AttributeProto, type ModelProto, type TensorProto } from '../../src/onnx/proto.js';
import { floatAttr, intAttr, makeTensor } from '../../src/onnx/tensor.js';
import { maxAbs, maxAbsDiff, numbers, session } from './helpers.js';

const MS = 'com.microsoft';

/** An input of the op: fed at run time, or a constant of the graph. */
interface Operand { readonly dtype: number; readonly dims: readonly number[]; readonly values: readonly number[]; readonly constant?: boolean }

/** Deterministic values in (−scale, scale). */
const wave = (n: number, seed: number, scale = 1): number[] => Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed * 78.233) * scale);
const count = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);
const floats = (dims: readonly number[], seed: number, scale = 1): Operand => ({ dtype: DataType.FLOAT, dims, values: wave(count(dims), seed, scale) });
const int32 = (dims: readonly number[], values: readonly number[]): Operand => ({ dtype: DataType.INT32, dims, values });
const int64s = (dims: readonly number[], values: readonly number[], constant = false): Operand => ({ dtype: DataType.INT64, dims, values, constant });

/** cos / sin tables [positions, width] of angles p · 10000^(−i / width), constants of the graph. */
function rotaryCaches(positions: number, width: number): [Operand, Operand] {
  const angle = (k: number): number => Math.floor(k / width) * 10000 ** (-(k % width) / width);
  const table = (f: (a: number) => number): Operand => ({ dtype: DataType.FLOAT, dims: [positions, width], values: Array.from({ length: positions * width }, (_, k) => f(angle(k))), constant: true });
  return [table(Math.cos), table(Math.sin)];
}

/** A model of one com.microsoft node; absent inputs are undefined, outputs are read by name. */
function opModel(op: string, attrs: AttributeProto[], inputs: readonly (Operand | undefined)[], outputs: readonly string[]): { model: ModelProto; feeds: Record<string, ort.Tensor> } {
  const names = inputs.map((x, i) => (x ? `in${i}` : ''));
  const initializer: TensorProto[] = [];
  const feeds: Record<string, ort.Tensor> = {};
  inputs.forEach((x, i) => {
    if (!x) return;
    if (x.constant) initializer.push(makeTensor(names[i]!, x.dtype, x.dims, x.values));
    else if (x.dtype === DataType.FLOAT) feeds[names[i]!] = new ort.Tensor('float32', Float32Array.from(x.values), x.dims);
    else if (x.dtype === DataType.INT32) feeds[names[i]!] = new ort.Tensor('int32', Int32Array.from(x.values), x.dims);
    else feeds[names[i]!] = new ort.Tensor('int64', BigInt64Array.from(x.values.map(BigInt)), x.dims);
  });
  const graphInputs = inputs.flatMap((x, i) => (x && !x.constant ? [tensorValueInfo(names[i]!, x.dtype, x.dims)] : []));
  const model: ModelProto = {
    irVersion: 9, opsetImport: [{ domain: '', version: 17 }, { domain: MS, version: 1 }],
    graph: {
      name: op, node: [{ opType: op, domain: MS, name: `${op}_0`, input: names, output: [...outputs], attribute: attrs }],
      input: graphInputs, initializer, output: outputs.filter(Boolean).map((o) => tensorValueInfo(o, DataType.FLOAT, undefined)),
    },
  };
  return { model, feeds };
}

/** The op's outputs in onnxruntime, and the expanded graph's (which must hold no com.microsoft node). */
async function runBoth(op: string, attrs: AttributeProto[], inputs: readonly (Operand | undefined)[], outputs: readonly string[]) {
  const { model, feeds } = opModel(op, attrs, inputs, outputs);
  const expanded = structuredClone(model);
  const counts = expandFusedOps(expanded, 'op.onnx');
  const [fused, plain] = await Promise.all([model, expanded].map(async (m) => (await session(encodeModel(m))).run(feeds)));
  return { counts, expanded, fused: fused!, plain: plain! };
}

const close = (got: ort.Tensor, want: ort.Tensor): boolean => maxAbsDiff(numbers(got), numbers(want)) <= 1e-5 * Math.max(1, maxAbs(numbers(want)));

/** Batch row `row` of a tensor's values. */
const rowOf = (t: ort.Tensor, row: number): number[] => {
  const all = numbers(t);
  const size = all.length / (t.dims[0] as number);
  return all.slice(row * size, (row + 1) * size);
};

const GQA_OUTPUTS = ['output', 'present_key', 'present_value'];

test('GroupQueryAttention, rotary inside (half), 2 key/value heads of 4, a padded prompt: the expansion computes what onnxruntime does', async (t) => {
  const [B, S, H, KV, dh] = [2, 5, 4, 2, 16];
  const [cos, sin] = rotaryCaches(16, dh / 2);
  const { counts, expanded, fused, plain } = await runBoth('GroupQueryAttention', [intAttr('num_heads', H), intAttr('kv_num_heads', KV), intAttr('do_rotary', 1)], [
    floats([B, S, H * dh], 1, 2), floats([B, S, KV * dh], 2, 2), floats([B, S, KV * dh], 3), undefined, undefined,
    int32([B], [S - 1, 2]), int32([], [S]), cos, sin,
  ], GQA_OUTPUTS);
  t.deepEqual(counts, { GroupQueryAttention: 1 });
  t.false(expanded.graph!.node!.some((n) => n.domain === MS));
  for (const o of GQA_OUTPUTS) t.true(close(plain[o]!, fused[o]!), o);
  t.true(maxAbs(numbers(fused.output!)) > 0.1, 'real numbers were compared');
});

test('GroupQueryAttention, interleaved rotary on half the head, a local window and a soft-cap: the expansion computes what onnxruntime does', async (t) => {
  const [B, S, H, KV, dh] = [2, 6, 2, 1, 32];
  const [cos, sin] = rotaryCaches(16, 8); // 16 of 32 units rotated
  const { fused, plain } = await runBoth('GroupQueryAttention', [
    intAttr('num_heads', H), intAttr('kv_num_heads', KV), intAttr('do_rotary', 1), intAttr('rotary_interleaved', 1),
    intAttr('local_window_size', 2), floatAttr('softcap', 3), floatAttr('scale', 0.4),
  ], [floats([B, S, H * dh], 4, 2), floats([B, S, KV * dh], 5, 2), floats([B, S, KV * dh], 6), undefined, undefined, int32([B], [S - 1, 3]), int32([], [S]), cos, sin], GQA_OUTPUTS);
  for (const o of GQA_OUTPUTS) t.true(close(plain[o]!, fused[o]!), o);
});

test('GroupQueryAttention on packed q | k | v, without rotary: the expansion splits it as onnxruntime does', async (t) => {
  const [B, S, H, KV, dh] = [2, 5, 4, 2, 8];
  const { fused, plain } = await runBoth('GroupQueryAttention', [intAttr('num_heads', H), intAttr('kv_num_heads', KV)],
    [floats([B, S, (H + 2 * KV) * dh], 7, 2), undefined, undefined, undefined, undefined, int32([B], [S - 1, 1]), int32([], [S])], GQA_OUTPUTS);
  for (const o of GQA_OUTPUTS) t.true(close(plain[o]!, fused[o]!), o);
});

test('GroupQueryAttention decoding one token against pasts of different lengths: rows see their own past and the token, at its position', async (t) => {
  const [B, P, H, KV, dh] = [2, 4, 4, 2, 16];
  const [cos, sin] = rotaryCaches(16, dh / 2);
  // row 0's past fills past_key; row 1 has 2 entries (seqlens_k = past + 1 − 1)
  const { fused, plain } = await runBoth('GroupQueryAttention', [intAttr('num_heads', H), intAttr('kv_num_heads', KV), intAttr('do_rotary', 1)], [
    floats([B, 1, H * dh], 8, 2), floats([B, 1, KV * dh], 9, 2), floats([B, 1, KV * dh], 10), floats([B, KV, P, dh], 11, 2), floats([B, KV, P, dh], 12),
    int32([B], [P, 2]), int32([], [P + 1]), cos, sin,
  ], GQA_OUTPUTS);
  t.true(close(plain.output!, fused.output!), 'output');
  // onnxruntime writes a shorter row's new keys right after its past; the expansion keeps past_key whole before them
  for (const o of ['present_key', 'present_value']) t.true(maxAbsDiff(rowOf(plain[o]!, 0), rowOf(fused[o]!, 0)) <= 1e-5 * maxAbs(rowOf(fused[o]!, 0)), o);
});

test('MultiHeadAttention with its bias, a key padding mask, an attention bias and a past: the expansion computes what onnxruntime does', async (t) => {
  const [B, S, P, H, dh] = [2, 3, 2, 2, 8];
  const D = H * dh;
  const outputs = ['output', 'present_key', 'present_value'];
  const { counts, fused, plain } = await runBoth('MultiHeadAttention', [intAttr('num_heads', H), intAttr('unidirectional', 1)], [
    floats([B, S, D], 13, 2), floats([B, S, D], 14, 2), floats([B, S, D], 15), { ...floats([3 * D], 16, 0.5), constant: true },
    int32([B, P + S], [1, 1, 1, 1, 1, 0, 1, 1, 1, 0]), floats([1, H, S, P + S], 17), floats([B, H, P, dh], 18, 2), floats([B, H, P, dh], 19),
  ], outputs);
  t.deepEqual(counts, { MultiHeadAttention: 1 });
  for (const o of outputs) t.true(close(plain[o]!, fused[o]!), o);
});

test('RotaryEmbedding on [b, heads, s, dh] at given positions, interleaved, and on [b, s, d] from a first position, half the head rotated', async (t) => {
  const [cos, sin] = rotaryCaches(20, 8);
  const fourD = await runBoth('RotaryEmbedding', [intAttr('interleaved', 1)], [floats([2, 3, 4, 16], 20), int64s([2, 4], [0, 1, 2, 3, 7, 9, 11, 19]), cos, sin], ['output']);
  t.true(close(fourD.plain.output!, fourD.fused.output!), '4-D');
  const [cosHalf, sinHalf] = rotaryCaches(20, 4);
  const threeD = await runBoth('RotaryEmbedding', [intAttr('num_heads', 2), intAttr('rotary_embedding_dim', 8)],
    [floats([2, 5, 32], 21), int64s([1], [3], true), cosHalf, sinHalf], ['output']);
  t.true(close(threeD.plain.output!, threeD.fused.output!), '3-D');
  t.true(maxAbsDiff(numbers(threeD.plain.output!), floats([2, 5, 32], 21).values) > 0.1, 'the rotation changed the values');
});

test('what the expansion does not reproduce is refused, naming the node and why', (t) => {
  const refusal = (op: string, attrs: AttributeProto[], inputs: readonly (Operand | undefined)[], message: RegExp): void => {
    const { model } = opModel(op, attrs, inputs, ['output']);
    const e = t.throws(() => expandFusedOps(model, 'op.onnx'), { instanceOf: UserError })!;
    t.regex(e.message, message);
  };
  const qkv = [floats([1, 2, 16], 0), floats([1, 2, 16], 1), floats([1, 2, 16], 2)];
  const lengths = [int32([1], [1]), int32([], [2])];
  refusal('GroupQueryAttention', [intAttr('num_heads', 2), intAttr('kv_num_heads', 2), intAttr('smooth_softmax', 1)], [...qkv, undefined, undefined, ...lengths],
    /^op\.onnx: node 'GroupQueryAttention_0' is the fused com\.microsoft GroupQueryAttention: it uses a smooth softmax/);
  refusal('GroupQueryAttention', [intAttr('num_heads', 2), intAttr('kv_num_heads', 2), intAttr('causal', 0)], [...qkv, undefined, undefined, ...lengths], /it is bidirectional \(causal = 0\)/);
  refusal('GroupQueryAttention', [intAttr('num_heads', 2), intAttr('kv_num_heads', 2)], [...qkv, undefined, undefined, ...lengths, undefined, undefined, int64s([1, 2], [0, 1])], /it has a position_ids input/);
  refusal('MultiHeadAttention', [intAttr('num_heads', 2)], [floats([1, 2, 2, 3, 8], 0)], /its query holds packed q \| k \| v/);
  refusal('RotaryEmbedding', [floatAttr('scale', 2)], [floats([1, 2, 16], 0), int64s([1], [0], true), ...rotaryCaches(4, 8)], /it scales the rotated values/);
});
