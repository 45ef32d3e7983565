// What a model's graph bounds its inputs by, found in one place: token ids must be below the
// token embedding's rows, and a prompt may have no more tokens than a table the graph looks
// positions up in has rows. onnxruntime aborts the whole run on an index beyond a table, so
// the runner checks each fact against these limits first.
//
// A position table is a constant of two or more dimensions that the graph reads at run time
// along one axis: a Gather with computed indices (GPT-2's learned positions, GPT-J's sin/cos
// table looked up by position), or a Slice with computed bounds (Llama's sin/cos table or a
// causal-mask buffer cut to the sequence length). A graph that computes its sin/cos from the
// positions has none, and then no limit is known.

import { GraphIndex } from './graph.js';
import type { ModelProto, NodeProto } from './proto.js';
import type { ModelSites } from './sites/types.js';
import { attrInt, tensorDims } from './tensor.js';

export interface ModelLimits {
  /** Rows of the token embedding: every token id must be below this. */
  readonly embeddingRows: number;
  /** The most tokens one input may have, and the table that bounds it; absent when the graph bounds none. */
  readonly positions?: { readonly count: number; readonly table: string };
}

export function modelLimits(model: ModelProto, sites: ModelSites): ModelLimits {
  const ix = new GraphIndex(model.graph!);
  const embeddingRows = tensorDims(ix.constantTensor(sites.embedding.weight) ?? {})[0] ?? 0;
  let positions: ModelLimits['positions'];
  for (const n of ix.nodes) {
    for (const bound of positionBounds(ix, n, sites.embedding.weight)) {
      if (!positions || bound.count < positions.count) positions = bound;
    }
  }
  return { embeddingRows, ...(positions ? { positions } : {}) };
}

/** The rows a node reads a position table along, when it is one (see the file comment). */
function positionBounds(ix: GraphIndex, n: NodeProto, tokenEmbedding: string): { count: number; table: string }[] {
  const table = n.input?.[0];
  if (!table || table === tokenEmbedding || !ix.isConstant(table)) return [];
  const dims = tensorDims(ix.constantTensor(table) ?? {});
  if (dims.length < 2) return [];
  const computed = (t: string | undefined): boolean => !!t && !ix.isConstant(t);
  const along = (axis: number): { count: number; table: string } => ({ count: dims[axis < 0 ? axis + dims.length : axis]!, table });
  if (n.opType === 'Gather' && computed(n.input?.[1])) return [along(attrInt(n, 'axis', 0)!)];
  if (n.opType === 'Slice' && (computed(n.input?.[1]) || computed(n.input?.[2]))) {
    const axes = n.input?.[3] ? ix.constantValues(n.input[3]) : undefined; // implicit axes: how many is not known
    return (axes ?? []).map(along);
  }
  return [];
}
