// Local recomputation of an attention update with keys removed (the paper code's control for
// attribute extraction). For each requested block l, at each row's last position q
// (dissect_last_index), from the probabilities P[h, q, :] the row's own forward pass computed:
//   R = dissect_recompute_remove [batch, kv]  (true = key removed)
//   renormalise:      P'[h, k] = R_k ? 0 : P[h, k] / Σ_{j ∉ R} P[h, j]   (0 where that sum is 0)
//   paper_resoftmax:  P'[h, :] = softmax_k(R_k ? −1e6 : P[h, k]) over the row's keys (those
//                     attention_mask marks: padding excluded, wherever it lies: after q in a
//                     whole prompt, between the past and the token in a last-position run;
//                     without a mask input, the keys 0..q); every key removed → P' = 0
//   out = (concat_h Σ_k P'[h, k] · V[h, k, :]) · W_O + b_O            [batch, 1, d]
// Nothing is propagated: the model's forward pass is untouched; `out` only feeds the
// projection of site `recomputed` (projections.ts). Computed in float32 (P' is cast back
// to the model's dtype before the product with V, as the model itself multiplies).
//
// The remove input may be fed as [batch, 0]: the query axis then has length 0 (Q =
// min(1, kv)), every tensor downstream is empty, and the recomputation and its projection
// cost nothing, as with dissect_proj_positions.

import { DataType } from '../proto.js';
import type { Rewrite } from '../rewrite.js';
import type { LayerSites, ModelSites } from '../sites/types.js';
import { intAttr, intsAttr } from '../tensor.js';
import { VariantNames, type RecomputeMode } from '../variant.js';
import { addDescribedInput, type AddedInput } from '../inputs.js';

const I64 = DataType.INT64;
const F32 = DataType.FLOAT;
const BOOL = DataType.BOOL;

/** The value the paper's code writes over a removed probability before its second softmax. */
const PAPER_REMOVED_VALUE = -1e6;

export const RECOMPUTE_INPUTS = {
  remove: {
    name: VariantNames.recomputeRemove,
    rule: 'recompute_remove',
    meaning: (c) => 'keys removed from each row\'s last-position attention when the attention update is recomputed ' +
      `(${c.request.projections?.find((p) => p.site === 'recomputed')?.recompute}), per row`,
    fill: () => 'true at the removed key positions, shape [batch, seq] (seq as input_ids); shape [batch, 0] when the batch needs no ' +
      'recomputation (the recomputation and its projection then cost nothing)',
    plainRow: () => ({ shape: ['batch', 0], value: false }),
  },
} as const satisfies Record<string, AddedInput>;

/** Tensors shared by every recomputed layer. */
export interface RecomputeInputs {
  /** Removed keys [b, 1, 1, kv'] (kv' = the remove input's length: seq, or 0). */
  readonly removed: string;
  /** Keys of the row (attention_mask 1; without a mask k ≤ last), [b, 1, 1, kv']. */
  readonly real: string;
  /** Each row's last index as a gather index [b, Q, 1], Q = min(1, kv'). */
  readonly lastIndex: string;
  /** kv' as a 1-D int64 [1], to slice the key axis of P and V. */
  readonly kvLen: string;
}

export function recomputeInputs(rw: Rewrite, sites: ModelSites): RecomputeInputs {
  const base = 'dissect/recompute';
  if (!rw.names.has(VariantNames.lastIndex)) throw new Error(`internal: the recompute pass needs '${VariantNames.lastIndex}'`);
  const R = addDescribedInput(rw, RECOMPUTE_INPUTS.remove, BOOL, ['batch', 'recompute_seq']);
  const shape = rw.op('Shape', [R], `${base}/shape`, I64, [2]);
  const kvLen = rw.op('Slice', [shape, rw.ints(`${base}/one_start`, [1]), rw.ints(`${base}/one_end`, [2])], `${base}/kv_len`, I64, [1]);
  const Q = rw.op('Min', [kvLen, rw.ints(`${base}/one`, [1])], `${base}/queries`, I64, [1]);
  const lastCol = rw.unsqueeze(VariantNames.lastIndex, [1], `${base}/last_column`, I64, ['batch', 1]);
  const lastQ = rw.op('Slice', [lastCol, rw.ints(`${base}/q_start`, [0]), Q, rw.ints(`${base}/q_axis`, [1])], `${base}/last_q`, I64,
    ['batch', 'recompute_last']);
  const lastIndex = rw.unsqueeze(lastQ, [2], `${base}/last_index`, I64, ['batch', 'recompute_last', 1]);
  const removed = rw.unsqueeze(R, [1, 2], `${base}/removed`, BOOL, ['batch', 1, 1, 'recompute_seq']);
  const mask = sites.inputs.attentionMask;
  let real: string;
  if (mask) {
    const cut = rw.op('Slice', [mask, rw.ints(`${base}/mask_start`, [0]), kvLen, rw.ints(`${base}/mask_axis`, [1])], `${base}/mask_keys`, rw.dtype(mask),
      ['batch', 'recompute_seq']);
    const attended = rw.op('Cast', [cut], `${base}/mask_bool`, BOOL, ['batch', 'recompute_seq'], [intAttr('to', BOOL)]);
    real = rw.unsqueeze(attended, [1, 2], `${base}/real_keys`, BOOL, ['batch', 1, 1, 'recompute_seq']);
  } else {
    const kvScalar = rw.squeeze(kvLen, [0], `${base}/kv_scalar`, I64, []);
    const keys = rw.op('Range', [rw.scalarInt(`${base}/zero`, 0), kvScalar, rw.scalarInt(`${base}/step`, 1)], `${base}/keys`, I64, ['recompute_seq']);
    const last4 = rw.unsqueeze(VariantNames.lastIndex, [1, 2, 3], `${base}/last_4d`, I64, ['batch', 1, 1, 1]);
    real = rw.op('LessOrEqual', [keys, last4], `${base}/real_keys`, BOOL, ['batch', 1, 1, 'recompute_seq']);
  }
  return { removed, real, lastIndex, kvLen };
}

/** Block l's attention update at each row's last position recomputed without the removed keys: [b, Q, d] (model dtype). */
export function recomputedUpdate(rw: Rewrite, sites: ModelSites, L: LayerSites, mode: RecomputeMode, inp: RecomputeInputs, base: string): string {
  const { heads: H, dHead: dh, dModel: d } = sites;
  const dt = rw.dtype(L.probs);
  const kvAxis = (x: string, axis: number, what: string, type: number): string =>
    rw.op('Slice', [x, rw.ints(`${base}/${what}_start`, [0]), inp.kvLen, rw.ints(`${base}/${what}_axis`, [axis])], `${base}/${what}`, type);
  // P[b, :, last, :] → [b, H, Q, kv']
  const byQuery = rw.op('Transpose', [L.probs], `${base}/probs_by_query`, dt, ['batch', 'seq', H, 'kv'], [intsAttr('perm', [0, 2, 1, 3])]);
  const atLast = rw.op('GatherND', [byQuery, inp.lastIndex], `${base}/probs_last`, dt, ['batch', 'recompute_last', H, 'kv'],
    [intAttr('batch_dims', 1)]);
  const cut = kvAxis(atLast, 3, 'probs_keys', dt);
  let P = rw.op('Transpose', [cut], `${base}/probs_heads`, dt, ['batch', H, 'recompute_last', 'recompute_seq'], [intsAttr('perm', [0, 2, 1, 3])]);
  if (dt !== F32) P = rw.op('Cast', [P], `${base}/probs_f32`, F32, undefined, [intAttr('to', F32)]);
  const zero = rw.constant(`${base}/zero`, F32, [], [0]);
  const axis3 = rw.ints(`${base}/axis3`, [3]); // a positive axis: onnxruntime mis-shapes empty reductions over −1
  let Pn: string;
  if (mode === 'renormalise') {
    const kept = rw.op('Where', [inp.removed, zero, P], `${base}/kept`, F32);
    const sum = rw.op('ReduceSum', [kept, axis3], `${base}/kept_sum`, F32, undefined, [intAttr('keepdims', 1)]);
    const denom = rw.op('Where', [rw.op('Greater', [sum, zero], `${base}/any_kept`, BOOL), sum, rw.constant(`${base}/one_f`, F32, [], [1])],
      `${base}/denominator`, F32);
    Pn = rw.op('Div', [kept, denom], `${base}/renormalised`, F32);
  } else if (mode === 'paper_resoftmax') {
    const masked = rw.op('Where', [inp.removed, rw.constant(`${base}/removed_value`, F32, [], [PAPER_REMOVED_VALUE]), P], `${base}/masked`, F32);
    // padding keys (k > last) are not keys of the row: the lowest float32 gives them weight exactly 0
    const rowOnly = rw.op('Where', [inp.real, masked, rw.constant(`${base}/outside_row`, F32, [], [-3.4028234663852886e38])], `${base}/row_keys`, F32);
    const soft = rw.op('Softmax', [rowOnly], `${base}/resoftmax`, F32, undefined, [intAttr('axis', 3)]);
    // the paper's "block all" writes zeros (no softmax): P' = 0 when no key of the row is kept
    const keptKeys = rw.op('Cast', [rw.op('And', [rw.op('Not', [inp.removed], `${base}/not_removed`, BOOL), inp.real], `${base}/kept_keys`, BOOL)],
      `${base}/kept_keys_f32`, F32, undefined, [intAttr('to', F32)]);
    const count = rw.op('ReduceSum', [keptKeys, axis3], `${base}/kept_count`, F32, undefined, [intAttr('keepdims', 1)]);
    Pn = rw.op('Where', [rw.op('Greater', [count, zero], `${base}/any_key_kept`, BOOL), soft, zero], `${base}/resoftmaxed`, F32);
  } else {
    throw new Error(`internal: unknown recompute mode '${String(mode)}'`);
  }
  if (dt !== F32) Pn = rw.op('Cast', [Pn], `${base}/weights_model_dtype`, dt, undefined, [intAttr('to', dt)]);
  // the values attention reads: with a cache, the past's in front (rw.current)
  const V = kvAxis(rw.current(L.v), 2, 'values', rw.dtype(L.v));
  const context = rw.op('MatMul', [Pn, V], `${base}/context`, dt, ['batch', H, 'recompute_last', dh]);
  const perQuery = rw.op('Transpose', [context], `${base}/context_by_query`, dt, ['batch', 'recompute_last', H, dh], [intsAttr('perm', [0, 2, 1, 3])]);
  const merged = rw.op('Reshape', [perQuery, rw.ints(`${base}/merge_shape`, [0, 0, d])], `${base}/context_merged`, dt, ['batch', 'recompute_last', d]);
  const w = L.attnProj;
  const wIo = w.layout === 'io' ? w.weight : rw.op('Transpose', [w.weight], `${base}/w_o_io`, rw.dtype(w.weight), [d, d]);
  let out = rw.op('MatMul', [merged, wIo], `${base}/update_no_bias`, dt, ['batch', 'recompute_last', d]);
  if (w.bias) out = rw.op('Add', [out, w.bias], `${base}/update`, dt, ['batch', 'recompute_last', d]);
  return out;
}
