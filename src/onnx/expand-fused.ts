// Graphs saved after onnxruntime's transformer optimizer fold the tensors dissect reads and
// rewrites into com.microsoft ops: SkipLayerNormalization swallows the residual add and the
// projection bias, FastGelu / BiasGelu the MLP pre-activations, Attention the scores and
// probabilities. Before site detection, each such op is expanded back into standard ONNX ops
// that compute the same values and keep the op's output names, so every site exists as a
// tensor again and every measure works as on the unfused export. onnxruntime re-fuses what it
// can when it loads the rewritten variant. An op whose inputs or attributes ask for more than
// the expansion reproduces (a kv cache, rotary inside the op, 1-D mask lengths) is refused,
// naming the node, instead of being expanded into something different.

import { UserError } from '../errors.js';
import { GraphIndex, NameAllocator, valueInfoShape } from './graph.js';
import { DataType, type AttributeProto, type ModelProto, type NodeProto, type TensorProto } from './proto.js';
import { attrFloat, attrInt, floatAttr, intAttr, intsAttr, lowestFinite, makeTensor, tensorDims } from './tensor.js';

const MICROSOFT = 'com.microsoft';

/** Fused ops that cannot be expanded, with what the user can do instead. */
const REFUSED: Readonly<Record<string, string>> = {
  MultiHeadAttention: 'its query, key and value arrive already projected and split, so the heads and scores hide inside it',
  GroupQueryAttention: 'it keeps the kv cache and the rotary embedding inside the op',
  PackedAttention: 'it packs the batch without padding, so positions are not [batch, sequence]',
  PackedMultiHeadAttention: 'it packs the batch without padding, so positions are not [batch, sequence]',
  DecoderMaskedMultiHeadAttention: 'it decodes one token against a kv cache',
  EmbedLayerNormalization: 'it fuses the embeddings with the first LayerNorm (an encoder pattern)',
  RotaryEmbedding: 'the rotary embedding is applied inside one op',
  FusedMatMul: 'it folds transposes and a scale into a MatMul',
};

/** What was expanded, op type → count (recorded with the detection). */
export type ExpandedOps = Record<string, number>;

class Expansion {
  readonly nodes: NodeProto[] = [];

  constructor(private readonly names: NameAllocator, private readonly inits: TensorProto[], readonly fused: NodeProto) {}

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

/**
 * Attention(x, W_qkv, b_qkv?, mask_index?, past?, attention_bias?) with unidirectional=1 →
 * the GPT-2 export's ops: x·W + b → Split q|k|v → heads → q·kᵀ · scale → causal Where (lowest
 * finite value, as the export) → + (1 − mask) · mask_filter_value → + attention_bias → Softmax →
 * ·V → heads merged. Only the op's first output (the merged context) is kept.
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
  const dtype = elemTypeOf(ix, weights!) ?? DataType.FLOAT;
  const scalar = (base: string, v: number): string => x.constant(base, dtype, [], [v]);

  const qkv = x.node('MatMul', [input!, weights!], 'qkv');
  const qkvb = bias ? x.node('Add', [qkv, bias], 'qkv_bias') : qkv;
  const [q, k, v] = ['q', 'k', 'v'].map((part) => x.fresh(part));
  x.node('Split', [qkvb, x.ints('split', [d, d, d])], [q!, k!, v!], [intAttr('axis', 2)]);
  const headShape = x.ints('head_shape', [0, 0, heads, dHead]);
  const toHeads = (t: string, name: string): string =>
    x.node('Transpose', [x.node('Reshape', [t, headShape], `${name}_split`)], name, [intsAttr('perm', [0, 2, 1, 3])]);
  const qh = toHeads(q, 'q');
  const kh = toHeads(k, 'k');
  const vh = toHeads(v, 'v');
  const kt = x.node('Transpose', [kh], 'k_t', [intsAttr('perm', [0, 1, 3, 2])]);
  const raw = x.node('MatMul', [qh, kt], 'qk');
  const scale = attrFloat(n, 'scale', 0) || 1 / Math.sqrt(dHead);
  let scores = x.node('Mul', [raw, scalar('scale', scale)], 'scaled');

  // causal: key j > query i is masked (no past, so queries and keys are the same positions)
  const seq = x.node('Gather', [x.node('Shape', [qkvb], 'shape'), x.constant('seq_axis', DataType.INT64, [], [1])], 'seq', [intAttr('axis', 0)]);
  const positions = x.node('Range', [x.constant('zero', DataType.INT64, [], [0]), seq, x.constant('one', DataType.INT64, [], [1])], 'positions');
  const future = x.node('Greater', [x.node('Unsqueeze', [positions, x.ints('row_axes', [0])], 'keys'),
    x.node('Unsqueeze', [positions, x.ints('col_axes', [1])], 'queries')], 'future');
  scores = x.node('Where', [future, scalar('lowest', lowestFinite(dtype)), scores], 'causal');
  if (maskIndex) {
    const keep = x.node('Cast', [maskIndex], 'keep', [intAttr('to', dtype)]);
    const dropped = x.node('Sub', [scalar('one_f', 1), keep], 'dropped');
    const pad = x.node('Mul', [dropped, scalar('mask_filter_value', attrFloat(n, 'mask_filter_value', -10000)!)], 'pad');
    scores = x.node('Add', [scores, x.node('Unsqueeze', [pad, x.ints('pad_axes', [1, 2])], 'pad_bhsk')], 'padded');
  }
  if (attentionBias) scores = x.node('Add', [scores, attentionBias], 'biased');
  const probs = x.node('Softmax', [scores], 'probs', [intAttr('axis', -1)]);
  const context = x.node('MatMul', [probs, vh], 'context');
  const merged = x.node('Transpose', [context], 'context_t', [intsAttr('perm', [0, 2, 1, 3])]);
  x.node('Reshape', [merged, x.ints('merged_shape', [0, 0, d])], [n.output![0]!]);
}

const EXPANDERS: Readonly<Record<string, (ix: GraphIndex, x: Expansion, source: string) => void>> = {
  SkipLayerNormalization: (ix, x, source) => expandSkipNorm(ix, x, source, false),
  SkipSimplifiedLayerNormalization: (ix, x, source) => expandSkipNorm(ix, x, source, true),
  FastGelu: (_ix, x) => expandGelu(x),
  BiasGelu: (_ix, x) => expandGelu(x),
  GemmFastGelu: (_ix, x) => expandGelu(x),
  Attention: expandAttention,
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
  const nodes: NodeProto[] = [];
  for (const node of graph.node) {
    const op = node.opType ?? '';
    const expand = node.domain === MICROSOFT ? EXPANDERS[op] : undefined;
    if (node.domain === MICROSOFT && REFUSED[op]) refuse(source, node, REFUSED[op]);
    if (!expand) {
      nodes.push(node);
      continue;
    }
    const x = new Expansion(names, inits, node);
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
