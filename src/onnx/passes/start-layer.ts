// Rows that begin at their first intervened block. Every hidden state below the lowest block a
// row changes or reads equals the clean run's, so the row can start there from the clean run's
// hidden state instead of recomputing the blocks below. One graph serves every start block (the
// weights are held once): each block's nodes move into the else-branch of an If on
//   block < dissect_start_layer
// whose then-branch skips the block: its residual output is dissect_start_hidden, the clean
// hidden state entering the start block, so the first block that runs reads it. At start 0
// no block is skipped and every number is the graph's own (a branch runs the block's nodes as
// they were; onnxruntime reads the weights from the outer scope, without a copy).
//
// A block's nodes: those reached from its input that lead to its output, less what computes
// from its shape alone (Shape of the input and what follows) and what another block reads; those
// stay outside and run either way, from the fed hidden state of the same shape. What else the
// block computes for readers outside it (keys and values as outputs, attention probabilities,
// the updates and merged heads projections and recomputations read) is an output of the If too;
// a skipped block gives a stand-in of the same shape: the fed hidden state for the [batch, seq, d]
// ones, zeros otherwise. Rows read nothing below their start block (plan.ts's startLayerOf), so
// no number depends on a stand-in's values, only shapes do.

import { AttributeType, DataType, type GraphProto, type NodeProto } from '../proto.js';
import type { Dim, Rewrite } from '../rewrite.js';
import type { LayerSites, ModelSites } from '../sites/types.js';
import { removeDeadNodes, tensorValueInfo, valueInfoShape } from '../graph.js';
import { intAttr, makeTensor, tensorAttr } from '../tensor.js';
import { VariantNames } from '../variant.js';
import { addDescribedInput, type AddedInput } from '../inputs.js';

export const START_LAYER_INPUTS = {
  layer: {
    name: VariantNames.startLayer,
    rule: 'start_layer',
    meaning: () => 'the first block the batch runs: blocks below it are skipped (every row of a batch starts at the same block)',
    fill: (c) => `a block index in [0, ${c.sites.layers}] (${c.sites.layers}: only the final norm and the LM head run); 0 = every block runs`,
    plainRow: () => ({ shape: [1], value: 0 }),
  },
  hidden: {
    name: VariantNames.startHidden,
    rule: 'start_hidden',
    meaning: () => 'the hidden state entering block dissect_start_layer (hidden_states[start]), which the skipped blocks would have computed',
    fill: (c) => `the clean run's dissect_hidden_states[:, start] at the batch's tokens (${c.dtype}, right-padded with zeros; for one token ` +
      'against a cache, that token\'s); shape [batch, 0, d_model] when dissect_start_layer is 0 (not read)',
    plainRow: (c) => ({ shape: ['batch', 0, c.sites.dModel], value: 0 }),
  },
} as const satisfies Record<string, AddedInput>;

/**
 * A stand-in's dim: the batch or token axis of the fed hidden state, the keys attended (past
 * and this run's tokens: attention_mask's length, or the tokens without a mask), or a size.
 */
type StandInDim = 'batch' | 'seq' | 'kv' | number;

/** A dim as a pass or the source recorded it: the names the passes use for batch, tokens and keys; any other name: empty. */
function standInDim(x: Dim | undefined): StandInDim {
  if (typeof x === 'number') return x;
  return x === 'batch' || x === 'seq' || x === 'kv' ? x : x === 'kv_seq' ? 'kv' : 0;
}

/** The dims of a block's site tensors (LayerSites' shapes). */
function siteShapes(L: LayerSites, sites: ModelSites): Map<string, readonly StandInDim[]> {
  const { heads: h, dHead: dh, dModel: d } = sites;
  const shapes = new Map<string, readonly StandInDim[]>();
  const width = ['batch', 'seq', d] as const;
  for (const t of [L.residIn, L.attnNorm, L.contextMerged, L.attnOut, L.residMid, L.mlpNorm, L.mlpOut, L.residPost, L.attnAddOut, L.mlpAddOut]) {
    shapes.set(t, width);
  }
  for (const t of [L.q, L.context]) shapes.set(t, ['batch', h, 'seq', dh]);
  for (const t of [L.scores, L.probs]) shapes.set(t, ['batch', h, 'seq', 'kv']);
  shapes.set(L.k, L.kLayout === 'bhsd' ? ['batch', h, 'kv', dh] : ['batch', h, dh, 'kv']);
  shapes.set(L.v, ['batch', h, 'kv', dh]);
  return shapes;
}

/** How one block leaves the graph: its nodes, and per tensor read outside it, the stand-in a skipped block gives. */
interface BlockPlan {
  readonly nodes: Set<NodeProto>;
  readonly leaving: readonly { readonly tensor: string; readonly standIn: 'hidden' | readonly StandInDim[] }[];
}

/**
 * Rewrites `rw` so that rows may begin at a block above 0; returns why it cannot (a tensor a
 * block computes for readers outside it, of a shape no stand-in is known for), leaving the
 * graph as it was, or undefined when it did.
 */
export function startLayerPass(rw: Rewrite, sites: ModelSites): string | undefined {
  rw.sortNodes();
  removeDeadNodes(rw.graph); // a dead reader of a block's tensor would make it an output of the block
  const blocks = sites.perLayer.map((L) => blockNodes(rw, L));
  hoistShared(rw, sites, blocks);
  takeFeeders(rw, blocks);
  const plans: BlockPlan[] = [];
  for (const L of sites.perLayer) {
    const plan = blockPlan(rw, sites, L, blocks[L.layer]!);
    if (typeof plan === 'string') return plan;
    plans.push(plan);
  }
  const dt = rw.dtype(sites.perLayer[0]!.residIn);
  const start = addDescribedInput(rw, START_LAYER_INPUTS.layer, DataType.INT64, [1]);
  const hidden = addDescribedInput(rw, START_LAYER_INPUTS.hidden, dt, ['batch', 'start_seq', sites.dModel]);
  const ifs = plans.map((plan, l) => {
    const base = `dissect/start_layer/layer${l}`;
    // the block as it runs: its tensors read outside get names of their own inside the branch
    const inner = new Map(plan.leaving.map(({ tensor }) => [tensor, rw.names.fresh(`${tensor}/in_block`)]));
    const rename = (t: string): string => inner.get(t) ?? t;
    const runs: GraphProto = {
      name: `${base}/runs`,
      node: (rw.graph.node ?? []).filter((n) => plan.nodes.has(n)).map((n) => ({ ...n, input: (n.input ?? []).map(rename), output: (n.output ?? []).map(rename) })),
      output: plan.leaving.map(({ tensor }) => tensorValueInfo(inner.get(tensor)!, rw.dtype(tensor), undefined)),
    };
    const skips = skippedBlock(rw, sites, base, hidden, plan.leaving.map(({ tensor, standIn }) => ({ dtype: rw.dtype(tensor), dims: standIn })));
    const skipped = rw.op('Less', [rw.ints(`${base}/index`, [l]), start], `${base}/skipped`, DataType.BOOL, [1]);
    return {
      input: [skipped], output: plan.leaving.map(({ tensor }) => tensor), name: rw.names.fresh(`${base}/If`), opType: 'If',
      attribute: [
        { name: 'then_branch', type: AttributeType.GRAPH, g: skips },
        { name: 'else_branch', type: AttributeType.GRAPH, g: runs },
      ],
    } satisfies NodeProto;
  });
  rw.graph.node = [...(rw.graph.node ?? []).filter((n) => !plans.some((p) => p.nodes.has(n))), ...ifs];
  rw.sortNodes();
  return undefined;
}

/** What leaves block L and the stand-in of each, or why a tensor has none. */
function blockPlan(rw: Rewrite, sites: ModelSites, L: LayerSites, nodes: Set<NodeProto>): BlockPlan | string {
  const ix = rw.ix;
  const graphOutputs = new Set((rw.graph.output ?? []).map((o) => o.name ?? ''));
  const produced = [...nodes].flatMap((n) => n.output ?? []).filter((t) => t);
  const leaving = produced.filter((t) => graphOutputs.has(t) || ix.consumersOf(t).some((n) => !nodes.has(n)));
  if (!leaving.includes(L.residPost)) return `block ${L.layer}'s output '${L.residPost}' is not computed from its input`;
  const shapes = siteShapes(L, sites);
  for (const x of [...shapes.keys()]) shapes.set(rw.current(x), shapes.get(x)!);
  // a tensor only returned (the model's own cache outputs): any shape of its rank, empty
  const returnedShape = (t: string): readonly Dim[] | undefined => {
    const readers = ix.consumersOf(t).filter((n) => !nodes.has(n));
    const returned = graphOutputs.has(t) ? t : readers[0]?.opType === 'Identity' ? readers[0].output?.[0] : undefined;
    if (!returned || !graphOutputs.has(returned) || readers.some((n) => n.opType !== 'Identity' || n.output?.[0] !== returned)) return undefined;
    return valueInfoShape(ix.outputs.get(returned)).shape?.map((x) => (typeof x === 'number' ? x : 0)); // the source's names mean nothing here
  };
  const out: BlockPlan['leaving'][number][] = [];
  for (const tensor of leaving) {
    // a shape a pass recorded first: it knows what it made of a site (the last-position pass's
    // keys of this run's tokens alone are the key site, whose shape in the source covers every key)
    const dims = tensor === L.residPost ? undefined : rw.recordedShape(tensor) ?? shapes.get(tensor) ?? returnedShape(tensor);
    if (tensor !== L.residPost && !dims) return `block ${L.layer}'s tensor '${tensor}' is read outside the block and its shape is not known`;
    out.push({ tensor, standIn: dims ? dims.map(standInDim) : 'hidden' });
  }
  return { nodes, leaving: out };
}

/**
 * Takes out of each block what another block reads (besides the residual stream): the rotary
 * positions an expanded fused attention computes once, in the first block. It then runs
 * whether the block is skipped or not, from the block's input, which a skipped block's fed
 * hidden state replaces with the same shape.
 */
function hoistShared(rw: Rewrite, sites: ModelSites, blocks: readonly Set<NodeProto>[]): void {
  const ix = rw.ix;
  blocks.forEach((block, l) => {
    const readElsewhere = (t: string): boolean => t !== sites.perLayer[l]!.residPost && ix.consumersOf(t).some((r) => blocks.some((b) => b !== block && b.has(r)));
    const shared = [...block].filter((n) => (n.output ?? []).some(readElsewhere));
    const stack = [...shared];
    while (stack.length) {
      const n = stack.pop()!;
      if (!block.delete(n)) continue;
      for (const i of n.input ?? []) {
        const p = ix.producer(i);
        if (p && block.has(p)) stack.push(p);
      }
    }
  });
}

/**
 * Moves into each block the nodes outside every block that only it reads (and what only those
 * read): a row's gathered past (Gather of the shared past by dissect_past_row), its layer of the
 * knockout mask and gates. Left outside they would all run before the first block and stay
 * alive until their block runs — every layer's past, per row, at once — and run for skipped
 * blocks too. Inside, they run with their block, read the same outer-scope values, or not at all.
 */
function takeFeeders(rw: Rewrite, blocks: readonly Set<NodeProto>[]): void {
  const ix = rw.ix;
  const graphOutputs = new Set((rw.graph.output ?? []).map((o) => o.name ?? ''));
  const blockOf = new Map<NodeProto, Set<NodeProto>>();
  for (const b of blocks) for (const n of b) blockOf.set(n, b);
  // consumers come after producers: in reverse order a chain of feeders moves in one sweep
  for (const n of [...ix.nodes].reverse()) {
    if (blockOf.has(n)) continue;
    const outputs = (n.output ?? []).filter((o) => o);
    if (!outputs.length || outputs.some((o) => graphOutputs.has(o))) continue;
    const readers = outputs.flatMap((o) => ix.consumersOf(o));
    const owner = readers.length ? blockOf.get(readers[0]!) : undefined;
    if (!owner || readers.some((r) => blockOf.get(r) !== owner)) continue;
    owner.add(n);
    blockOf.set(n, owner);
  }
}

/**
 * The nodes reached from the block's input that lead to its output, but those that compute
 * from its shape alone (Shape of the input and what follows from it): they stay outside, where
 * the fed hidden state gives them the same shape, and later blocks may read them.
 */
function blockNodes(rw: Rewrite, L: LayerSites): Set<NodeProto> {
  const ix = rw.ix;
  const reachedFrom = (readers: (t: string) => NodeProto[]): Set<NodeProto> => {
    const reached = new Set<NodeProto>();
    const stack = [rw.current(L.residIn)];
    while (stack.length) {
      for (const n of readers(stack.pop()!)) {
        if (reached.has(n)) continue;
        reached.add(n);
        stack.push(...(n.output ?? []).filter((o) => o));
      }
    }
    return reached;
  };
  const reached = reachedFrom((t) => ix.consumersOf(t));
  const byValue = reachedFrom((t) => ix.dataConsumers(t));
  const block = new Set<NodeProto>();
  const back = [L.residPost];
  while (back.length) {
    const p = ix.producer(back.pop()!);
    if (!p || block.has(p) || !reached.has(p)) continue;
    block.add(p);
    back.push(...(p.input ?? []).filter((i) => i));
  }
  // in graph order, so that a shape computation's inputs are settled before it
  for (const n of ix.nodes) {
    if (!block.has(n) || byValue.has(n)) continue;
    if ((n.input ?? []).every((i) => { const p = ix.producer(i); return !p || !block.has(p); })) block.delete(n);
  }
  return block;
}

/**
 * The then-branch of a skipped block: per output, the fed hidden state ('hidden': the block's
 * residual output, and any [batch, seq, d] tensor) or zeros of the stand-in dims.
 */
function skippedBlock(
  rw: Rewrite, sites: ModelSites, base: string, hidden: string, outputs: readonly { dtype: number; dims: 'hidden' | readonly StandInDim[] }[],
): GraphProto {
  const mask = sites.inputs.attentionMask;
  const nodes: NodeProto[] = [];
  const node = (opType: string, input: string[], name: string, attribute?: NodeProto['attribute']): string => {
    const out = rw.names.fresh(`${base}/skip/${name}`);
    nodes.push({ input, output: [out], name: rw.names.fresh(`${base}/skip/${name}/${opType}`), opType, ...(attribute ? { attribute } : {}) });
    return out;
  };
  const likeHidden = (dims: readonly StandInDim[], dtype: number): boolean =>
    dims.length === 3 && dims[0] === 'batch' && dims[1] === 'seq' && dims[2] === sites.dModel && dtype === rw.dtype(hidden);
  const cut = (tensor: string, at: number, name: string): string =>
    node('Slice', [node('Shape', [tensor], `${name}_shape`), rw.ints(`${base}/skip/${name}_start`, [at]), rw.ints(`${base}/skip/${name}_end`, [at + 1])], name);
  const axes = new Map<StandInDim, string>();
  const axis = (which: 'batch' | 'seq' | 'kv'): string => {
    if (!axes.has(which)) axes.set(which, which === 'kv' && mask ? cut(mask, 1, 'keys') : cut(hidden, which === 'batch' ? 0 : 1, which));
    return axes.get(which)!;
  };
  const results = outputs.map((o, i) => {
    if (o.dims === 'hidden' || likeHidden(o.dims, o.dtype)) return node('Identity', [hidden], `out${i}`);
    const dims = o.dims.map((x) => (typeof x === 'number' ? rw.ints(`${base}/skip/dim`, [x]) : axis(x)));
    const shape = node('Concat', dims, `out${i}_shape`, [intAttr('axis', 0)]);
    return node('ConstantOfShape', [shape], `out${i}`, [tensorAttr('value', makeTensor('value', o.dtype, [1], [0]))]);
  });
  return { name: `${base}/skips`, node: nodes, output: results.map((r, i) => tensorValueInfo(r, outputs[i]!.dtype, undefined)) };
}
