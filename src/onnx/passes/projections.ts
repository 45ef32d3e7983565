// Vocabulary projections reduced in the graph. One int64 input dissect_proj_positions
// [batch, P] (shared by all projections); per projected site S, four outputs:
//   dissect_proj_S_ids          int64   [batch, n_layers, (heads,) P, k]  top-k token ids
//   dissect_proj_S_scores       float32 [batch, n_layers, (heads,) P, k]  their scores, descending
//   dissect_proj_S_target_rank  int64   [batch, n_layers, (heads,) P]     entries scoring strictly
//                                                                         above dissect_target
//   dissect_proj_S_norm         float32 [batch, n_layers, (heads,) P]     the L2 norm of the site's
//                                                                         vector, before projection
// Sites: hidden (hidden_states[l], l = 0..L), attention / mlp (block l's update as added to the
// residual stream, i.e. after any gate), heads (each head's share of block l's attention
// update: context[:, h, p, :] · W_O[h·dh:(h+1)·dh, :], no bias; times the attention gate if
// there is one, so Σ_h shares + gate·b_O is the update).
// Only the rows at the requested positions are gathered and projected: every layer of a site
// is stacked and projected with one matrix product, reading the vocabulary matrix once.
//   embedding:               x · Eᵀ, E the input embedding [V, d], no final norm.
//   final_norm_unembedding:  the model's own final norm nodes (cloned: same weights, eps) applied
//                            to x — a LayerNorm, or an RMSNorm (Llama) — then the LM head with
//                            its bias, if any.
// Scores are cast to float32 before masking (ids ≥ vocabLimit → −∞) and TopK (sorted; ties:
// lowest id first). Peak memory of a site: rows × V × 4 bytes (a few times), rows =
// batch · n_layers · (heads ·) P.
// onnxruntime computes every output whether it is fetched or not; feeding no positions
// ([batch, 0]) makes every projection empty and free (opset ≥ 14: Reshape allowzero).
// Site `recomputed` (recompute.ts) reads no positions: its position axis is each row's last
// position (length 1), or empty when dissect_recompute_remove is fed as [batch, 0].
// With `embedding`, onnxruntime prepacks E for the Gemm: one more copy of E in the session
// (the session option session.disable_prepacking avoids it).

import { UserError } from '../../errors.js';
import { DataType } from '../proto.js';
import type { Rewrite } from '../rewrite.js';
import { matchNorm } from '../sites/pattern.js';
import type { LayerSites, ModelSites } from '../sites/types.js';
import { intAttr, intsAttr, tensorDims } from '../tensor.js';
import { VariantNames, type ProjectionRequest } from '../variant.js';
import { hiddenStateTensors } from './hidden.js';
import { RESOLVED_TARGET } from './outputs.js';
import { applyLmHead } from './lm-head.js';
import { recomputeInputs, recomputedUpdate, type RecomputeInputs } from './recompute.js';
import { addDescribedInput, constantOver, type AddedInput } from '../inputs.js';

const I64 = DataType.INT64;
const F32 = DataType.FLOAT;
const SITES = ['hidden', 'attention', 'mlp', 'heads', 'recomputed', 'subject_embeddings'] as const;
const RECOMPUTE_MODES = ['renormalise', 'paper_resoftmax'] as const;
const VIAS = ['embedding', 'final_norm_unembedding'] as const;

export type ProjectionPart = 'ids' | 'scores' | 'target_rank' | 'norm';

export function projectionName(site: ProjectionRequest['site'], part: ProjectionPart): string {
  return `${VariantNames.projPrefix}${site}_${part}`;
}

/** Rows of the projection matrix of `via` (the vocabulary size it scores). */
function projectionVocab(rw: Rewrite, sites: ModelSites, via: ProjectionRequest['via']): number {
  if (via === 'final_norm_unembedding') return sites.vocab;
  const t = rw.ix.constantTensor(sites.embedding.weight);
  const rows = t ? tensorDims(t)[0] : undefined;
  if (!rows) throw new Error(`internal: the embedding '${sites.embedding.weight}' has no known row count`);
  return rows;
}

function validateProjections(sites: ModelSites, requests: readonly ProjectionRequest[], vocabOf: (via: ProjectionRequest['via']) => number): void {
  const seen = new Set<string>();
  for (const r of requests) {
    const what = `projection of '${String(r.site)}'`;
    if (!(SITES as readonly string[]).includes(r.site)) throw new UserError(`${what}: unknown site (expected ${SITES.join(', ')})`);
    if (!(VIAS as readonly string[]).includes(r.via)) throw new UserError(`${what}: unknown projection '${String(r.via)}' (expected ${VIAS.join(', ')})`);
    if (seen.has(r.site)) throw new UserError(`${what}: requested twice; one projection per site (its outputs are named by the site)`);
    if (r.site === 'recomputed' && !(RECOMPUTE_MODES as readonly string[]).includes(r.recompute ?? '')) {
      throw new UserError(`${what}: recompute must be one of ${RECOMPUTE_MODES.join(', ')} (got ${String(r.recompute)})`);
    }
    if (r.site !== 'recomputed' && r.recompute !== undefined) throw new UserError(`${what}: recompute applies to the recomputed site only`);
    seen.add(r.site);
    const max = r.site === 'hidden' ? sites.layers : r.site === 'subject_embeddings' ? 0 : sites.layers - 1;
    if (!r.layers.length) throw new UserError(`${what}: no layers`);
    r.layers.forEach((l, i) => {
      if (!Number.isInteger(l) || l < 0 || l > max) throw new UserError(`${what}: layer ${l} is outside 0..${max}`);
      if (i > 0 && l <= r.layers[i - 1]!) throw new UserError(`${what}: layers must be sorted and unique (${r.layers.join(', ')})`);
    });
    const V = vocabOf(r.via);
    if (!Number.isInteger(r.vocabLimit) || r.vocabLimit < 1) throw new UserError(`${what}: vocabLimit ${r.vocabLimit} must be a positive integer`);
    const usable = Math.min(V, r.vocabLimit);
    if (!Number.isInteger(r.k) || r.k < 1 || r.k > usable) throw new UserError(`${what}: k = ${r.k} must be in 1..${usable} (vocabulary ${V}, limit ${r.vocabLimit})`);
  }
}

export const PROJECTION_INPUTS = {
  positions: {
    name: VariantNames.projPositions,
    rule: 'proj_positions',
    meaning: () => 'positions projected to the vocabulary, per row (shared by every projection)',
    fill: () => 'indices in [0, seq); repeat a position to pad a row that needs fewer; shape [batch, 0] when the batch needs no projection ' +
      '(onnxruntime computes every output whether fetched or not: with no positions the projections cost nothing)',
    plainRow: () => ({ shape: ['batch', 0], value: 0 }),
  },
  subjectWeights: {
    name: VariantNames.subjectWeights,
    rule: 'subject_weights',
    meaning: () => 'per row: the weights of the positions averaged into the subject\'s mean token embedding',
    fill: () => '1/|subject| on the row\'s subject positions, 0 elsewhere (zeros for a row that does not read it), shape [batch, seq]',
    plainRow: (c) => constantOver(c.shape, 0),
  },
} as const satisfies Record<string, AddedInput>;

export interface ProjectionOptions {
  /** The attention gate input exists: head shares are scaled by it too. */
  readonly attentionGate: boolean;
}

export function projectionsPass(rw: Rewrite, sites: ModelSites, requests: readonly ProjectionRequest[], opts: ProjectionOptions): void {
  if (!requests.length) return;
  validateProjections(sites, requests, (via) => projectionVocab(rw, sites, via));
  if (!rw.names.has(RESOLVED_TARGET)) throw new Error(`internal: the projections pass needs '${RESOLVED_TARGET}' (run the reduced outputs pass first)`);
  // dissect_proj_positions exists when a site reads positions (every site but `recomputed` and `subject_embeddings`)
  let index = '';
  if (requests.some((r) => r.site !== 'recomputed' && r.site !== 'subject_embeddings')) {
    const pos = addDescribedInput(rw, PROJECTION_INPUTS.positions, I64, ['batch', 'proj_positions']);
    index = rw.unsqueeze(pos, [2], 'dissect/proj/positions', I64, ['batch', 'proj_positions', 1]);
  }
  const recompute = requests.some((r) => r.site === 'recomputed') ? recomputeInputs(rw, sites) : undefined;
  const masks = new Map<string, string>();
  const maskFor = (V: number, limit: number): string => {
    let m = masks.get(`${V}:${limit}`);
    if (!m) {
      m = rw.constant(`dissect/proj/vocab_mask_${limit}`, F32, [V], Array.from({ length: V }, (_, i) => (i < limit ? 0 : -Infinity)));
      masks.set(`${V}:${limit}`, m);
    }
    return m;
  };
  for (const req of requests) projectSite(rw, sites, req, index, opts, maskFor, recompute);
}

/** Rows of x [batch, seq, ...] at the positions: [batch, P, ...]. */
function atPositions(rw: Rewrite, x: string, index: string, base: string): string {
  return rw.op('GatherND', [x, index], base, rw.dtype(x), undefined, [intAttr('batch_dims', 1)]);
}

/** Each head's share of the attention update at the positions: [batch, H, P, d]. */
function headShares(rw: Rewrite, sites: ModelSites, L: LayerSites, index: string, opts: ProjectionOptions, base: string): string {
  const { heads: H, dHead: dh, dModel: d } = sites;
  const dt = rw.dtype(L.contextMerged);
  const merged = atPositions(rw, L.contextMerged, index, `${base}/context`);
  const split = rw.op('Reshape', [merged, rw.ints(`${base}/split_shape`, [0, 0, H, dh])], `${base}/context_heads`, dt, ['batch', 'proj_positions', H, dh]);
  const perHead = rw.op('Transpose', [split], `${base}/context_per_head`, dt, ['batch', H, 'proj_positions', dh], [intsAttr('perm', [0, 2, 1, 3])]);
  const w = L.attnProj;
  const wIo = w.layout === 'io' ? w.weight : rw.op('Transpose', [w.weight], `${base}/w_o_io`, rw.dtype(w.weight), [d, d]);
  const wHeads = rw.op('Reshape', [wIo, rw.ints(`${base}/w_o_shape`, [H, dh, d])], `${base}/w_o_heads`, rw.dtype(w.weight), [H, dh, d]);
  let shares = rw.op('MatMul', [perHead, wHeads], `${base}/shares`, dt, ['batch', H, 'proj_positions', d]);
  if (opts.attentionGate) {
    const slice = rw.op('Gather', [VariantNames.gateAttention, rw.scalarInt(`${base}/gate_index`, L.layer)], `${base}/gate`, F32,
      ['batch', 'seq'], [intAttr('axis', 1)]);
    const atPos = atPositions(rw, slice, index, `${base}/gate_at_positions`);
    let g = rw.unsqueeze(atPos, [1, 3], `${base}/gate_column`, F32, ['batch', 1, 'proj_positions', 1]);
    if (dt !== F32) g = rw.op('Cast', [g], `${base}/gate_cast`, dt, ['batch', 1, 'proj_positions', 1], [intAttr('to', dt)]);
    shares = rw.op('Mul', [shares, g], `${base}/gated_shares`, dt, ['batch', H, 'proj_positions', d]);
  }
  return shares;
}

/**
 * The mean token embedding of each row's subject, [batch, 1, d]: dissect_subject_weights
 * [batch, seq] (1/|subject| on the subject) times the token-embedding Gather's output
 * [batch, seq, d] (the embedding rows of the ids, before any position embedding is added).
 */
function subjectEmbedding(rw: Rewrite, sites: ModelSites, base: string): string {
  const emb = sites.embedding.output;
  const dt = rw.dtype(emb);
  let w = addDescribedInput(rw, PROJECTION_INPUTS.subjectWeights, F32, ['batch', 'seq']);
  if (dt !== F32) w = rw.op('Cast', [w], `${base}/weights_cast`, dt, ['batch', 'seq'], [intAttr('to', dt)]);
  const row = rw.unsqueeze(w, [1], `${base}/weights_row`, dt, ['batch', 1, 'seq']);
  return rw.op('MatMul', [row, emb], `${base}/mean`, dt, ['batch', 1, sites.dModel]);
}

/** Applies a copy of the model's final norm nodes (LayerNorm or RMSNorm; same weights and epsilon) to x. */
function finalNorm(rw: Rewrite, sites: ModelSites, x: string, base: string): string {
  // its input as the graph now computes it (a patch of hidden L puts a Where in front of the norm)
  const norm = matchNorm(rw.ix, rw.current(sites.finalNorm.input));
  if (!norm || norm.output !== sites.finalNorm.output) throw new Error('internal: the final norm could not be matched again');
  const order = rw.ix.order;
  const nodes = [...norm.nodes].sort((a, b) => order.get(a)! - order.get(b)!);
  const map = new Map<string, string>([[norm.input, x]]);
  for (const n of nodes) {
    const outs = n.output ?? [];
    const made = rw.node(n.opType ?? '', (n.input ?? []).map((i) => map.get(i) ?? i), `${base}/${n.opType}`, {
      outputs: outs.length,
      ...(n.attribute?.length ? { attrs: n.attribute } : {}),
      ...(n.domain ? { domain: n.domain } : {}),
      types: outs.map((o) => rw.dtypes.get(o)),
    });
    outs.forEach((o, i) => { if (o) map.set(o, made[i]!); });
  }
  return map.get(norm.output)!;
}

function projectSite(rw: Rewrite, sites: ModelSites, req: ProjectionRequest, index: string, opts: ProjectionOptions,
  maskFor: (V: number, limit: number) => string, recompute: RecomputeInputs | undefined): void {
  const base = `dissect/proj/${req.site}`;
  const d = sites.dModel;
  const nL = req.layers.length;
  const heads = req.site === 'heads';
  const states = req.site === 'hidden' ? hiddenStateTensors(rw, sites) : [];
  const parts = req.layers.map((l) => {
    const lb = `${base}/layer${l}`;
    const L = sites.perLayer[l];
    let x: string;
    if (req.site === 'hidden') x = atPositions(rw, states[l]!, index, lb);
    else if (req.site === 'attention') x = atPositions(rw, rw.current(L!.attnOut), index, lb);
    else if (req.site === 'mlp') x = atPositions(rw, rw.current(L!.mlpOut), index, lb);
    else if (req.site === 'recomputed') x = recomputedUpdate(rw, sites, L!, req.recompute!, recompute!, `dissect/recompute/layer${l}`);
    else if (req.site === 'subject_embeddings') x = subjectEmbedding(rw, sites, lb);
    else x = headShares(rw, sites, L!, index, opts, lb);
    return rw.unsqueeze(x, [1], `${lb}/stacked`, rw.dtype(x));
  });
  const dt = rw.dtype(parts[0]!);
  const X = parts.length === 1 ? parts[0]! : rw.op('Concat', parts, `${base}/stack`, dt, undefined, [intAttr('axis', 1)]);
  // X: [batch, nL, (H,) P, d]; lead = its shape without d
  const lead = rw.op('Slice', [rw.op('Shape', [X], `${base}/shape`, I64), rw.ints(`${base}/zero`, [0]), rw.ints(`${base}/minus1`, [-1]),
    rw.ints(`${base}/axis0`, [0])], `${base}/lead_shape`, I64);
  const rows = rw.op('Reshape', [X, rw.ints(`${base}/rows_shape`, [-1, d])], `${base}/rows`, dt, undefined);
  const V = projectionVocab(rw, sites, req.via);
  let scores: string;
  if (req.via === 'embedding') {
    scores = rw.op('Gemm', [rows, sites.embedding.weight], `${base}/scores_model`, dt, undefined, [intAttr('transB', 1)]);
  } else {
    const x3 = rw.op('Reshape', [rows, rw.ints(`${base}/norm_in_shape`, [1, -1, d])], `${base}/norm_in`, dt, undefined);
    const normed = rw.op('Reshape', [finalNorm(rw, sites, x3, `${base}/final_norm`), rw.ints(`${base}/norm_out_shape`, [-1, d])],
      `${base}/normed`, dt, undefined);
    scores = applyLmHead(rw, sites, normed, `${base}/scores_model`);
  }
  if (dt !== F32) scores = rw.op('Cast', [scores], `${base}/scores_f32`, F32, undefined, [intAttr('to', F32)]);
  if (req.vocabLimit < V) {
    scores = rw.op('Add', [scores, maskFor(V, req.vocabLimit)], `${base}/scores_masked`, F32);
  }
  // allowzero: with no positions (P = 0) the shapes hold a literal 0 that must not mean "copy"
  const allowZero = rw.opset >= 14 ? [intAttr('allowzero', 1)] : undefined;
  const fullShape = rw.op('Concat', [lead, rw.ints(`${base}/vocab_dim`, [V])], `${base}/full_shape`, I64, undefined, [intAttr('axis', 0)]);
  const S = rw.op('Reshape', [scores, fullShape], `${base}/scores`, F32, undefined, allowZero);
  const positionsDim = req.site === 'recomputed' ? 'recompute_last' : req.site === 'subject_embeddings' ? 1 : 'proj_positions';
  const outShape = (last?: number): (number | string)[] =>
    ['batch', nL, ...(heads ? [sites.heads] : []), positionsDim, ...(last !== undefined ? [last] : [])];
  // top-k over the rows [N, V] plus one sentinel row, sliced off after: onnxruntime's TopK
  // crashes (SIGFPE) on an empty input, which P = 0 would give
  const sentinel = rw.constant(`${base}/sentinel_row`, F32, [1, V], new Array<number>(V).fill(0));
  const padded = rw.op('Concat', [scores, sentinel], `${base}/rows_and_sentinel`, F32, undefined, [intAttr('axis', 0)]);
  const [rowScores, rowIds] = rw.node('TopK', [padded, rw.ints(`${base}/k`, [req.k])], `${base}/top`, {
    outputs: 2, attrs: [intAttr('axis', -1), intAttr('largest', 1), intAttr('sorted', 1)], types: [F32, I64],
  }) as [string, string];
  const kShape = rw.op('Concat', [lead, rw.ints(`${base}/k_dim`, [req.k])], `${base}/top_shape`, I64, undefined, [intAttr('axis', 0)]);
  const unpad = (x: string, type: number, what: string): string => rw.op('Reshape', [
    rw.op('Slice', [x, rw.ints(`${base}/${what}_start`, [0]), rw.ints(`${base}/${what}_end`, [-1]), rw.ints(`${base}/${what}_axis`, [0])],
      `${base}/${what}_rows`, type),
    kShape], `${base}/${what}`, type, outShape(req.k), allowZero);
  const topScores = unpad(rowScores, F32, 'top_scores');
  const topIds = unpad(rowIds, I64, 'top_ids');
  // rank of dissect_target: entries with a strictly greater score
  const rank = heads ? 5 : 4;
  const t = rw.op('Reshape', [RESOLVED_TARGET, rw.ints(`${base}/target_shape`, [-1, ...new Array<number>(rank - 1).fill(1)])],
    `${base}/target`, I64);
  const tShape = rw.op('Concat', [lead, rw.ints(`${base}/one`, [1])], `${base}/target_index_shape`, I64, undefined, [intAttr('axis', 0)]);
  const tIndex = rw.op('Expand', [t, tShape], `${base}/target_index`, I64);
  const tScore = rw.op('GatherElements', [S, tIndex], `${base}/target_score`, F32, undefined, [intAttr('axis', -1)]);
  const above = rw.op('Cast', [rw.op('Greater', [S, tScore], `${base}/above_target`, DataType.BOOL)], `${base}/above_target_f32`, F32, undefined,
    [intAttr('to', F32)]); // float32 counts are exact below 2^24 entries
  // a positive axis: onnxruntime's ReduceSum mis-shapes an empty input reduced over axis −1
  const count = rw.op('ReduceSum', [above, rw.ints(`${base}/last_axis`, [rank - 1])], `${base}/target_count`, F32, outShape(), [intAttr('keepdims', 0)]);
  const targetRank = rw.op('Cast', [count], `${base}/target_rank`, I64, outShape(), [intAttr('to', I64)]);
  rw.addOutput(projectionName(req.site, 'ids'), topIds, I64, outShape(req.k), `top-${req.k} token ids of the ${req.site} projection (${req.via})`);
  rw.addOutput(projectionName(req.site, 'scores'), topScores, F32, outShape(req.k), `scores of dissect_proj_${req.site}_ids, descending`);
  rw.addOutput(projectionName(req.site, 'target_rank'), targetRank, I64, outShape(),
    `entries of the ${req.site} projection scoring strictly above dissect_target`);
  rw.addOutput(projectionName(req.site, 'norm'), l2Norm(rw, X, rank, `${base}/norm`, outShape()), F32, outShape(),
    `L2 norm of the ${req.site} vectors before projection`);
}

/** The L2 norm of x over its last axis (axis `rank` − 1), in float32 whatever x's type. */
function l2Norm(rw: Rewrite, x: string, rank: number, base: string, shape: (number | string)[]): string {
  const x32 = rw.dtype(x) === F32 ? x : rw.op('Cast', [x], `${base}/x_f32`, F32, undefined, [intAttr('to', F32)]);
  const squares = rw.op('Mul', [x32, x32], `${base}/squares`, F32);
  // a positive axis, as for the rank: onnxruntime mis-shapes an empty input reduced over axis −1
  const sum = rw.op('ReduceSum', [squares, rw.ints(`${base}/axis`, [rank - 1])], `${base}/sum`, F32, shape, [intAttr('keepdims', 0)]);
  return rw.op('Sqrt', [sum], `${base}/value`, F32, shape);
}
