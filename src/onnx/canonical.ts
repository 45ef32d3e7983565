// Exporters write nodes that compute nothing: Identity, a Concat of one tensor, and a Cast to the type its input
// already has (Hugging Face's RMSNorm upcasts with `.to(float32)`, a no-op in a float32
// model, and the TorchScript exporter then feeds the Cast's output to the residual Add as
// well as to the norm). Before site detection such nodes are removed and their readers
// read the input instead, so patterns see one tensor where the model has one value.
// A node is kept when its output is a graph output or is read from inside a subgraph (an
// If branch reads outer tensors by name).
//
// Optimum's merged decoder (decoder_model_merged.onnx, the layout of transformers.js model
// repositories) is one `If` on a bool input `use_cache_branch` choosing between the decoder with
// and without past inputs. Its with-past branch is the whole decoder (fed an empty past, it runs
// whole prompts): it is inlined and the switch input removed.
//
// OPT flattens the residual stream to [b·s, d] around its MLP (`hidden_states.reshape(-1, d)`,
// then back), so the MLP's sites would not be [b, s, ·]. Such a flatten is undone: the region
// between it and the Reshapes back runs on [b, s, d], its Gemms become MatMuls (the weight read
// through a Transpose when it is [out, in]; the bias added), and the Reshapes back are removed.
//
// The dynamo exporter also merges attention heads straight from [b, s, h, dh] to the 2-D input
// of a Gemm, so no tensor holds the merged heads per position; a Reshape to [b, s, h·dh] is put
// in front (`[0, 0, -1]`), so the context has its usual site.

import { inferDtypes } from './infer.js';
import { GraphIndex, NameAllocator } from './graph.js';
import { AttributeType, DataType, type GraphProto, type ModelProto, type NodeProto } from './proto.js';
import { attrInt, attrInts, makeTensor } from './tensor.js';

export interface Canonicalised {
  /** The merged decoder's switch input, removed with its If (the with-past branch inlined). */
  readonly mergedDecoder?: string;
  /** Removed no-op nodes, op type → count. */
  readonly removed: Record<string, number>;
  /** Head merges given a per-position Reshape. */
  readonly mergedHeads: number;
  /** Residual streams flattened to 2-D around a sublayer, restored to [b, s, d]. */
  readonly unflattened: number;
}

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
  // a Concat of one tensor (the TorchScript exporter writes one for a DynamicCache's first layer)
  if (node.opType === 'Identity' || (node.opType === 'Concat' && (node.input ?? []).filter(Boolean).length === 1)) return true;
  if (node.opType !== 'Cast') return false;
  const from = dtypes.get(x);
  return from !== undefined && from === attrInt(node, 'to');
}

/** A Reshape of heads [b, s, h, dh] (a Transpose's output) straight to 2-D, read by a Gemm. */
function mergesHeadsTo2d(ix: GraphIndex, n: NodeProto): boolean {
  if (n.opType !== 'Reshape') return false;
  const heads = ix.producer(n.input?.[0] ?? '');
  const shape = ix.constantValues(n.input?.[1] ?? '');
  return heads?.opType === 'Transpose' && attrInts(heads, 'perm')?.length === 4 && shape?.length === 2
    && ix.dataConsumers(n.output?.[0] ?? '').some((c) => c.opType === 'Gemm');
}

/** Ops that compute the same on [b, s, d] as on [b·s, d] (last-axis norms, elementwise). */
const ROW_WISE = new Set(['LayerNormalization', 'SimplifiedLayerNormalization', 'Relu', 'Gelu', 'Sigmoid', 'Tanh', 'Erf', 'Add', 'Sub', 'Mul',
  'Div', 'Pow', 'Sqrt', 'Reciprocal', 'Cast', 'Neg', 'Gemm']);

/**
 * A Reshape of a [b, s, d] tensor to [−1, d] whose readers, up to Reshapes back to rank 3, are row-wise
 * (see the file comment): the region's nodes and the Reshapes back, or undefined.
 */
function flattenedRegion(ix: GraphIndex, flatten: NodeProto): { region: NodeProto[]; back: NodeProto[] } | undefined {
  const x = flatten.input?.[0] ?? '';
  const target = flatten.opType === 'Reshape' ? ix.shapes.values(flatten.input?.[1] ?? '') : undefined;
  if (target?.length !== 2 || target[0] !== -1 || ix.shapes.dims(x)?.length !== 3) return undefined;
  const region: NodeProto[] = [];
  const back: NodeProto[] = [];
  const stack = [flatten.output?.[0] ?? ''];
  const seen = new Set(stack);
  while (stack.length) {
    for (const n of ix.consumersOf(stack.pop()!)) {
      if (region.includes(n) || back.includes(n)) continue;
      if (n.opType === 'Reshape' && ix.shapes.values(n.input?.[1] ?? '')?.length === 3) {
        back.push(n);
        continue;
      }
      const gemmOk = n.opType !== 'Gemm' || (attrInt(n, 'transA', 0) === 0 && (n.attribute ?? []).every((a) => (a.name !== 'alpha' && a.name !== 'beta') || a.f === 1));
      // a decomposed LayerNorm reduces the last axis, whichever the rank
      const lastAxisMean = n.opType === 'ReduceMean' && (attrInts(n, 'axes') ?? ix.constantValues(n.input?.[1] ?? ''))?.join(',') === '-1';
      if ((!ROW_WISE.has(n.opType ?? '') && !lastAxisMean) || !gemmOk || (n.opType === 'LayerNormalization' && attrInt(n, 'axis', -1) !== -1)) return undefined;
      region.push(n);
      for (const o of n.output ?? []) if (o && !seen.has(o)) { seen.add(o); stack.push(o); }
    }
  }
  return back.length ? { region, back } : undefined;
}

/** Undoes flattens of the residual stream (see the file comment); returns how many. */
function unflattenResidual(graph: GraphProto): number {
  const ix = new GraphIndex(graph);
  const found = (graph.node ?? []).map((n) => ({ flatten: n, r: flattenedRegion(ix, n) })).filter((f) => f.r);
  if (!found.length) return 0;
  const names = new NameAllocator(graph);
  const alias = new Map<string, string>();
  const replace = new Map<NodeProto, NodeProto[]>();
  // the region's tensors gain the sequence axis, so the 2-D shapes the exporter recorded for them are dropped
  const reshaped = new Set(found.flatMap(({ r }) => r!.region.flatMap((n) => n.output ?? [])));
  for (const { flatten, r } of found) {
    alias.set(flatten.output![0]!, flatten.input![0]!);
    replace.set(flatten, []);
    for (const b of r!.back) {
      alias.set(b.output![0]!, b.input![0]!);
      replace.set(b, []);
    }
    for (const g of r!.region.filter((n) => n.opType === 'Gemm')) {
      const [a, w, bias] = g.input ?? [];
      const out = g.output![0]!;
      const nodes: NodeProto[] = [];
      let weight = w!;
      if (attrInt(g, 'transB', 0) === 1) {
        weight = names.fresh(`${g.name || 'gemm'}/weight_t`);
        nodes.push({ opType: 'Transpose', name: names.fresh(`${g.name || 'gemm'}/transpose_weight`), input: [w!], output: [weight] });
      }
      const product = bias ? names.fresh(`${g.name || 'gemm'}/product`) : out;
      nodes.push({ opType: 'MatMul', name: names.fresh(`${g.name || 'gemm'}/matmul`), input: [a!, weight], output: [product] });
      if (bias) nodes.push({ opType: 'Add', name: names.fresh(`${g.name || 'gemm'}/bias`), input: [product, bias], output: [out] });
      replace.set(g, nodes);
    }
  }
  graph.node = (graph.node ?? []).flatMap((n) => replace.get(n) ?? [n]);
  for (const o of graph.output ?? []) if (o.name && alias.has(o.name)) throw new Error(`internal: a graph output (${o.name}) was unflattened`);
  readThrough(graph, alias, reshaped);
  return found.length;
}

/**
 * Makes every reader of an aliased tensor read what it stands for (following chains), and drops
 * the value_info of the aliased tensors and of `stale` ones (whose recorded shape no longer holds).
 */
function readThrough(graph: GraphProto, alias: ReadonlyMap<string, string>, stale: ReadonlySet<string> = new Set()): void {
  const resolve = (t: string): string => {
    let cur = t;
    while (alias.has(cur)) cur = alias.get(cur)!;
    return cur;
  };
  for (const n of graph.node ?? []) n.input = (n.input ?? []).map((i) => (i ? resolve(i) : i));
  graph.valueInfo = (graph.valueInfo ?? []).filter((v) => !alias.has(v.name ?? '') && !stale.has(v.name ?? ''));
}

/** Puts a Reshape to [b, s, h·dh] in front of each 2-D head merge (see the file comment); returns how many. */
function mergeHeadsPerPosition(graph: GraphProto): number {
  const ix = new GraphIndex(graph);
  const merges = (graph.node ?? []).filter((n) => mergesHeadsTo2d(ix, n));
  if (!merges.length) return 0;
  const names = new NameAllocator(graph);
  const shape = names.fresh('dissect/canonical/merge_heads_shape');
  (graph.initializer ??= []).push(makeTensor(shape, DataType.INT64, [3], [0, 0, -1]));
  const nodes: NodeProto[] = [];
  for (const n of graph.node ?? []) {
    if (merges.includes(n)) {
      const merged = names.fresh(`${n.name || 'merge'}/heads_merged`);
      nodes.push({ opType: 'Reshape', name: names.fresh(`${n.name || 'merge'}/merge_heads`), input: [n.input![0]!, shape], output: [merged] });
      n.input = [merged, n.input![1]!];
    }
    nodes.push(n);
  }
  graph.node = nodes;
  return merges.length;
}

/** Inlines the with-past branch of a merged decoder's If (see the file comment); returns the removed switch input. */
function inlineMergedDecoder(graph: GraphProto): string | undefined {
  const ifs = (graph.node ?? []).filter((n) => n.opType === 'If');
  const node = ifs[0];
  const cond = node?.input?.[0] ?? '';
  const input = (graph.input ?? []).find((i) => i.name === cond);
  const branch = node?.attribute?.find((a) => a.name === 'then_branch')?.g;
  if (ifs.length !== 1 || !node || !branch || input?.type?.tensorType?.elemType !== DataType.BOOL) return undefined;
  const names = new NameAllocator(graph);
  const outputs = (branch.output ?? []).map((o) => o.name ?? '');
  const renames: NodeProto[] = (node.output ?? []).flatMap((o, i) => (o === outputs[i] ? [] : [{
    opType: 'Identity', name: names.fresh(`${o}/from_branch`), input: [outputs[i]!], output: [o],
  }]));
  graph.node = (graph.node ?? []).flatMap((n) => (n === node ? [...(branch.node ?? []), ...renames] : [n]));
  (graph.initializer ??= []).push(...(branch.initializer ?? []));
  graph.valueInfo = [...(graph.valueInfo ?? []), ...(branch.valueInfo ?? [])];
  graph.input = (graph.input ?? []).filter((i) => i !== input);
  return cond;
}

/**
 * Inlines a merged decoder's with-past branch, removes the main graph's no-op Identity, Cast and
 * Concat nodes and gives 2-D head merges a per-position step, in place (see the file comment).
 */
export function canonicalise(model: ModelProto): Canonicalised {
  const graph = model.graph;
  if (!graph?.node?.length) return { removed: {}, mergedHeads: 0, unflattened: 0 };
  const mergedDecoder = inlineMergedDecoder(graph);
  const unflattened = unflattenResidual(graph);
  const mergedHeads = mergeHeadsPerPosition(graph);
  const ix = new GraphIndex(graph);
  const dtypes = inferDtypes(ix);
  const pinned = namesReadInSubgraphs(graph);
  for (const o of graph.output ?? []) if (o.name) pinned.add(o.name);
  const alias = new Map<string, string>();
  const removed: Record<string, number> = {};
  const kept: NodeProto[] = [];
  for (const node of graph.node) {
    const out = node.output?.[0] ?? '';
    if (isNoOp(node, dtypes) && !pinned.has(out)) {
      alias.set(out, node.input!.find(Boolean)!);
      removed[node.opType!] = (removed[node.opType!] ?? 0) + 1;
      continue;
    }
    kept.push(node);
  }
  graph.node = kept;
  readThrough(graph, alias);
  return { removed, mergedHeads, unflattened, ...(mergedDecoder ? { mergedDecoder } : {}) };
}
