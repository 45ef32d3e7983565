// Attention-edge knockout. One bool input [batch, layers, heads|1, seq, kv] (true = the edge
// query→key is blocked); per layer its slice, intersected with the causal mask, replaces the
// Softmax input by B where blocked, and every future key by F:
//   Where(causal, Where(blocked, B, scores), F)
// B = half the lowest finite value of the scores' dtype, F = the lowest finite value.
//
// Consequences: a blocked weight is exactly 0 whenever any causal key of the row stays open
// (exp(B − s) underflows); a fully blocked row is uniform over its causal prefix, because
// future keys hold F, below B. F is written explicitly because models mask the future
// differently: GPT-2 puts the dtype's lowest value there (or −inf with padding), GPT-J
// divides its finfo.min by √d_head afterwards (−6·10³⁷ in float32, above B). Future keys get
// weight 0 either way, so without knockout the probabilities are the model's own. Nothing
// overflows and no NaN appears. Replacement, unlike adding a large negative number, does not
// depend on the scores' magnitude or on how a backend upcasts fp16.

import { DataType } from '../proto.js';
import type { Rewrite } from '../rewrite.js';
import type { ModelSites } from '../sites/types.js';
import { isFloatType, lowestFinite } from '../tensor.js';
import { VariantNames } from '../variant.js';
import { intAttr } from '../tensor.js';
import { addDescribedInput, type AddedInput } from '../inputs.js';

export const KNOCKOUT_INPUTS = {
  edges: {
    name: VariantNames.knockout,
    rule: 'knockout',
    meaning: () => 'attention edges to block: [batch row, layer, head (or 1 for all heads), query position, key position]',
    fill: (c) => 'true where the edge query→key is blocked in that layer (and head); dim 2 is 1 to block in all heads or the head count ' +
      `(${c.sites.heads}) to block per head; entries with key > query are ignored; all false = no intervention`,
    plainRow: (c) => ({ shape: ['batch', c.sites.layers, 1, 'seq', 'seq'], value: false }),
  },
} as const satisfies Record<string, AddedInput>;

/** The name of the key axis: 'kv_seq' (past + seq) once the graph takes past keys, its own or dissect's. */
export function keyAxis(rw: Rewrite, sites: ModelSites): string {
  return sites.inputs.past.length || rw.ix.inputs.has(`${VariantNames.pastKeyPrefix}0`) ? 'kv_seq' : 'seq';
}

/** The score a blocked edge gets, under the `knockout_value` choice. */
export function knockoutValue(rule: 'replace_half_min', dtype: number): number {
  switch (rule) {
    case 'replace_half_min': return lowestFinite(dtype) / 2;
  }
}

export function knockoutPass(rw: Rewrite, sites: ModelSites, rule: 'replace_half_min'): void {
  const kvDim = keyAxis(rw, sites);
  const K = addDescribedInput(rw, KNOCKOUT_INPUTS.edges, DataType.BOOL, ['batch', sites.layers, 'heads_or_1', 'seq', kvDim]);
  // causal[q, k] = k ≤ q + (kv − seq), from the knockout input's own shape
  const I64 = DataType.INT64;
  const shape = rw.op('Shape', [K], 'dissect/knockout/shape', I64, [5]);
  const nq = rw.op('Gather', [shape, rw.scalarInt('dissect/knockout/dim3', 3)], 'dissect/knockout/seq', I64, [], [intAttr('axis', 0)]);
  const nk = rw.op('Gather', [shape, rw.scalarInt('dissect/knockout/dim4', 4)], 'dissect/knockout/kv', I64, [], [intAttr('axis', 0)]);
  const offset = rw.op('Sub', [nk, nq], 'dissect/knockout/past', I64, []);
  const zero = rw.scalarInt('dissect/knockout/zero', 0);
  const one = rw.scalarInt('dissect/knockout/one', 1);
  const qi = rw.op('Range', [zero, nq, one], 'dissect/knockout/query_index', I64, ['seq']);
  const qcol = rw.unsqueeze(qi, [1], 'dissect/knockout/query_column', I64, ['seq', 1]);
  const qlast = rw.op('Add', [qcol, offset], 'dissect/knockout/query_last_key', I64, ['seq', 1]);
  const ki = rw.op('Range', [zero, nk, one], 'dissect/knockout/key_index', I64, [kvDim]);
  const causal = rw.op('LessOrEqual', [ki, qlast], 'dissect/knockout/causal', DataType.BOOL, ['seq', kvDim]);

  for (const L of sites.perLayer) {
    const dt = rw.dtype(L.scores);
    if (!isFloatType(dt)) throw new Error(`internal: layer ${L.layer} scores have non-float dtype #${dt}`);
    const base = `dissect/knockout/layer${L.layer}`;
    const blocked = rw.op('Gather', [K, rw.scalarInt(`${base}/index`, L.layer)], `${base}/edges`, DataType.BOOL,
      ['batch', 'heads_or_1', 'seq', kvDim], [intAttr('axis', 1)]);
    const B = rw.constant(`${base}/replacement`, dt, [], [knockoutValue(rule, dt)]);
    const F = rw.constant(`${base}/future`, dt, [], [lowestFinite(dt)]);
    const knocked = rw.op('Where', [blocked, B, L.scores], `${base}/knocked`, dt, ['batch', sites.heads, 'seq', kvDim]);
    const scores = rw.op('Where', [causal, knocked, F], `${base}/scores`, dt, ['batch', sites.heads, 'seq', kvDim]);
    const softmaxes = rw.ix.consumersOf(L.scores).filter((n) => n.opType === 'Softmax');
    if (softmaxes.length !== 1) throw new Error(`internal: layer ${L.layer}: expected one Softmax reading '${L.scores}'`);
    rw.replaceInput(softmaxes[0]!, L.scores, scores);
  }
}
