// Reduced outputs: per row, the last position's next-token distribution reduced inside the
// graph to a few numbers (target probability and rank, top-1 and its probability), so no
// [rows × positions × vocab] tensor leaves the graph. A negative target stands for the row's
// own top-1: a clean pass, whose prediction is the target, reads every probe in the same run.
// Optional per-layer attention probs.

import { DataType } from '../proto.js';
import type { Rewrite } from '../rewrite.js';
import type { ModelSites } from '../sites/types.js';
import { intAttr } from '../tensor.js';
import { OWN_TOP1_TARGET, VariantNames } from '../variant.js';
import { addDescribedInput, type AddedInput } from '../inputs.js';
import { keyAxis } from './knockout.js';
import { applyLmHead } from './lm-head.js';

export interface ReducedOptions {
  /** Read the last position from the full logits (exactly the model's numbers) instead of
   *  applying the LM head to the gathered last hidden state (cheaper: one row per batch item). */
  readonly fromFullLogits: boolean;
}

export const READOUT_INPUTS = {
  lastIndex: {
    name: VariantNames.lastIndex,
    rule: 'last_index',
    meaning: () => 'position whose next-token distribution is read, per row',
    fill: () => 'the index of the row\'s last real token (number of real tokens − 1)',
    plainRow: () => ({ shape: ['batch'], value: 'last_index' }),
  },
  target: {
    name: VariantNames.target,
    rule: 'target',
    meaning: (c) => 'token whose probability and rank are read, per row' + (c.request.projections?.length ? ' (also the token ranked by every projection)' : ''),
    fill: () => `a token id in [0, vocab), or ${OWN_TOP1_TARGET} for the row's own top-1 (dissect_top1)`,
    plainRow: () => ({ shape: ['batch'], value: OWN_TOP1_TARGET }),
  },
} as const satisfies Record<string, AddedInput>;

/** The target each row's reads use: dissect_target, or the row's top-1 where dissect_target is negative. */
export const RESOLVED_TARGET = 'dissect/reduce/target_resolved';

export function reducedOutputsPass(rw: Rewrite, sites: ModelSites, opts: ReducedOptions): void {
  const I64 = DataType.INT64;
  const F32 = DataType.FLOAT;
  const V = sites.vocab;
  const last = addDescribedInput(rw, READOUT_INPUTS.lastIndex, I64, ['batch']);
  const targetIn = addDescribedInput(rw, READOUT_INPUTS.target, I64, ['batch']);
  const base = 'dissect/reduce';
  const lastCol = rw.unsqueeze(last, [1], `${base}/last_index`, I64, ['batch', 1]);
  const dt = rw.dtype(sites.logits);
  let lastLogits: string;
  if (opts.fromFullLogits) {
    lastLogits = rw.op('GatherND', [sites.logits, lastCol], `${base}/last_logits`, dt, ['batch', V], [intAttr('batch_dims', 1)]);
  } else {
    const hidden = rw.op('GatherND', [sites.finalNorm.output, lastCol], `${base}/last_hidden`, rw.dtype(sites.finalNorm.output),
      ['batch', sites.dModel], [intAttr('batch_dims', 1)]);
    lastLogits = applyLmHead(rw, sites, hidden, `${base}/last_logits`, ['batch', V]);
  }
  const logits = dt === F32 ? lastLogits : rw.op('Cast', [lastLogits], `${base}/last_logits_f32`, F32, ['batch', V], [intAttr('to', F32)]);
  const probs = rw.op('Softmax', [logits], `${base}/probs`, F32, ['batch', V], [intAttr('axis', -1)]);
  const top1 = rw.op('ArgMax', [logits], `${base}/top1`, I64, ['batch'], [intAttr('axis', 1), intAttr('keepdims', 0), intAttr('select_last_index', 0)]);
  const target = rw.op('Where', [rw.op('Less', [targetIn, rw.scalarInt(`${base}/zero`, 0)], `${base}/own_top1`, DataType.BOOL, ['batch']), top1, targetIn],
    RESOLVED_TARGET, I64, ['batch']);
  const tcol = rw.unsqueeze(target, [1], `${base}/target`, I64, ['batch', 1]);
  const tprob = rw.squeeze(rw.op('GatherElements', [probs, tcol], `${base}/target_prob_col`, F32, ['batch', 1], [intAttr('axis', 1)]),
    [1], `${base}/target_prob`, F32, ['batch']);
  const tlogit = rw.op('GatherElements', [logits, tcol], `${base}/target_logit`, F32, ['batch', 1], [intAttr('axis', 1)]);
  const above = rw.op('Greater', [logits, tlogit], `${base}/above_target`, DataType.BOOL, ['batch', V]);
  const rank = rw.op('ReduceSum', [rw.op('Cast', [above], `${base}/above_target_i64`, I64, ['batch', V], [intAttr('to', I64)]), rw.ints(`${base}/axis1`, [1])],
    `${base}/target_rank`, I64, ['batch'], [intAttr('keepdims', 0)]);
  const top1prob = rw.squeeze(
    rw.op('GatherElements', [probs, rw.unsqueeze(top1, [1], `${base}/top1_col`, I64, ['batch', 1])], `${base}/top1_prob_col`, F32, ['batch', 1], [intAttr('axis', 1)]),
    [1], `${base}/top1_prob`, F32, ['batch']);
  rw.addOutput(VariantNames.targetProb, tprob, F32, ['batch'], 'softmax probability of the target at dissect_last_index');
  rw.addOutput(VariantNames.targetRank, rank, I64, ['batch'], 'number of vocabulary entries with a strictly greater logit than the target');
  rw.addOutput(VariantNames.top1, top1, I64, ['batch'], 'argmax of the last-position logits (ties: lowest id)');
  rw.addOutput(VariantNames.top1Prob, top1prob, F32, ['batch'], 'softmax probability of dissect_top1');
}

export function attentionProbsName(layer: number): string {
  return `dissect_attn_probs_${layer}`;
}

export function attentionProbsPass(rw: Rewrite, sites: ModelSites): void {
  const kvDim = keyAxis(rw, sites);
  for (const L of sites.perLayer) {
    const dt = rw.dtype(L.probs);
    const shape = ['batch', sites.heads, 'seq', kvDim];
    const src = dt === DataType.FLOAT ? L.probs
      : rw.op('Cast', [L.probs], `dissect/attn_probs/layer${L.layer}`, DataType.FLOAT, shape, [intAttr('to', DataType.FLOAT)]);
    rw.addOutput(attentionProbsName(L.layer), src, DataType.FLOAT, shape, `attention probabilities of layer ${L.layer}`);
  }
}
