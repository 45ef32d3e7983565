// What a model's graph bounds its inputs by, found in one place: token ids must be below the
// token embedding's rows, and a prompt may have no more tokens than a table the graph looks
// positions up in has rows. onnxruntime aborts the whole run on an index beyond a table, so
// the runner checks each fact against these limits first.
//
// A position table is a constant of two or more dimensions that the graph reads at run time
// along one axis: a Gather with computed indices (GPT-2's learned positions, GPT-J's sin/cos
// table looked up by position), a GatherElements with computed indices on such a table
// repeated over the batch (GPT-J as the TorchScript and dynamo exporters write it), or a Slice
// with computed bounds (Llama's sin/cos table or a causal-mask buffer cut to the sequence
// length). A graph that computes its sin/cos from the positions (Llama in recent transformers)
// has none, and then no limit is known.

import { GraphIndex } from './graph.js';
import type { ModelProto, NodeProto } from './proto.js';
import type { ModelSites } from './sites/types.js';
import { attrInt, tensorDims } from './tensor.js';

/** A position table: how many rows it has, and its name in the graph. */
interface Bound { readonly count: number; readonly table: string }

export interface ModelLimits {
  /** Rows of the token embedding: every token id must be below this. */
  readonly embeddingRows: number;
  /** The most tokens one input may have, and the table that bounds it; absent when the graph bounds none. */
  readonly positions?: Bound;
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

/** The rows of the position tables a node reads, when it reads any (see the file comment). */
function positionBounds(ix: GraphIndex, n: NodeProto, tokenEmbedding: string): Bound[] {
  const data = n.input?.[0];
  const computed = (i: number): boolean => !!n.input?.[i] && !ix.isConstant(n.input[i]!);
  if (!data) return [];
  if (n.opType === 'Gather' && computed(1)) return rowsOf(ix, data, attrInt(n, 'axis', 0)!, tokenEmbedding);
  if (n.opType === 'Slice' && (computed(1) || computed(2))) { // starts or ends known at run time
    const axes = n.input?.[3] ? ix.constantValues(n.input[3]) : undefined; // implicit axes: how many is not known
    return (axes ?? []).flatMap((axis) => rowsOf(ix, data, axis, tokenEmbedding));
  }
  if (n.opType === 'GatherElements' && computed(1)) {
    // GPT-J's sin/cos table [positions, features], repeated over the batch and read per position
    const table = broadcastSource(ix, data);
    return table ? rowsOf(ix, table, -2, tokenEmbedding) : [];
  }
  return [];
}

/** The size of a constant table of two or more dimensions along `axis`; none for anything else. */
function rowsOf(ix: GraphIndex, table: string, axis: number, tokenEmbedding: string): Bound[] {
  if (table === tokenEmbedding || !ix.isConstant(table)) return [];
  const dims = tensorDims(ix.constantTensor(table) ?? {});
  const count = dims[axis < 0 ? axis + dims.length : axis];
  return dims.length >= 2 && count !== undefined ? [{ count, table }] : [];
}

/** The constant that `t` repeats over new leading axes (Unsqueeze, Expand, Tile), if it is one. */
function broadcastSource(ix: GraphIndex, t: string): string | undefined {
  let cur = t;
  for (let guard = 0; guard < 8 && !ix.isConstant(cur); guard++) {
    const p = ix.producer(cur);
    if (!p || !['Unsqueeze', 'Expand', 'Tile'].includes(p.opType ?? '') || !p.input?.[0]) return undefined;
    cur = p.input[0];
  }
  return ix.isConstant(cur) ? cur : undefined;
}
