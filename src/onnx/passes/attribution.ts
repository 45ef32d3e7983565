// Gradient attribution: per row, y is read from the last position's next-token distribution
// at dissect_target (its log-probability, probability or logit), the backward nodes of y with
// respect to every hidden state are emitted into the graph (autodiff/), and each hidden state
// h_l is multiplied by its gradient and reduced over the model width per position:
//   sum:     Σ_d h_d · ∂y/∂h_d          l2_norm: ‖h ⊙ ∂y/∂h‖₂
// Hidden states and gradients are read after interventions, so a row that blocks, cancels or
// patches gets the gradient of the intervened run. The last position is picked by a one-hot
// weighting over positions and the target by a one-hot over the vocabulary, so y's own
// construction needs no scatter in its backward pass.

import { emitGradients } from '../autodiff/backward.js';
import { DataType } from '../proto.js';
import type { Rewrite } from '../rewrite.js';
import type { ModelSites } from '../sites/types.js';
import { intAttr, intsAttr } from '../tensor.js';
import { VariantNames, type AttributionRequest } from '../variant.js';
import { hiddenStateTensors } from './hidden.js';
import { applyLmHead } from './lm-head.js';

const F32 = DataType.FLOAT;
const I64 = DataType.INT64;
const BASE = 'dissect/attribution';

/**
 * 1 where `index` (per row, [batch]) equals the position along an axis of `length` entries
 * (its dimension `dim`), else 0: [batch, dim] in `dtype`.
 */
function oneHot(rw: Rewrite, index: string, length: string, dim: string | number, dtype: number, base: string): string {
  const range = rw.op('Range', [rw.scalarInt(`${base}/start`, 0), length, rw.scalarInt(`${base}/step`, 1)], `${base}/range`, I64, [dim]);
  const hit = rw.op('Equal', [rw.unsqueeze(range, [0], `${base}/row`, I64, [1, dim]), rw.unsqueeze(index, [1], `${base}/column`, I64, ['batch', 1])],
    `${base}/hit`, DataType.BOOL, ['batch', dim]);
  return rw.op('Cast', [hit], base, dtype, ['batch', dim], [intAttr('to', dtype)]);
}

/** The size of axis `axis` of `t`, as an int64 scalar. */
function axisLength(rw: Rewrite, t: string, axis: number, base: string): string {
  return rw.op('Gather', [rw.op('Shape', [t], `${base}/shape`, I64), rw.scalarInt(`${base}/axis`, axis)], base, I64, []);
}

/** y per row [batch], float32: the request's target read at each row's last position. */
function readTarget(rw: Rewrite, sites: ModelSites, request: AttributionRequest): string {
  const normed = sites.finalNorm.output;
  const dt = rw.dtype(normed);
  const positions = oneHot(rw, VariantNames.lastIndex, axisLength(rw, normed, 1, `${BASE}/seq`), 'seq', dt, `${BASE}/last`);
  const weighted = rw.op('Mul', [normed, rw.unsqueeze(positions, [2], `${BASE}/last_weights`, dt, ['batch', 'seq', 1])], `${BASE}/last_weighted`, dt, ['batch', 'seq', sites.dModel]);
  const last = rw.op('ReduceSum', [weighted, rw.ints(`${BASE}/seq_axis`, [1])], `${BASE}/last_hidden`, dt, ['batch', sites.dModel], [intAttr('keepdims', 0)]);
  let logits = applyLmHead(rw, sites, last, `${BASE}/logits`, ['batch', sites.vocab]);
  if (dt !== F32) logits = rw.op('Cast', [logits], `${BASE}/logits_f32`, F32, ['batch', sites.vocab], [intAttr('to', F32)]);
  const scores = request.target === 'logit' ? logits
    : rw.op(request.target === 'probability' ? 'Softmax' : 'LogSoftmax', [logits], `${BASE}/${request.target}`, F32, ['batch', sites.vocab], [intAttr('axis', -1)]);
  const target = oneHot(rw, VariantNames.target, axisLength(rw, logits, 1, `${BASE}/vocab`), sites.vocab, F32, `${BASE}/target`);
  return rw.op('ReduceSum', [rw.op('Mul', [scores, target], `${BASE}/at_target`, F32, ['batch', sites.vocab]), rw.ints(`${BASE}/vocab_axis`, [1])],
    `${BASE}/y`, F32, ['batch'], [intAttr('keepdims', 0)]);
}

/** `patched`: the variant has the patch inputs, so the gradient at each row's patched hidden state is an output too. */
export function attributionPass(rw: Rewrite, sites: ModelSites, request: AttributionRequest, patched: boolean): void {
  const y = readTarget(rw, sites, request);
  const states = hiddenStateTensors(rw, sites);
  const gradients = emitGradients(rw, y, states, `${BASE}/backward`);
  const dt = rw.dtype(states[0]!);
  const perLayer = states.map((h, l) => {
    const base = `${BASE}/layer${l}`;
    const product = rw.op('Mul', [h, gradients[l]!], `${base}/product`, dt, ['batch', 'seq', sites.dModel]);
    const reduced = rw.reduce(request.reduction === 'sum' ? 'ReduceSum' : 'ReduceL2', product, [2], `${base}/reduced`, true, dt, ['batch', 'seq', 1]);
    return rw.op('Transpose', [reduced], `${base}/value`, dt, ['batch', 1, 'seq'], [intsAttr('perm', [0, 2, 1])]);
  });
  const all = rw.op('Concat', perLayer, `${BASE}/values`, dt, ['batch', sites.layers + 1, 'seq'], [intAttr('axis', 1)]);
  const values = dt === F32 ? all : rw.op('Cast', [all], `${BASE}/values_f32`, F32, ['batch', sites.layers + 1, 'seq'], [intAttr('to', F32)]);
  rw.addOutput(VariantNames.attribution, values, F32, ['batch', sites.layers + 1, 'seq'],
    `per hidden state and position: ${request.reduction === 'sum' ? 'Σ_d h_d · ∂y/∂h_d' : '‖h ⊙ ∂y/∂h‖₂'}, y = the ${request.target} of dissect_target`);
  rw.addOutput(VariantNames.attributionY, y, F32, ['batch'], `y: the ${request.target} of dissect_target at dissect_last_index`);
  if (patched) patchGradient(rw, sites, gradients);
}

/**
 * ∂y/∂h for the hidden state each row patches (dissect_patch_layer; zeros for −1), float32
 * [batch, seq, d]: a one-hot weighting over the hidden states' gradients, so that integrated
 * gradients read the gradient at their interpolated input whatever layer a row patches.
 */
function patchGradient(rw: Rewrite, sites: ModelSites, gradients: readonly string[]): void {
  const base = `${BASE}/patch_gradient`;
  const dt = rw.dtype(gradients[0]!);
  const d = sites.dModel;
  const states = sites.layers + 1;
  const weights = oneHot(rw, VariantNames.patchLayer, rw.scalarInt(`${base}/states`, states), states, dt, `${base}/layer`);
  const stacked = rw.op('Concat', gradients.map((g, l) => rw.unsqueeze(g, [1], `${base}/state${l}`, dt, ['batch', 1, 'seq', d])),
    `${base}/stacked`, dt, ['batch', states, 'seq', d], [intAttr('axis', 1)]);
  const picked = rw.op('Mul', [stacked, rw.unsqueeze(weights, [2, 3], `${base}/weights`, dt, ['batch', states, 1, 1])], `${base}/picked`, dt, ['batch', states, 'seq', d]);
  let gradient = rw.op('ReduceSum', [picked, rw.ints(`${base}/axis`, [1])], `${base}/sum`, dt, ['batch', 'seq', d], [intAttr('keepdims', 0)]);
  if (dt !== F32) gradient = rw.op('Cast', [gradient], `${base}/f32`, F32, ['batch', 'seq', d], [intAttr('to', F32)]);
  rw.addOutput(VariantNames.attributionPatchGradient, gradient, F32, ['batch', 'seq', d],
    '∂y/∂h for the hidden state at dissect_patch_layer (as patched); zeros for a row that patches nothing');
}
