// Head mappings in embedding space (Dar et al. 2023): for one attention head h of block l,
//   M = S · W_V^h · W_O^h · Sᵀ      [V, V]
// with S the input embedding ('embedding' side) or the LM head as [V, d] ('unembedding'
// side); biases and norms are left out. M is too large to materialise for a real vocabulary,
// so the graph computes one chunk of rows per run: input `row_start` (int64 scalar) →
// rows [row_start, row_start + chunk) ∩ [0, V) of M (none when row_start ≥ V), reduced to their top-k
// (`ids` int64 / `scores` float32 [rows, k], sorted, ties: lowest id). A runner scans all rows
// chunk by chunk and keeps whatever running reduction it needs.
// With the `token_frequency` normalisation, M[s, t] is divided by n_in[s] · n_out[t], per-token
// normalisers over every head of the model that a second graph computes, chunk by chunk too
// (`row_start` → `n_in`, `n_out` float32 [rows]).
// The graphs are standalone and small: their initializers are weight tensors of the source
// model. External weights are referenced, never read or copied: run a graph with
// `sessionConfig` (onnxruntime then reads them from the source model's folder).

import { dirname } from 'node:path';
import { UserError } from '../errors.js';
import { GraphIndex, tensorValueInfo } from './graph.js';
import { DataType, encodeModel, type NodeProto, type TensorProto, type ValueInfoProto } from './proto.js';
import { readSourceModel, type SourceModel } from './source.js';
import type { ModelSites } from './sites/types.js';
import { intAttr, intsAttr, isExternal, makeTensor, tensorDims } from './tensor.js';
import { EXTERNAL_FOLDER_CONFIG } from './variant.js';

export type VocabularySide = 'embedding' | 'unembedding';

/** The per-token normalisers n_in and n_out, one entry per row of S. */
export interface TokenNormalisers {
  readonly input: Float32Array;
  readonly output: Float32Array;
}

export interface HeadMappingRequest {
  readonly layer: number;
  readonly head: number;
  readonly side: VocabularySide;
  readonly k: number;
  /** Rows of M per run. */
  readonly chunk: number;
  /** Ids ≥ this are excluded from the top-k (default: all of the vocabulary). */
  readonly vocabLimit?: number;
  /** The `token_frequency` normalisation's n_in and n_out for this side (absent: M as it is). */
  readonly normalisers?: TokenNormalisers;
}

export interface TokenNormaliserRequest {
  readonly side: VocabularySide;
  /** Rows of S per run. */
  readonly chunk: number;
}

export interface HeadMappingGraph {
  readonly bytes: Uint8Array;
  /** Vocabulary size V (rows and columns of M). */
  readonly vocab: number;
  /** onnxruntime session config entries when the weights are external (as for buildVariant). */
  readonly sessionConfig?: Readonly<Record<string, string>>;
  readonly sites: ModelSites;
}

export const HeadMappingNames = { rowStart: 'row_start', ids: 'ids', scores: 'scores' } as const;
export const TokenNormaliserNames = { rowStart: HeadMappingNames.rowStart, input: 'n_in', output: 'n_out' } as const;

/** Added to every normaliser, as in Dar et al.'s notebook, so that no token divides by 0. */
const NORMALISER_EPSILON = 1e-9;

function checkChunk(chunk: number): void {
  if (!Number.isInteger(chunk) || chunk < 1) throw new UserError(`head mapping: chunk ${chunk} must be a positive integer`);
}

/**
 * A graph under construction that reads the source model's weights in token space: node and
 * constant helpers, the rows of S a run covers, and the value / output weights of runs of heads.
 */
class TokenSpaceGraph {
  readonly nodes: NodeProto[] = [];
  readonly inits: TensorProto[] = [];
  private readonly copied = new Set<string>();
  private counter = 0;
  readonly sites: ModelSites;
  /** Vocabulary size V: rows of S. */
  readonly vocab: number;
  private readonly vocabName: string;
  /** S as stored: [V, d] ('Vd') or [d, V] ('dV'). */
  private readonly vocabLayout: 'Vd' | 'dV';

  /** The source's graph, indexed to find its weights. */
  private readonly ix: GraphIndex;

  constructor(private readonly source: SourceModel, side: VocabularySide, private readonly prefix: string) {
    this.sites = source.sites;
    this.ix = new GraphIndex(source.model.graph!);
    this.vocabName = side === 'embedding' ? this.sites.embedding.weight : this.sites.unembedding.weight;
    this.vocabLayout = side === 'embedding' ? 'Vd' : this.sites.unembedding.layout;
    const dims = tensorDims(this.weight(this.vocabName));
    this.vocab = (this.vocabLayout === 'Vd' ? dims[0] : dims[1]) ?? 0;
  }

  private weight(name: string): TensorProto {
    const t = this.ix.constantTensor(name);
    if (!t) throw new Error(`internal: '${name}' is not a constant tensor`);
    return t;
  }

  private useWeight(name: string): string {
    if (!this.copied.has(name)) {
      this.copied.add(name);
      this.inits.push({ ...this.weight(name), name });
    }
    return name;
  }

  private name(kind: string): string {
    return `${this.prefix}/${kind}_${this.counter++}`;
  }

  constant(dataType: number, dims: number[], values: (number | bigint | boolean)[]): string {
    const name = this.name('const');
    this.inits.push(makeTensor(name, dataType, dims, values));
    return name;
  }

  floats(dims: number[], values: Float32Array): string {
    const name = this.name('const');
    this.inits.push({ name, dataType: DataType.FLOAT, dims, rawData: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) });
    return name;
  }

  ints(values: number[]): string {
    return this.constant(DataType.INT64, [values.length], values);
  }

  op(opType: string, input: string[], attrs: NodeProto['attribute'] = []): string {
    const out = this.name(opType);
    this.nodes.push({ opType, input, output: [out], name: out, ...(attrs?.length ? { attribute: attrs } : {}) });
    return out;
  }

  transpose(x: string): string {
    return this.op('Transpose', [x], [intsAttr('perm', [1, 0])]);
  }

  /** Slices [start, end) of axis `axis` of a constant weight (constant-folded by onnxruntime). */
  private sliceOf(w: string, axis: number, start: number, end: number): string {
    return this.op('Slice', [this.useWeight(w), this.ints([start]), this.ints([end]), this.ints([axis])]);
  }

  /** Casts the model's activation dtype to float32 (a no-op for float32 models). */
  toFloat(x: string): string {
    return this.sites.dtype === DataType.FLOAT ? x : this.op('Cast', [x], [intAttr('to', DataType.FLOAT)]);
  }

  /**
   * W_V of key/value heads [first, end) of block `layer`, as [d, (end − first)·dh]: columns
   * offset + first·dh … of the value weight ([d, 3d] fused q|k|v: offset 2d; a separate v
   * projection: offset 0); rows, then transposed, if the weight is [out, in].
   */
  valueWeight(layer: number, first: number, end: number): string {
    const { dHead: dh, kvHeads, heads } = this.sites;
    const vp = this.sites.perLayer[layer]!.vProj;
    if (vp.headStride !== undefined) {
      throw new UserError(`head mapping: layer ${layer}'s values come from a q|k|v projection fused per head (GPT-NeoX layout), which head mappings do not read yet`);
    }
    const vDims = tensorDims(this.weight(vp.weight));
    const vOut = vDims[vp.layout === 'io' ? 1 : 0] ?? 0;
    const units = (kvHeads ?? heads) * dh;
    if (vOut < vp.offset + units) {
      throw new UserError(`head mapping: layer ${layer}'s value weight [${vDims.join(', ')}] has no ${kvHeads ?? heads} × ${dh} value units from unit ${vp.offset}`);
    }
    const [a, b] = [vp.offset + first * dh, vp.offset + end * dh];
    return vp.layout === 'io' ? this.sliceOf(vp.weight, 1, a, b) : this.transpose(this.sliceOf(vp.weight, 0, a, b));
  }

  /** W_O of query heads [first, end) of block `layer`, as [(end − first)·dh, d]: its rows of the output projection (columns, transposed, if [out, in]). */
  outputWeight(layer: number, first: number, end: number): string {
    const proj = this.sites.perLayer[layer]!.attnProj;
    const [a, b] = [first * this.sites.dHead, end * this.sites.dHead];
    return proj.layout === 'io' ? this.sliceOf(proj.weight, 0, a, b) : this.transpose(this.sliceOf(proj.weight, 1, a, b));
  }

  /** The run's row range [row_start, row_start + chunk) as 1-D Slice bounds. */
  rowRange(chunk: number): { start: string; end: string } {
    const start = this.op('Unsqueeze', [HeadMappingNames.rowStart, this.ints([0])]);
    return { start, end: this.op('Add', [start, this.ints([chunk])]) };
  }

  /** The run's rows of S, [rows, d]. */
  vocabRows(range: { start: string; end: string }): string {
    const rows = this.op('Slice', [this.useWeight(this.vocabName), range.start, range.end, this.ints([this.vocabLayout === 'Vd' ? 0 : 1])]);
    return this.vocabLayout === 'Vd' ? rows : this.transpose(rows);
  }

  /** x · Sᵀ for x [rows, d]: [rows, V]. */
  timesVocabTransposed(x: string): string {
    return this.vocabLayout === 'Vd'
      ? this.op('Gemm', [x, this.useWeight(this.vocabName)], [intAttr('transB', 1)])
      : this.op('MatMul', [x, this.useWeight(this.vocabName)]);
  }

  encode(name: string, docString: string, metadata: Record<string, unknown>, outputs: ValueInfoProto[]): HeadMappingGraph {
    const bytes = encodeModel({
      irVersion: 8,
      opsetImport: [{ domain: '', version: 17 }],
      producerName: 'dissect',
      docString: `${docString} of ${this.source.path}`,
      metadataProps: [{ key: `dissect.${name}`, value: JSON.stringify(metadata) }],
      graph: {
        name: `dissect_${name}`,
        node: this.nodes,
        initializer: this.inits,
        input: [tensorValueInfo(HeadMappingNames.rowStart, DataType.INT64, [], 'first row of S covered by this run')],
        output: outputs,
      },
    });
    const external = this.inits.some(isExternal) || this.source.files.length > 0;
    return {
      bytes, vocab: this.vocab, sites: this.sites,
      ...(external ? { sessionConfig: { [EXTERNAL_FOLDER_CONFIG]: dirname(this.source.path) } } : {}),
    };
  }
}

const asSource = (source: string | SourceModel): SourceModel => (typeof source === 'string' ? readSourceModel(source) : source);

export function buildHeadMappingGraph(source: string | SourceModel, req: HeadMappingRequest): HeadMappingGraph {
  const g = new TokenSpaceGraph(asSource(source), req.side, 'head_mapping');
  const { layers, heads: H } = g.sites;
  if (!Number.isInteger(req.layer) || req.layer < 0 || req.layer >= layers) throw new UserError(`head mapping: layer ${req.layer} is outside 0..${layers - 1}`);
  if (!Number.isInteger(req.head) || req.head < 0 || req.head >= H) throw new UserError(`head mapping: head ${req.head} is outside 0..${H - 1}`);
  checkChunk(req.chunk);
  const V = g.vocab;
  const limit = Math.min(req.vocabLimit ?? V, V);
  if (!Number.isInteger(limit) || limit < 1) throw new UserError(`head mapping: vocabLimit ${req.vocabLimit} must be a positive integer`);
  if (!Number.isInteger(req.k) || req.k < 1 || req.k > limit) throw new UserError(`head mapping: k = ${req.k} must be in 1..${limit}`);
  const { normalisers, ...described } = req;
  if (normalisers && (normalisers.input.length !== V || normalisers.output.length !== V)) {
    throw new Error(`internal: normalisers of ${normalisers.input.length} and ${normalisers.output.length} tokens for a vocabulary of ${V}`);
  }

  // Grouped-query attention: query head h reads key/value head ⌊h / (H / kvHeads)⌋.
  const valueHead = Math.floor(req.head / (H / (g.sites.kvHeads ?? H)));
  const wv = g.valueWeight(req.layer, valueHead, valueHead + 1);
  const wo = g.outputWeight(req.layer, req.head, req.head + 1);
  const range = g.rowRange(req.chunk);
  const out = g.op('MatMul', [g.op('MatMul', [g.vocabRows(range), wv]), wo]); // [rows, d_model]
  let m = g.toFloat(g.timesVocabTransposed(out));
  if (normalisers) {
    // Baked in rather than fed: they are fixed for the whole scan, so onnxruntime uploads them
    // once per session instead of once per chunk, and the graph keeps its one input; they add
    // 8 bytes a token, little next to the weights the graph references.
    m = g.op('Div', [m, g.floats([V], normalisers.output)]);
    m = g.op('Div', [m, g.op('Slice', [g.floats([V, 1], normalisers.input), range.start, range.end, g.ints([0])])]);
  }
  if (limit < V) m = g.op('Add', [m, g.constant(DataType.FLOAT, [V], Array.from({ length: V }, (_, i) => (i < limit ? 0 : -Infinity)))]);
  // one sentinel row, sliced off after the TopK: onnxruntime's TopK crashes (SIGFPE) on an empty
  // input, which row_start ≥ V would give
  const padded = g.op('Concat', [m, g.constant(DataType.FLOAT, [1, V], new Array<number>(V).fill(0))], [intAttr('axis', 0)]);
  g.nodes.push({
    opType: 'TopK', input: [padded, g.ints([req.k])], output: ['head_mapping/top_scores', 'head_mapping/top_ids'], name: 'head_mapping/TopK',
    attribute: [intAttr('axis', -1), intAttr('largest', 1), intAttr('sorted', 1)],
  });
  for (const [from, to] of [['head_mapping/top_scores', HeadMappingNames.scores], ['head_mapping/top_ids', HeadMappingNames.ids]] as const) {
    g.nodes.push({ opType: 'Slice', input: [from, g.ints([0]), g.ints([-1]), g.ints([0])], output: [to], name: `head_mapping/${to}` });
  }
  return g.encode('head_mapping',
    `head mapping S·W_V·W_O·Sᵀ${normalisers ? ' / (n_in·n_outᵀ)' : ''} of layer ${req.layer} head ${req.head} (${req.side})`,
    { ...described, normalised: normalisers !== undefined }, [
      tensorValueInfo(HeadMappingNames.scores, DataType.FLOAT, ['rows', req.k], 'top-k scores of each row, descending'),
      tensorValueInfo(HeadMappingNames.ids, DataType.INT64, ['rows', req.k], 'token ids of the scores'),
    ]);
}

/**
 * The `token_frequency` normalisers of rows [row_start, row_start + chunk) ∩ [0, V) of S:
 *   n_in[t]  = 1e−9 + mean over every block ℓ, query head h, head unit j of |(S · W_V^{ℓ,h})[t, j]|
 *   n_out[t] = 1e−9 + mean over ℓ, h, j of |(W_O^{ℓ,h} · Sᵀ)[j, t]|
 * Every query head of a key/value group reads the same W_V, so the mean over query heads
 * equals the mean over key/value heads, and each block's value and output weights are used
 * whole. Each block's products cover only the run's rows, one block at a time: the [V, L·d]
 * products of all blocks never exist at once.
 */
export function buildTokenNormaliserGraph(source: string | SourceModel, req: TokenNormaliserRequest): HeadMappingGraph {
  checkChunk(req.chunk);
  const g = new TokenSpaceGraph(asSource(source), req.side, 'token_normaliser');
  const { layers, heads: H } = g.sites;
  const rows = g.vocabRows(g.rowRange(req.chunk));
  const meanAbs = (product: string): string => g.op('ReduceMean', [g.op('Abs', [g.toFloat(product)])], [intsAttr('axes', [1]), intAttr('keepdims', 0)]);
  const normaliser = (perBlock: (layer: number) => string, output: string): void => {
    const total = g.op('Sum', Array.from({ length: layers }, (_, l) => meanAbs(perBlock(l))));
    const mean = g.op('Div', [total, g.constant(DataType.FLOAT, [], [layers])]);
    g.nodes.push({ opType: 'Add', input: [mean, g.constant(DataType.FLOAT, [], [NORMALISER_EPSILON])], output: [output], name: `token_normaliser/${output}` });
  };
  normaliser((l) => g.op('MatMul', [rows, g.valueWeight(l, 0, g.sites.kvHeads ?? H)]), TokenNormaliserNames.input);
  normaliser((l) => g.op('MatMul', [rows, g.transpose(g.outputWeight(l, 0, H))]), TokenNormaliserNames.output);
  return g.encode('token_normaliser', `per-token normalisers n_in, n_out over all heads (${req.side})`, { ...req }, [
    tensorValueInfo(TokenNormaliserNames.input, DataType.FLOAT, ['rows'], 'n_in: mean |S·W_V| over every head of the model, + 1e-9'),
    tensorValueInfo(TokenNormaliserNames.output, DataType.FLOAT, ['rows'], 'n_out: mean |W_O·Sᵀ| over every head of the model, + 1e-9'),
  ]);
}
