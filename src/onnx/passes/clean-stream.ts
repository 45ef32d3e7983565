// The clean stream inside the graph, for devices that onnxruntime-node reaches only through the
// host (CUDA: no IO binding, so every feed is copied to the device and every fetched output
// back). Last-position rows read the clean run's keys and values, and rows from a later block
// its hidden state there; run as separate passes, those come back to the host after the clean
// pass and go out again with every batch of rows. Here the graph holds the variant twice: a
// copy of it (every name but the weights' prefixed dissect_clean/, its inputs fed the prompts
// the batch's rows read, whole and unchanged) computes them, and the rows read them where they
// are. The weights are shared (one set of initializers), so the device holds them once. The
// copy keeps its past inputs (fed empty) and its outputs, prefixed too: a batch of whole prompts
// (a clean pass, rows that run in full) runs in the copy, as in the variant itself, and the
// rows' part then runs one placeholder token against the copy's first prompt (src/run/batch.ts).
// Whole prompts cannot run in the rows' part behind a masked past: exports that build their
// causal mask from the query length alone (the TorchScript GPT-2's) take one query with a past,
// not several.
//
// A batch recomputes the clean run of the prompts it reads: more FLOPs than a clean pass per
// chunk, traded for nothing crossing to the host but ids, masks and read-outs.

import { DataType, type GraphProto, type ModelProto, type NodeProto } from '../proto.js';
import { forSubgraphs } from '../graph.js';
import type { Rewrite } from '../rewrite.js';
import type { ModelSites } from '../sites/types.js';
import { copyModel } from '../source.js';
import { intAttr } from '../tensor.js';
import { CLEAN_STREAM_DIM_PREFIX, CLEAN_STREAM_PREFIX, VariantNames, type CacheEntry } from '../variant.js';
import { addDescribedInput, type AddedInput } from '../inputs.js';

export const CLEAN_STREAM_INPUTS = {
  pastLength: {
    name: VariantNames.pastLength,
    rule: 'past_length',
    meaning: () => 'per row: the positions of its prompt before its tokens (where its start block\'s hidden state is read from the clean stream)',
    fill: () => 'for a row run as its last token, its prompt\'s token count less one; 0 for whole prompts',
    plainRow: () => ({ shape: ['batch'], value: 0 }),
  },
} as const satisfies Record<string, AddedInput>;

/**
 * Rewrites `rw` (a last-position variant, every other pass done) so that the rows' past keys
 * and values, and their start block's hidden state, come from a clean copy of the variant in
 * the same graph instead of inputs.
 */
export function cleanStreamPass(rw: Rewrite, sites: ModelSites, cache: readonly CacheEntry[]): void {
  const g = rw.graph;
  const copy = cleanCopy(rw.model);
  const readsOf = new Map<string, string>();
  for (const { key, value } of cache) for (const slot of [key, value]) readsOf.set(slot.input, CLEAN_STREAM_PREFIX + slot.output);
  const startHidden = (g.input ?? []).some((v) => v.name === VariantNames.startHidden);
  if (startHidden) readsOf.set(VariantNames.startHidden, startHiddenOfRows(rw, sites));
  for (const n of g.node ?? []) replaceReads(n, readsOf);
  g.input = [...(g.input ?? []).filter((v) => !readsOf.has(v.name ?? '')), ...(copy.input ?? [])];
  g.output = [...(g.output ?? []), ...(copy.output ?? [])];
  g.node = [...(g.node ?? []), ...(copy.node ?? [])];
}

/**
 * The graph copied, every name but the initializers' prefixed, and its inputs' and outputs'
 * symbolic dims too: onnxruntime plans buffers by them, and the copy's batch and length are
 * not the rows'.
 */
function cleanCopy(model: ModelProto): GraphProto {
  // the nodes alone: the initializers stay the graph's, shared
  const copy = copyModel({ ...model, graph: { ...model.graph!, initializer: [] } }).graph!;
  const initializers = new Set((model.graph!.initializer ?? []).map((t) => t.name ?? ''));
  const own = new Set<string>();
  const collect = (graph: GraphProto, top: boolean): void => {
    for (const v of graph.input ?? []) if (v.name && !(top && initializers.has(v.name))) own.add(v.name);
    for (const n of graph.node ?? []) {
      for (const o of n.output ?? []) if (o) own.add(o);
      forSubgraphs(n, (sub) => collect(sub, false));
    }
  };
  collect(copy, true);
  const name = (t: string): string => (own.has(t) ? CLEAN_STREAM_PREFIX + t : t);
  const rename = (graph: GraphProto): void => {
    for (const v of [...(graph.input ?? []), ...(graph.output ?? [])]) v.name = name(v.name ?? '');
    graph.valueInfo = [];
    for (const n of graph.node ?? []) {
      n.input = (n.input ?? []).map(name);
      n.output = (n.output ?? []).map(name);
      if (n.name) n.name = CLEAN_STREAM_PREFIX + n.name;
      forSubgraphs(n, rename);
    }
  };
  rename(copy);
  copy.input = (copy.input ?? []).filter((v) => v.name?.startsWith(CLEAN_STREAM_PREFIX));
  const unnamed = (copy.output ?? []).filter((v) => !v.name?.startsWith(CLEAN_STREAM_PREFIX));
  if (unnamed.length) throw new Error(`internal: the clean copy returns ${unnamed.map((v) => v.name).join(', ')}, which no node of it computes`);
  for (const v of [...copy.input, ...(copy.output ?? [])]) {
    for (const d of v.type?.tensorType?.shape?.dim ?? []) if (d.dimParam) d.dimParam = CLEAN_STREAM_DIM_PREFIX + d.dimParam;
  }
  return copy;
}

/** Rewrites the reads of `n` and of its subgraphs by `readsOf`. */
function replaceReads(n: NodeProto, readsOf: ReadonlyMap<string, string>): void {
  n.input = (n.input ?? []).map((i) => readsOf.get(i) ?? i);
  forSubgraphs(n, (sub) => {
    for (const inner of sub.node ?? []) replaceReads(inner, readsOf);
    for (const o of sub.output ?? []) o.name = readsOf.get(o.name ?? '') ?? o.name;
  });
}

/**
 * What dissect_start_hidden fed for last-position rows: the clean stream's hidden state
 * entering block dissect_start_layer at each row's prompt (dissect_past_row) and position
 * (dissect_past_length), [batch, 1, d].
 */
function startHiddenOfRows(rw: Rewrite, sites: ModelSites): string {
  const base = 'dissect/clean_stream/start_hidden';
  const states = rw.dtype(VariantNames.hiddenStates);
  const fed = rw.dtype(VariantNames.startHidden);
  const d = sites.dModel;
  const pastLength = addDescribedInput(rw, CLEAN_STREAM_INPUTS.pastLength, DataType.INT64, ['batch']);
  // the clean copy's batch and length are its own: no shapes recorded for what has them
  const layer = rw.op('Gather', [CLEAN_STREAM_PREFIX + VariantNames.hiddenStates, VariantNames.startLayer], `${base}/layer`, states,
    undefined, [intAttr('axis', 1)]);
  const prompts = rw.squeeze(layer, [1], `${base}/prompts`, states);
  const at = rw.op('Concat', [
    rw.unsqueeze(VariantNames.pastRow, [1], `${base}/row`, DataType.INT64, ['batch', 1]),
    rw.unsqueeze(pastLength, [1], `${base}/position`, DataType.INT64, ['batch', 1]),
  ], `${base}/at`, DataType.INT64, ['batch', 2], [intAttr('axis', 1)]);
  const picked = rw.op('GatherND', [prompts, at], `${base}/picked`, states, ['batch', d]);
  const hidden = rw.unsqueeze(picked, [1], `${base}/rows`, states, ['batch', 1, d]);
  return states === fed ? hidden : rw.op('Cast', [hidden], `${base}/cast`, fed, ['batch', 1, d], [intAttr('to', fed)]);
}
