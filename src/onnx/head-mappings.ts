// Head mappings in embedding space (Dar et al. 2023): for one attention head h of block l,
//   M = E · W_V^h · W_O^h · Eᵀ      [V, V]
// with E the input embedding ('embedding' side) or the LM head as [V, d] ('unembedding'
// side); biases and norms are left out. M is too large to materialise for a real vocabulary,
// so the graph computes one chunk of rows per run: input `row_start` (int64 scalar) →
// rows [row_start, row_start + chunk) ∩ [0, V) of M (none when row_start ≥ V), reduced to their top-k
// (`ids` int64 / `scores` float32 [rows, k], sorted, ties: lowest id). A runner scans all rows
// chunk by chunk and keeps whatever running reduction it needs.
// The graph is standalone and small: its initializers are the three weight tensors of the
// source model. External weights are referenced, never read or copied: run the graph with
// `sessionConfig` (onnxruntime then reads them from the source model's folder).

import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UserError } from '../errors.js';
import { checkExternalData } from './external.js';
import { GraphIndex, tensorValueInfo } from './graph.js';
import { DataType, decodeModel, encodeModel, type ModelProto, type NodeProto, type TensorProto } from './proto.js';
import { detectSites } from './sites/index.js';
import type { ModelSites } from './sites/types.js';
import { intAttr, intsAttr, isExternal, makeTensor, tensorDims } from './tensor.js';
import { EXTERNAL_FOLDER_CONFIG } from './variant.js';

export interface HeadMappingRequest {
  readonly layer: number;
  readonly head: number;
  readonly side: 'embedding' | 'unembedding';
  readonly k: number;
  /** Rows of M per run. */
  readonly chunk: number;
  /** Ids ≥ this are excluded from the top-k (default: all of the vocabulary). */
  readonly vocabLimit?: number;
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

/** A model read once for the graphs of all its heads (reading a large model per head would dominate). */
export interface HeadMappingSource {
  readonly path: string;
  readonly files: readonly string[];
  readonly sites: ModelSites;
  readonly ix: GraphIndex;
}

export function readHeadMappingSource(modelPath: string): HeadMappingSource {
  const model = decodeModel(readFileSync(modelPath), modelPath);
  return { path: modelPath, files: checkExternalData(model, modelPath), sites: detectSites(model, modelPath), ix: new GraphIndex(model.graph!) };
}

export function buildHeadMappingGraph(source: string | HeadMappingSource, req: HeadMappingRequest): HeadMappingGraph {
  const { path: modelPath, files, sites, ix } = typeof source === 'string' ? readHeadMappingSource(source) : source;
  const { layers, heads: H, dHead: dh } = sites;
  if (!Number.isInteger(req.layer) || req.layer < 0 || req.layer >= layers) throw new UserError(`head mapping: layer ${req.layer} is outside 0..${layers - 1}`);
  if (!Number.isInteger(req.head) || req.head < 0 || req.head >= H) throw new UserError(`head mapping: head ${req.head} is outside 0..${H - 1}`);
  if (!Number.isInteger(req.chunk) || req.chunk < 1) throw new UserError(`head mapping: chunk ${req.chunk} must be a positive integer`);
  const L = sites.perLayer[req.layer]!;

  const weight = (name: string): TensorProto => {
    const t = ix.constantTensor(name);
    if (!t) throw new Error(`internal: '${name}' is not a constant tensor`);
    return t;
  };
  // the vocabulary matrix, as [V, d] ('Vd') or [d, V] ('dV')
  const vocabName = req.side === 'embedding' ? sites.embedding.weight : sites.unembedding.weight;
  const vocabLayout = req.side === 'embedding' ? 'Vd' : sites.unembedding.layout;
  const vocabDims = tensorDims(weight(vocabName));
  const V = (vocabLayout === 'Vd' ? vocabDims[0] : vocabDims[1]) ?? 0;
  const limit = Math.min(req.vocabLimit ?? V, V);
  if (!Number.isInteger(limit) || limit < 1) throw new UserError(`head mapping: vocabLimit ${req.vocabLimit} must be a positive integer`);
  if (!Number.isInteger(req.k) || req.k < 1 || req.k > limit) throw new UserError(`head mapping: k = ${req.k} must be in 1..${limit}`);
  const vp = L.vProj;
  const vDims = tensorDims(weight(vp.weight));
  const vOut = vDims[vp.layout === 'io' ? 1 : 0] ?? 0;
  // Grouped-query attention: query head h reads key/value head ⌊h / (H / kvHeads)⌋.
  const kvHeads = sites.kvHeads ?? H;
  if (vOut < vp.offset + kvHeads * dh) {
    throw new UserError(`head mapping: layer ${req.layer}'s value weight [${vDims.join(', ')}] has no ${kvHeads} × ${dh} value units from unit ${vp.offset}`);
  }
  const valueHead = Math.floor(req.head / (H / kvHeads));

  const nodes: NodeProto[] = [];
  const inits: TensorProto[] = [];
  const copied = new Set<string>();
  const useWeight = (name: string): string => {
    if (!copied.has(name)) {
      copied.add(name);
      inits.push({ ...weight(name), name });
    }
    return name;
  };
  let counter = 0;
  const constant = (dataType: number, dims: number[], values: (number | bigint | boolean)[]): string => {
    const name = `head_mapping/const_${counter++}`;
    inits.push(makeTensor(name, dataType, dims, values));
    return name;
  };
  const ints = (values: number[]): string => constant(DataType.INT64, [values.length], values);
  const op = (opType: string, input: string[], attrs: NodeProto['attribute'] = []): string => {
    const out = `head_mapping/${opType}_${counter++}`;
    nodes.push({ opType, input, output: [out], name: out, ...(attrs?.length ? { attribute: attrs } : {}) });
    return out;
  };
  /** Slices [start, end) of axis `axis` of a constant weight (constant-folded by onnxruntime). */
  const sliceOf = (w: string, axis: number, start: number, end: number): string => op('Slice', [useWeight(w), ints([start]), ints([end]), ints([axis])]);
  const T = (x: string): string => op('Transpose', [x], [intsAttr('perm', [1, 0])]);

  // W_V^h [d, dh]: columns offset + h·dh … of the value weight ([d, 3d] fused q|k|v: offset 2d; a
  // separate v projection: offset 0); rows, then transposed, if the weight is [out, in]
  const v0 = vp.offset + valueHead * dh;
  const wv = vp.layout === 'io' ? sliceOf(vp.weight, 1, v0, v0 + dh) : T(sliceOf(vp.weight, 0, v0, v0 + dh));
  // W_O^h [dh, d]: the head's rows of the [d, d] output projection (its columns, transposed, if [out, in])
  const o0 = req.head * dh;
  const wo = L.attnProj.layout === 'io' ? sliceOf(L.attnProj.weight, 0, o0, o0 + dh) : T(sliceOf(L.attnProj.weight, 1, o0, o0 + dh));

  // rows [row_start, row_start + chunk) of E
  const start = op('Unsqueeze', [HeadMappingNames.rowStart, ints([0])]);
  const end = op('Add', [start, ints([req.chunk])]);
  const vocabAxis = vocabLayout === 'Vd' ? 0 : 1;
  let rows = op('Slice', [useWeight(vocabName), start, end, ints([vocabAxis])]);
  if (vocabLayout === 'dV') rows = T(rows);
  const out = op('MatMul', [op('MatMul', [rows, wv]), wo]); // [rows, d_model]
  let m = vocabLayout === 'Vd' ? op('Gemm', [out, vocabName], [intAttr('transB', 1)]) : op('MatMul', [out, vocabName]);
  if (sites.dtype !== DataType.FLOAT) m = op('Cast', [m], [intAttr('to', DataType.FLOAT)]);
  if (limit < V) m = op('Add', [m, constant(DataType.FLOAT, [V], Array.from({ length: V }, (_, i) => (i < limit ? 0 : -Infinity)))]);
  // one sentinel row, sliced off after the TopK: onnxruntime's TopK crashes (SIGFPE) on an empty
  // input, which row_start ≥ V would give
  const padded = op('Concat', [m, constant(DataType.FLOAT, [1, V], new Array<number>(V).fill(0))], [intAttr('axis', 0)]);
  nodes.push({
    opType: 'TopK', input: [padded, ints([req.k])], output: ['head_mapping/top_scores', 'head_mapping/top_ids'], name: 'head_mapping/TopK',
    attribute: [intAttr('axis', -1), intAttr('largest', 1), intAttr('sorted', 1)],
  });
  for (const [from, to] of [['head_mapping/top_scores', HeadMappingNames.scores], ['head_mapping/top_ids', HeadMappingNames.ids]] as const) {
    nodes.push({ opType: 'Slice', input: [from, ints([0]), ints([-1]), ints([0])], output: [to], name: `head_mapping/${to}` });
  }

  const graph: ModelProto = {
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    producerName: 'dissect',
    docString: `head mapping E·W_V·W_O·Eᵀ of layer ${req.layer} head ${req.head} (${req.side}) of ${resolve(modelPath)}`,
    metadataProps: [{ key: 'dissect.head_mapping', value: JSON.stringify(req) }],
    graph: {
      name: 'dissect_head_mapping',
      node: nodes,
      initializer: inits,
      input: [tensorValueInfo(HeadMappingNames.rowStart, DataType.INT64, [], 'first row of M computed by this run')],
      output: [
        tensorValueInfo(HeadMappingNames.scores, DataType.FLOAT, ['rows', req.k], 'top-k scores of each row, descending'),
        tensorValueInfo(HeadMappingNames.ids, DataType.INT64, ['rows', req.k], 'token ids of the scores'),
      ],
    },
  };
  const external = inits.some(isExternal) || files.length > 0;
  const folder = dirname(resolve(modelPath));
  return {
    bytes: encodeModel(graph), vocab: V, sites,
    ...(external ? { sessionConfig: { [EXTERNAL_FOLDER_CONFIG]: folder } } : {}),
  };
}
