// Graphs saved after onnxruntime's transformer optimizer (or written for onnxruntime, as
// onnxruntime-genai's models are) fold the tensors dissect reads and rewrites into com.microsoft
// ops: SkipLayerNormalization swallows the residual add and the projection bias, FastGelu /
// BiasGelu the MLP pre-activations, Attention, MultiHeadAttention and GroupQueryAttention the
// heads, scores and probabilities, RotaryEmbedding the rotation of q and k. Before site
// detection, each such op is expanded back into standard ONNX ops that compute the same values
// and keep the op's output names, so every site exists as a tensor again and every measure works
// as on the unfused export. onnxruntime re-fuses what it can when it loads the rewritten variant.
// An op whose inputs or attributes ask for more than the expansion reproduces (a quantized kv
// cache, packed batches, a smooth softmax, 1-D mask lengths) is refused, naming the node, instead
// of being expanded into something different.

import { UserError } from '../errors.js';
import { GraphIndex, NameAllocator, valueInfoShape } from './graph.js';
import { DataType, type AttributeProto, type ModelProto, type NodeProto, type TensorProto } from './proto.js';
import { attrFloat, attrInt, floatAttr, getAttr, intAttr, intsAttr, lowestFinite, makeTensor, tensorDims } from './tensor.js';

const MICROSOFT = 'com.microsoft';

/** Fused ops that cannot be expanded, with what the user can do instead. */
const REFUSED: Readonly<Record<string, string>> = {
  PackedAttention: 'it packs the batch without padding, so positions are not [batch, sequence]',
  PackedMultiHeadAttention: 'it packs the batch without padding, so positions are not [batch, sequence]',
  DecoderMaskedMultiHeadAttention: 'it decodes one token against a kv cache',
  EmbedLayerNormalization: 'it fuses the embeddings with the first LayerNorm (an encoder pattern)',
  FusedMatMul: 'it folds transposes and a scale into a MatMul',
};

/** What was expanded, op type → count (recorded with the detection). */
export type ExpandedOps = Record<string, number>;

class Expansion {
  readonly nodes: NodeProto[] = [];

  constructor(
    private readonly names: NameAllocator, private readonly inits: TensorProto[],
    /** Tensors made once for the whole graph (RotaryEmbedding's positions), by key. */
    readonly memo: Map<string, string>,
    readonly fused: NodeProto,
    /** The op's floating-point type (of its first input). */
    readonly dtype: number,
  ) {}

  fresh(base: string): string {
    return this.names.fresh(`${this.fused.name || this.fused.opType}/${base}`);
  }

  /** A node writing `out` (names given) or one fresh output named from it; returns the first output. */
  node(op: string, inputs: readonly string[], out: string | readonly string[], attrs: AttributeProto[] = [], domain?: string): string {
    const outputs = typeof out === 'string' ? [this.fresh(out)] : [...out];
    const node: NodeProto = { input: [...inputs], output: outputs, name: this.fresh(op), opType: op };
    if (attrs.length) node.attribute = attrs;
    if (domain) node.domain = domain;
    this.nodes.push(node);
    return outputs[0]!;
  }

  constant(base: string, dataType: number, dims: readonly number[], values: readonly number[]): string {
    const name = this.fresh(base);
    this.inits.push(makeTensor(name, dataType, dims, values));
    return name;
  }

  ints(base: string, values: readonly number[]): string {
    return this.constant(base, DataType.INT64, [values.length], values);
  }

  int64Scalar(base: string, value: number): string {
    return this.constant(base, DataType.INT64, [], [value]);
  }

  /** A scalar of the op's floating-point type. */
  scalar(base: string, value: number): string {
    return this.constant(base, this.dtype, [], [value]);
  }
}

function refuse(source: string, node: NodeProto, why: string): never {
  throw new UserError(`${source}: node '${node.name ?? ''}' is the fused ${node.domain} ${node.opType}: ${why}`,
    'use the model as the PyTorch exporter or Optimum wrote it, before onnxruntime\'s transformer optimizer; dissect lets onnxruntime fuse the rewritten graph at load time');
}

/** An optional output that something needs (a graph output or a node's input). */
function isNeeded(ix: GraphIndex, t: string | undefined): boolean {
  return !!t && (ix.outputs.has(t) || ix.consumersOf(t).length > 0);
}

function inputAt(node: NodeProto, i: number): string | undefined {
  const t = node.input?.[i];
  return t ? t : undefined;
}

/** The element type of a constant or typed tensor, following Cast and Reshape back to one. */
function elemTypeOf(ix: GraphIndex, t: string): number | undefined {
  const init = ix.initializers.get(t);
  if (init) return init.dataType ?? undefined;
  const typed = valueInfoShape(ix.inputs.get(t) ?? ix.valueInfo.get(t) ?? ix.outputs.get(t)).elemType;
  if (typed) return typed;
  const p = ix.producer(t);
  if (p?.opType === 'Cast') return attrInt(p, 'to');
  return p && p.input?.[0] ? elemTypeOf(ix, p.input[0]) : undefined;
}

/** The rank of a tensor known from value_info, a graph input, or a Cast of one. */
function rankOf(ix: GraphIndex, t: string): number | undefined {
  const shape = valueInfoShape(ix.inputs.get(t) ?? ix.valueInfo.get(t)).shape;
  if (shape) return shape.length;
  const p = ix.producer(t);
  return p?.opType === 'Cast' && p.input?.[0] ? rankOf(ix, p.input[0]) : undefined;
}

/**
 * SkipLayerNormalization(input, skip, gamma, beta?, bias?) → sum = input + skip + bias, output =
 * LayerNorm(sum). The bias belongs to the sublayer update: the operand a MatMul/Gemm produced
 * (through a Reshape), so that update + bias is the projection's output as in the export.
 */
function expandSkipNorm(ix: GraphIndex, x: Expansion, source: string, simplified: boolean): void {
  const n = x.fused;
  const [a, b] = [inputAt(n, 0)!, inputAt(n, 1)!];
  const gamma = inputAt(n, 2)!;
  const beta = simplified ? undefined : inputAt(n, 3);
  const bias = inputAt(n, simplified ? 3 : 4);
  const outs = n.output ?? [];
  if (isNeeded(ix, outs[1]) || isNeeded(ix, outs[2])) refuse(source, n, 'its mean / inverse standard deviation outputs are used, and the expansion does not compute them');
  const fromLinear = (t: string): boolean => {
    let p = ix.producer(t);
    if (p?.opType === 'Reshape') p = ix.producer(p.input?.[0] ?? '');
    return p?.opType === 'MatMul' || p?.opType === 'Gemm';
  };
  const [residual, update] = fromLinear(a) && !fromLinear(b) ? [b, a] : [a, b];
  const withBias = bias ? x.node('Add', [update, bias], 'update') : update;
  const sum = x.node('Add', [residual, withBias], isNeeded(ix, outs[3]) ? [outs[3]!] : 'sum');
  const epsilon = floatAttr('epsilon', attrFloat(n, 'epsilon', 1e-5)!);
  if (simplified) x.node('SimplifiedLayerNormalization', [sum, gamma], [outs[0]!], [intAttr('axis', -1), epsilon]);
  else x.node('LayerNormalization', [sum, gamma, ...(beta ? [beta] : [])], [outs[0]!], [intAttr('axis', -1), epsilon]);
}

/** FastGelu(x, bias?), BiasGelu(x, bias), GemmFastGelu(x, W, bias?): the bias add becomes the MLP pre-activation tensor. */
function expandGelu(x: Expansion): void {
  const n = x.fused;
  const out = [n.output![0]!];
  if (n.opType === 'GemmFastGelu') {
    const y = x.node('MatMul', [inputAt(n, 0)!, inputAt(n, 1)!], 'matmul');
    const pre = inputAt(n, 2) ? x.node('Add', [y, inputAt(n, 2)!], 'pre') : y;
    x.node('FastGelu', [pre], out, [], MICROSOFT);
    return;
  }
  const bias = inputAt(n, 1);
  const pre = bias ? x.node('Add', [inputAt(n, 0)!, bias], 'pre') : inputAt(n, 0)!;
  x.node(n.opType === 'BiasGelu' ? 'Gelu' : 'FastGelu', [pre], out, [], MICROSOFT);
}

/** q, k and v of one attention op, [b, s, heads · dh] (k and v: kvHeads), and what the op does with them. */
interface AttentionCore {
  readonly q: string;
  readonly k: string;
  readonly v: string;
  readonly heads: number;
  readonly kvHeads: number;
  readonly dHead: number;
  readonly scale: number;
  /** Rotates q or k, [b, heads, s, dh] (GroupQueryAttention's rotary inside the op). */
  readonly rotate?: (t: string, name: string) => string;
  /** Keys and values [b, kvHeads, past, dh] before the new ones, and the names of the op's present outputs that are read. */
  readonly past?: { readonly key: string; readonly value: string };
  readonly present?: { readonly key?: string; readonly value?: string };
  /** The scaled scores [b, heads, s, T] masked (and soft-capped) as the op defines. */
  readonly mask: (scores: string) => string;
  readonly output: string;
}

/**
 * The attention of a fused op in the export's own ops: heads split ([b, n, s, dh]), rotary, past keys
 * and values concatenated before the new ones, key/value heads repeated (Unsqueeze → Expand → Reshape, as
 * transformers' repeat_kv), q·kᵀ · scale, masks, Softmax, ·V, heads merged into the op's output.
 */
function attentionCore(x: Expansion, c: AttentionCore): void {
  const toHeads = (t: string, n: number, name: string): string =>
    x.node('Transpose', [x.node('Reshape', [t, x.ints(`${name}_shape`, [0, 0, n, c.dHead])], `${name}_split`)], name, [intsAttr('perm', [0, 2, 1, 3])]);
  const rotated = (t: string, name: string): string => (c.rotate ? c.rotate(t, name) : t);
  const withPast = (t: string, past: string | undefined, present: string | undefined, name: string): string => {
    if (past) return x.node('Concat', [past, t], present ? [present] : `${name}_all`, [intAttr('axis', 2)]);
    return present ? x.node('Identity', [t], [present]) : t;
  };
  const repeated = (t: string, name: string): string => {
    if (c.kvHeads === c.heads) return t;
    const grouped = x.node('Unsqueeze', [t, x.ints(`${name}_group_axis`, [2])], `${name}_grouped`);
    const copies = x.node('Expand', [grouped, x.ints(`${name}_copies`, [1, 1, c.heads / c.kvHeads, 1, 1])], `${name}_copies`);
    return x.node('Reshape', [copies, x.ints(`${name}_heads_shape`, [0, c.heads, -1, c.dHead])], `${name}_repeated`);
  };
  const q = rotated(toHeads(c.q, c.heads, 'q'), 'q');
  const k = repeated(withPast(rotated(toHeads(c.k, c.kvHeads, 'k'), 'k'), c.past?.key, c.present?.key, 'k'), 'k');
  const v = repeated(withPast(toHeads(c.v, c.kvHeads, 'v'), c.past?.value, c.present?.value, 'v'), 'v');
  const kt = x.node('Transpose', [k], 'k_t', [intsAttr('perm', [0, 1, 3, 2])]);
  const scores = x.node('Mul', [x.node('MatMul', [q, kt], 'qk'), x.scalar('scale', c.scale)], 'scaled');
  const probs = x.node('Softmax', [c.mask(scores)], 'probs', [intAttr('axis', -1)]);
  const context = x.node('MatMul', [probs, v], 'context');
  const merged = x.node('Transpose', [context], 'context_t', [intsAttr('perm', [0, 2, 1, 3])]);
  x.node('Reshape', [merged, x.ints('merged_shape', [0, 0, c.heads * c.dHead])], [c.output]);
}

/** A dimension of `t` at run time, an int64 scalar. */
function dim(x: Expansion, t: string, axis: number, name: string): string {
  return x.node('Gather', [x.node('Shape', [t], `${name}_shape`), x.int64Scalar(`${name}_axis`, axis)], name, [intAttr('axis', 0)]);
}

/** 0, 1, …, n − 1 (n an int64 scalar tensor). */
function range(x: Expansion, n: string, name: string): string {
  return x.node('Range', [x.int64Scalar(`${name}_start`, 0), n, x.int64Scalar(`${name}_step`, 1)], name);
}

/**
 * Key indices [T] and query indices [S, 1] of scores [b, h, S, T]; the queries are the last S keys (a
 * past comes first). `past` is T − S, an int64 scalar.
 */
function scorePositions(x: Expansion, scores: string): { keys: string; queries: string; past: string } {
  const queries = dim(x, scores, 2, 'queries_count');
  const keyCount = dim(x, scores, 3, 'keys_count');
  const past = x.node('Sub', [keyCount, queries], 'past_length');
  const queryIndex = x.node('Add', [range(x, queries, 'query_range'), past], 'query_index');
  return { keys: range(x, keyCount, 'key_index'), queries: x.node('Unsqueeze', [queryIndex, x.ints('query_axis', [1])], 'query_column'), past };
}

/**
 * Rotary position embedding of t [.., s, dh] (heads on any axis before) by cos and sin [.., s, 1 or
 * heads, rd/2] broadcasting against it: onnxruntime's RotaryEmbedding — its first rd units rotated,
 * halves (x₁, x₂) → (x₁·cos − x₂·sin, x₂·cos + x₁·sin), or interleaved pairs (even, odd) alike; the
 * rest passed. Written as transformers' rotate_half (GPT-J's rotate_every_two when interleaved).
 */
function rotate(x: Expansion, t: string, cos: string, sin: string, r: { dims: number; dHead: number; interleaved: boolean }, out?: string[]): string {
  const last = (lo: number, hi: number, step: number, name: string, from = t): string =>
    x.node('Slice', [from, x.ints(`${name}_start`, [lo]), x.ints(`${name}_end`, [hi]), x.ints(`${name}_axis`, [-1]), x.ints(`${name}_step`, [step])], name);
  const part = r.dims < r.dHead ? last(0, r.dims, 1, 'rotary_part') : t;
  const lastAxis = [intAttr('axis', -1)];
  let turned: string;
  let cosFull: string;
  let sinFull: string;
  if (r.interleaved) {
    // pairs: [(−odd, even)] flattened, and each angle twice in a row
    const pairs = (a: string, b: string, name: string): string => x.node('Reshape', [
      x.node('Concat', [x.node('Unsqueeze', [a, x.ints(`${name}_a_axis`, [-1])], `${name}_a`), x.node('Unsqueeze', [b, x.ints(`${name}_b_axis`, [-1])], `${name}_b`)], `${name}_pairs`, lastAxis),
      x.ints(`${name}_shape`, [0, 0, 0, r.dims])], name);
    const even = last(0, r.dims, 2, 'even', part);
    const odd = last(1, r.dims, 2, 'odd', part);
    turned = pairs(x.node('Neg', [odd], 'odd_neg'), even, 'turned');
    cosFull = pairs(cos, cos, 'cos_pairs');
    sinFull = pairs(sin, sin, 'sin_pairs');
  } else {
    const half = r.dims / 2;
    turned = x.node('Concat', [x.node('Neg', [last(half, r.dims, 1, 'second_half', part)], 'second_neg'), last(0, half, 1, 'first_half', part)], 'turned', lastAxis);
    cosFull = x.node('Concat', [cos, cos], 'cos_halves', lastAxis);
    sinFull = x.node('Concat', [sin, sin], 'sin_halves', lastAxis);
  }
  const done = r.dims < r.dHead ? undefined : out;
  const rotatedPart = x.node('Add', [x.node('Mul', [part, cosFull], 'cos_term'), x.node('Mul', [turned, sinFull], 'sin_term')], done ?? 'rotated');
  return r.dims < r.dHead ? x.node('Concat', [rotatedPart, last(r.dims, r.dHead, 1, 'rotary_pass')], out ?? 'rotated_all', lastAxis) : rotatedPart;
}

/** cos and sin looked up at positions [b or 1, s], then given a heads axis at `headsAxis`: [.., s, rd/2] broadcasting against the heads. */
function rotaryAngles(x: Expansion, cosCache: string, sinCache: string, positions: string, headsAxis: number): [string, string] {
  return ([['cos', cosCache], ['sin', sinCache]] as const).map(([name, table]) =>
    x.node('Unsqueeze', [x.node('Gather', [table, positions], `${name}_rows`, [intAttr('axis', 0)]), x.ints(`${name}_heads_axis`, [headsAxis])], name)) as [string, string];
}

/** The width of cos_cache and sin_cache (rd/2): both constant [max positions, rd/2] of one width. */
function rotaryCacheWidth(ix: GraphIndex, n: NodeProto, source: string, cosCache: string | undefined, sinCache: string | undefined): number {
  const widths = [cosCache, sinCache].map((t) => (t ? tensorDims(ix.constantTensor(t) ?? {}) : []));
  if (widths.some((d) => d.length !== 2) || widths[0]![1] !== widths[1]![1]) refuse(source, n, 'its cos_cache and sin_cache are not constant [positions, rotary_dim / 2] tables of one width');
  return widths[0]![1]!;
}

/** A width the expansion needs from the graph: the static last dimension of `t`, or a refusal. */
function staticWidth(ix: GraphIndex, n: NodeProto, source: string, t: string, what: string): number {
  const d = ix.shapes.dims(t);
  const w = d?.length === 3 ? d[2] : undefined;
  if (w === undefined) refuse(source, n, `the width of its ${what} is not fixed by the graph ([batch, sequence, width] with a constant width)`);
  return w;
}

/**
 * Attention(x, W_qkv, b_qkv?, mask_index?, past?, attention_bias?) with unidirectional=1 →
 * the GPT-2 export's ops: x·W + b → Split q|k|v → the attention core, its scores masked as the
 * export does: causal Where (lowest finite value) → + (1 − mask) · mask_filter_value →
 * + attention_bias. Only the op's first output (the merged context) is kept.
 */
function expandAttention(ix: GraphIndex, x: Expansion, source: string): void {
  const n = x.fused;
  const [input, weights, bias, maskIndex, past, attentionBias] = [0, 1, 2, 3, 4, 5].map((i) => inputAt(n, i));
  if (attrInt(n, 'unidirectional', 0) !== 1) refuse(source, n, 'it is bidirectional (unidirectional = 0): dissect reads causal language models');
  if (past || isNeeded(ix, n.output?.[1])) refuse(source, n, 'it reads or writes a kv cache (past / present), which the expansion does not reproduce');
  if (inputAt(n, 6)) refuse(source, n, 'it has a past_sequence_length input');
  if (attrInt(n, 'do_rotary', 0) !== 0) refuse(source, n, 'it applies the rotary embedding inside the op');
  const w = ix.constantTensor(weights!);
  const wDims = w ? tensorDims(w) : [];
  if (wDims.length !== 2 || wDims[1]! % 3 !== 0) refuse(source, n, 'its weights are not a constant [d, 3d] matrix');
  const hidden = (n.attribute ?? []).find((a) => a.name === 'qkv_hidden_sizes')?.ints?.map(Number);
  if (hidden && new Set(hidden).size !== 1) refuse(source, n, `its q, k and v widths differ (qkv_hidden_sizes ${hidden.join(', ')})`);
  const heads = attrInt(n, 'num_heads')!;
  const d = wDims[1]! / 3;
  const dHead = d / heads;
  if (!Number.isInteger(dHead)) refuse(source, n, `its width ${d} is not a multiple of num_heads ${heads}`);
  if (maskIndex && rankOf(ix, maskIndex) !== 2) refuse(source, n, 'its mask_index is not the 2-D [batch, sequence] attention mask (1-D key lengths and 3-D/4-D masks are not expanded)');

  const qkv = x.node('MatMul', [input!, weights!], 'qkv');
  const qkvb = bias ? x.node('Add', [qkv, bias], 'qkv_bias') : qkv;
  const [q, k, v] = [x.fresh('q'), x.fresh('k'), x.fresh('v')];
  x.node('Split', [qkvb, x.ints('split', [d, d, d])], [q!, k!, v!], [intAttr('axis', 2)]);
  const mask = (raw: string): string => {
    const { keys, queries } = scorePositions(x, raw);
    let scores = x.node('Where', [x.node('Greater', [keys, queries], 'future'), x.scalar('lowest', lowestFinite(x.dtype)), raw], 'causal');
    if (maskIndex) {
      const keep = x.node('Cast', [maskIndex], 'keep', [intAttr('to', x.dtype)]);
      const dropped = x.node('Sub', [x.scalar('one_f', 1), keep], 'dropped');
      const pad = x.node('Mul', [dropped, x.scalar('mask_filter_value', attrFloat(n, 'mask_filter_value', -10000)!)], 'pad');
      scores = x.node('Add', [scores, x.node('Unsqueeze', [pad, x.ints('pad_axes', [1, 2])], 'pad_bhsk')], 'padded');
    }
    return attentionBias ? x.node('Add', [scores, attentionBias], 'biased') : scores;
  };
  attentionCore(x, { q: q!, k: k!, v: v!, heads, kvHeads: heads, dHead, scale: attrFloat(n, 'scale', 0) || 1 / Math.sqrt(dHead), mask, output: n.output![0]! });
}

/** The names of a fused op's present_key / present_value outputs (1 and 2) that something reads. */
function presentOutputs(ix: GraphIndex, n: NodeProto): { key?: string; value?: string } {
  const [key, value] = [1, 2].map((i) => (isNeeded(ix, n.output?.[i]) ? n.output![i]! : undefined));
  return { ...(key ? { key } : {}), ...(value ? { value } : {}) };
}

/** past_key and past_value (inputs i, i + 1): both or neither. */
function pastInputs(n: NodeProto, source: string, i: number): { key: string; value: string } | undefined {
  const [key, value] = [inputAt(n, i), inputAt(n, i + 1)];
  if (!key !== !value) refuse(source, n, 'it has one of past_key and past_value without the other');
  return key && value ? { key, value } : undefined;
}

/** Inputs at these positions that the expansion does not reproduce: refused, naming the first one present. */
function refuseInputs(n: NodeProto, source: string, unsupported: Readonly<Record<number, string>>): void {
  for (const [i, why] of Object.entries(unsupported)) if (inputAt(n, Number(i))) refuse(source, n, why);
}

/**
 * MultiHeadAttention(query, key, value, bias?, key_padding_mask?, attention_bias?, past_key?,
 * past_value?) on separate [b, s, d] q, k, v (the optimizer's self-attention form) → the attention
 * core. The bias (q | k | v) is added to each projection, so each is a linear layer with a bias
 * again. Scores: q·kᵀ · scale + mask_filter_value where masked (unidirectional: keys after the
 * query, past first; key_padding_mask [b, T]: its zeros) + attention_bias, as onnxruntime's CPU
 * kernel adds them.
 */
function expandMultiHeadAttention(ix: GraphIndex, x: Expansion, source: string): void {
  const n = x.fused;
  const [query, key, value, bias, keyPadding, attentionBias] = [0, 1, 2, 3, 4, 5].map((i) => inputAt(n, i));
  if (!key || !value) refuse(source, n, 'its query holds packed q | k | v (or its key packed k | v): the expansion reads separate query, key and value');
  const ranks = [query!, key, value].map((t) => ix.shapes.dims(t)?.length);
  if (ranks.some((r) => r !== undefined && r !== 3)) refuse(source, n, 'its query, key or value is not [batch, sequence, width] (packed, or keys and values already split into heads)');
  refuseInputs(n, source, { 8: 'it has a past_sequence_length input (a shared kv buffer)', 9: 'it has a cache_indirection input (beam search)' });
  if (isNeeded(ix, n.output?.[3])) refuse(source, n, 'its qk output is read, which the expansion does not compute');
  if (keyPadding && ix.shapes.dims(keyPadding)?.length !== 2) refuse(source, n, 'its key_padding_mask is not the 2-D [batch, keys] mask (key lengths and 3-D masks are not expanded)');
  const heads = attrInt(n, 'num_heads')!;
  const width = staticWidth(ix, n, source, query!, 'query');
  const dHead = width / heads;
  if (!Number.isInteger(dHead)) refuse(source, n, `its width ${width} is not a multiple of num_heads ${heads}`);
  const biasValues = bias ? ix.constantValues(bias) : undefined;
  if (bias && biasValues?.length !== 3 * width) refuse(source, n, `its bias is not a constant q | k | v vector of ${3 * width}`);
  const [q, k, v] = [query!, key, value].map((t, i) => {
    const part = 'qkv'[i]!;
    return biasValues ? x.node('Add', [t, x.constant(`${part}_bias`, x.dtype, [width], biasValues.slice(i * width, (i + 1) * width))], `${part}_biased`) : t;
  });
  const unidirectional = attrInt(n, 'unidirectional', 0) === 1;
  const mask = (scores: string): string => {
    const masks: string[] = [];
    if (unidirectional) {
      const { keys, queries } = scorePositions(x, scores);
      masks.push(x.node('Greater', [keys, queries], 'future'));
    }
    if (keyPadding) {
      const padded = x.node('Equal', [x.node('Cast', [keyPadding], 'key_padding', [intAttr('to', DataType.INT64)]), x.int64Scalar('padding', 0)], 'padded');
      masks.push(x.node('Unsqueeze', [padded, x.ints('padded_axes', [1, 2])], 'padded_bhsk'));
    }
    const masked = masks.length ? x.node('Add', [scores, x.node('Where', [
      masks.length === 2 ? x.node('Or', masks, 'hidden') : masks[0]!, x.scalar('mask_filter_value', attrFloat(n, 'mask_filter_value', -10000)!), x.scalar('kept', 0),
    ], 'mask')], 'masked') : scores;
    return attentionBias ? x.node('Add', [masked, attentionBias], 'biased') : masked;
  };
  const past = pastInputs(n, source, 6);
  attentionCore(x, {
    q: q!, k: k!, v: v!, heads, kvHeads: heads, dHead, scale: attrFloat(n, 'scale', 0) || 1 / Math.sqrt(dHead),
    ...(past ? { past } : {}), present: presentOutputs(ix, n), mask, output: n.output![0]!,
  });
}

/**
 * GroupQueryAttention(query, key?, value?, past_key?, past_value?, seqlens_k, total_sequence_length,
 * cos_cache?, sin_cache?) → the attention core, as onnxruntime's CPU kernel computes it. With
 * total_sequence_length equal to the query length (a first prompt) row b's queries are positions
 * 0 … S − 1, otherwise past_b + i with past_b = seqlens_k[b] + 1 − S: the row's past is the first
 * past_b keys of past_key (onnxruntime writes the new keys right after them; here they follow
 * past_key whole, and the keys of past_key after past_b are hidden). A query sees the keys at or
 * before it, up to seqlens_k[b] (a query after that, padding, sees what the one at seqlens_k[b]
 * sees) and, with local_window_size w, the last w of them; the scores are soft-capped first
 * (softcap) and the hidden ones set to the lowest finite value (onnxruntime leaves them out of the
 * softmax). do_rotary rotates q and k at the query positions (padding included).
 */
function expandGroupQueryAttention(ix: GraphIndex, x: Expansion, source: string): void {
  const n = x.fused;
  const [query, key, value] = [0, 1, 2].map((i) => inputAt(n, i));
  const [seqlensK, totalLength, cosCache, sinCache] = [5, 6, 7, 8].map((i) => inputAt(n, i));
  if (!key !== !value) refuse(source, n, 'it has one of key and value without the other');
  refuseInputs(n, source, {
    9: 'it has a position_ids input', 10: 'it has an attention_bias input', 11: 'it has a head_sink input (a smooth softmax)',
    12: 'its kv cache is quantized (k_scale)', 13: 'its kv cache is quantized (v_scale)', 14: 'it normalises q and k per head (q_norm_weight)',
    15: 'it normalises q and k per head (k_norm_weight)',
  });
  if (attrInt(n, 'causal', 1) !== 1) refuse(source, n, 'it is bidirectional (causal = 0): dissect reads causal language models');
  if (attrInt(n, 'smooth_softmax', 0) !== 0) refuse(source, n, 'it uses a smooth softmax, which the expansion does not compute');
  if (attrInt(n, 'sliding_window_cache', 0) !== 0) refuse(source, n, 'its kv cache is a sliding window buffer');
  if (attrInt(n, 'qk_output', 0) !== 0 || isNeeded(ix, n.output?.[3])) refuse(source, n, 'its output_qk is read, which the expansion does not compute');
  if (getAttr(n, 'kv_cache_bit_width') || ['k_quant_type', 'v_quant_type'].some((a) => { const t = getAttr(n, a)?.s; return t && new TextDecoder().decode(t) !== 'NONE'; })) {
    refuse(source, n, 'its kv cache is quantized');
  }
  const heads = attrInt(n, 'num_heads')!;
  const kvHeads = attrInt(n, 'kv_num_heads')!;
  if (!(heads % kvHeads === 0)) refuse(source, n, `its num_heads ${heads} is not a multiple of kv_num_heads ${kvHeads}`);
  const width = staticWidth(ix, n, source, query!, 'query');
  const dHead = width / (key ? heads : heads + 2 * kvHeads);
  if (!Number.isInteger(dHead)) refuse(source, n, `its query width ${width} is not ${key ? 'num_heads' : 'num_heads + 2 · kv_num_heads'} heads`);
  let [q, k, v] = [query!, key, value];
  if (!key) {
    [q, k, v] = [x.fresh('q'), x.fresh('k'), x.fresh('v')];
    x.node('Split', [query!, x.ints('split', [heads * dHead, kvHeads * dHead, kvHeads * dHead])], [q!, k!, v!], [intAttr('axis', 2)]);
  }
  const queryCount = dim(x, q!, 1, 'sequence_length');
  const seqlens = x.node('Reshape', [x.node('Cast', [seqlensK!], 'seqlens_k', [intAttr('to', DataType.INT64)]), x.ints('row_shape', [-1, 1, 1, 1])], 'last_key');
  const firstPrompt = x.node('Equal', [x.node('Reshape', [x.node('Cast', [totalLength!], 'total', [intAttr('to', DataType.INT64)]), x.ints('scalar_shape', [])], 'total_length'), queryCount], 'first_prompt');
  const rowPast = x.node('Where', [firstPrompt, x.int64Scalar('no_past', 0),
    x.node('Sub', [x.node('Add', [seqlens, x.int64Scalar('one', 1)], 'row_total'), queryCount], 'row_past_length')], 'row_past');
  const queryPositions = x.node('Add', [rowPast, x.node('Unsqueeze', [range(x, queryCount, 'query_range'), x.ints('query_axis', [1])], 'query_column')], 'query_positions');
  let rotateQk: ((t: string, name: string) => string) | undefined;
  if (attrInt(n, 'do_rotary', 0) === 1) {
    const half = rotaryCacheWidth(ix, n, source, cosCache, sinCache);
    const positions = x.node('Reshape', [queryPositions, x.ints('positions_shape', [0, -1])], 'positions');
    const [cos, sin] = rotaryAngles(x, cosCache!, sinCache!, positions, 1);
    const r = { dims: 2 * half, dHead, interleaved: attrInt(n, 'rotary_interleaved', 0) === 1 };
    rotateQk = (t) => rotate(x, t, cos, sin, r);
  }
  const window = attrInt(n, 'local_window_size', -1)!;
  const softcap = attrFloat(n, 'softcap', 0)!;
  const mask = (scores: string): string => {
    const { keys, past } = scorePositions(x, scores);
    const inPast = x.node('Less', [keys, past], 'in_past');
    const keyPositions = x.node('Where', [inPast, keys, x.node('Add', [x.node('Sub', [keys, past], 'new_index'), rowPast], 'new_position')], 'key_positions');
    // a query after the row's last key (padding) sees what the last one sees
    const last = x.node('Min', [queryPositions, seqlens], 'effective_query');
    let seen = x.node('And', [x.node('Not', [x.node('Greater', [keyPositions, last], 'after')], 'causal'),
      x.node('Or', [x.node('Not', [inPast], 'new_key'), x.node('Less', [keys, rowPast], 'row_past_key')], 'row_key')], 'seen');
    if (window > 0) seen = x.node('And', [seen, x.node('Greater', [keyPositions, x.node('Sub', [last, x.int64Scalar('window', window)], 'window_start')], 'in_window')], 'seen_window');
    const capped = softcap > 0
      ? x.node('Mul', [x.node('Tanh', [x.node('Div', [scores, x.scalar('softcap', softcap)], 'capped_in')], 'capped_tanh'), x.scalar('softcap_out', softcap)], 'capped')
      : scores;
    return x.node('Where', [seen, capped, x.scalar('lowest', lowestFinite(x.dtype))], 'masked');
  };
  const past = pastInputs(n, source, 3);
  attentionCore(x, {
    q: q!, k: k!, v: v!, heads, kvHeads, dHead, scale: attrFloat(n, 'scale', 0) || 1 / Math.sqrt(dHead),
    ...(rotateQk ? { rotate: rotateQk } : {}), ...(past ? { past } : {}), present: presentOutputs(ix, n), mask, output: n.output![0]!,
  });
}

/**
 * RotaryEmbedding(input, position_ids, cos_cache, sin_cache) on [b, s, heads · dh] or [b, heads, s, dh].
 * position_ids [b, s] are the positions; of shape [1], the first one (positions p, p + 1, …): then one
 * position tensor is made per position_ids input, shared by every tensor it rotates (a decoder
 * rotates q and k of the same tokens), so the positions are one tensor as in the export.
 */
function expandRotaryEmbedding(ix: GraphIndex, x: Expansion, source: string): void {
  const n = x.fused;
  const [input, positionIds, cosCache, sinCache] = [0, 1, 2, 3].map((i) => inputAt(n, i));
  if (attrInt(n, 'is_packed_batching', 0) !== 0) refuse(source, n, 'it rotates a packed (ragged) batch');
  if (attrFloat(n, 'scale', 1) !== 1) refuse(source, n, 'it scales the rotated values (scale ≠ 1)');
  const half = rotaryCacheWidth(ix, n, source, cosCache, sinCache);
  const dims = ix.shapes.dims(input!);
  const positionRank = ix.shapes.dims(positionIds!)?.length;
  if (dims?.length !== 3 && dims?.length !== 4) refuse(source, n, 'the rank of its input is not known to be 3 ([batch, sequence, width]) or 4 ([batch, heads, sequence, head size])');
  if (positionRank !== 1 && positionRank !== 2) refuse(source, n, 'the rank of its position_ids is not known to be 1 (the first position) or 2 ([batch, sequence])');
  const rotaryDims = attrInt(n, 'rotary_embedding_dim', 0) || 2 * half;
  if (rotaryDims !== 2 * half) refuse(source, n, `its rotary_embedding_dim ${rotaryDims} is not twice the width of cos_cache (${half})`);
  const numHeads = attrInt(n, 'num_heads', 0)!;
  const dHead = dims.length === 4 ? dims[3] : numHeads && dims[2] !== undefined ? dims[2] / numHeads : !attrInt(n, 'rotary_embedding_dim', 0) ? 2 * half : undefined;
  if (dHead === undefined || !Number.isInteger(dHead) || dHead < rotaryDims) refuse(source, n, 'its head size is not known (give num_heads, or a fixed head size)');
  const sequenceAxis = dims.length === 3 ? 1 : 2;
  let positions = positionIds!;
  if (positionRank === 1) {
    const memo = `positions:${positionIds!}`;
    positions = x.memo.get(memo) ?? x.node('Unsqueeze', [x.node('Add', [range(x, dim(x, input!, sequenceAxis, 'sequence_length'), 'token_index'), positionIds!], 'token_positions'),
      x.ints('positions_axis', [0])], 'positions');
    x.memo.set(memo, positions);
  }
  // [b, s, heads, dh] for a 3-D input, the heads after the sequence; [b, heads, s, dh] as given
  const [cos, sin] = rotaryAngles(x, cosCache!, sinCache!, positions, dims.length === 3 ? 2 : 1);
  const r = { dims: rotaryDims, dHead, interleaved: attrInt(n, 'interleaved', 0) === 1 };
  if (dims.length === 4) {
    rotate(x, input!, cos, sin, r, [n.output![0]!]);
    return;
  }
  const headed = x.node('Reshape', [input!, x.ints('heads_shape', [0, 0, -1, dHead])], 'heads');
  x.node('Reshape', [rotate(x, headed, cos, sin, r), x.ints('merged_shape', [0, 0, -1])], [n.output![0]!]);
}

const EXPANDERS: Readonly<Record<string, (ix: GraphIndex, x: Expansion, source: string) => void>> = {
  SkipLayerNormalization: (ix, x, source) => expandSkipNorm(ix, x, source, false),
  SkipSimplifiedLayerNormalization: (ix, x, source) => expandSkipNorm(ix, x, source, true),
  FastGelu: (_ix, x) => expandGelu(x),
  BiasGelu: (_ix, x) => expandGelu(x),
  GemmFastGelu: (_ix, x) => expandGelu(x),
  Attention: expandAttention,
  MultiHeadAttention: expandMultiHeadAttention,
  GroupQueryAttention: expandGroupQueryAttention,
  RotaryEmbedding: expandRotaryEmbedding,
};

/**
 * Expands, in place, the com.microsoft ops that hide sites (see the file comment); refuses the
 * fused ops it cannot expand. Returns the count of each op expanded (empty for a plain export).
 */
export function expandFusedOps(model: ModelProto, source = 'model'): ExpandedOps {
  const graph = model.graph;
  if (!graph?.node?.some((n) => n.domain === MICROSOFT)) return {};
  const ix = new GraphIndex(graph);
  const names = new NameAllocator(graph);
  const inits = (graph.initializer ??= []);
  const expanded: ExpandedOps = {};
  const memo = new Map<string, string>();
  const nodes: NodeProto[] = [];
  for (const node of graph.node) {
    const op = node.opType ?? '';
    const expand = node.domain === MICROSOFT ? EXPANDERS[op] : undefined;
    if (node.domain === MICROSOFT && REFUSED[op]) refuse(source, node, REFUSED[op]);
    if (!expand) {
      nodes.push(node);
      continue;
    }
    const x = new Expansion(names, inits, memo, node, elemTypeOf(ix, node.input?.[0] ?? '') ?? DataType.FLOAT);
    expand(ix, x, source);
    nodes.push(...x.nodes); // in place of the fused node: its inputs are already computed
    expanded[op] = (expanded[op] ?? 0) + 1;
  }
  graph.node = nodes;
  // value_info may describe the fused op's optional outputs that no longer exist
  const produced = new Set(nodes.flatMap((n) => n.output ?? []));
  graph.valueInfo = (graph.valueInfo ?? []).filter((v) => produced.has(v.name ?? ''));
  return expanded;
}
