// Exporters write nodes that compute nothing: Identity, and a Cast to the type its input
// already has (Hugging Face's RMSNorm upcasts with `.to(float32)`, a no-op in a float32
// model, and the TorchScript exporter then feeds the Cast's output to the residual Add as
// well as to the norm). Before site detection such nodes are removed and their readers
// read the input instead, so patterns see one tensor where the model has one value.
// A node is kept when its output is a graph output or is read from inside a subgraph (an
// If branch reads outer tensors by name).

import { GraphIndex } from './graph.js';
import { inferDtypes } from './infer.js';
import { AttributeType, type GraphProto, type ModelProto, type NodeProto } from './proto.js';
import { attrInt } from './tensor.js';

/** Removed nodes, op type → count. */
export type Canonicalised = Record<string, number>;

/** Every tensor name a subgraph of `graph` (at any depth) reads. */
function namesReadInSubgraphs(graph: GraphProto): Set<string> {
  const read = new Set<string>();
  const visit = (g: GraphProto): void => {
    for (const n of g.node ?? []) {
      for (const a of n.attribute ?? []) {
        const subs = a.type === AttributeType.GRAPH && a.g ? [a.g] : a.type === AttributeType.GRAPHS ? a.graphs ?? [] : [];
        for (const s of subs) {
          for (const m of s.node ?? []) for (const i of m.input ?? []) if (i) read.add(i);
          visit(s);
        }
      }
    }
  };
  visit(graph);
  return read;
}

function isNoOp(node: NodeProto, dtypes: ReadonlyMap<string, number>): boolean {
  const x = node.input?.[0];
  if (!x || (node.output ?? []).length !== 1) return false;
  if (node.opType === 'Identity') return true;
  if (node.opType !== 'Cast') return false;
  const from = dtypes.get(x);
  return from !== undefined && from === attrInt(node, 'to');
}

/** Removes, in place, the main graph's no-op Identity and Cast nodes (see the file comment). */
export function canonicalise(model: ModelProto): Canonicalised {
  const graph = model.graph;
  if (!graph?.node?.length) return {};
  const ix = new GraphIndex(graph);
  const dtypes = inferDtypes(ix);
  const pinned = namesReadInSubgraphs(graph);
  for (const o of graph.output ?? []) if (o.name) pinned.add(o.name);
  const alias = new Map<string, string>();
  const resolve = (t: string): string => alias.get(t) ?? t;
  const removed: Canonicalised = {};
  const kept: NodeProto[] = [];
  for (const node of graph.node) {
    if (node.input) node.input = node.input.map((i) => (i ? resolve(i) : i));
    const out = node.output?.[0] ?? '';
    if (isNoOp(node, dtypes) && !pinned.has(out)) {
      alias.set(out, node.input![0]!);
      removed[node.opType!] = (removed[node.opType!] ?? 0) + 1;
      continue;
    }
    kept.push(node);
  }
  if (!alias.size) return {};
  graph.node = kept;
  graph.valueInfo = (graph.valueInfo ?? []).filter((v) => !alias.has(v.name ?? ''));
  return removed;
}
