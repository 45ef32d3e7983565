// Sublayer gates. One float32 input per gated sublayer, [batch, layers, seq]: 1 keeps, 0
// cancels, values in between scale. Per layer its slice [batch, seq] becomes a column
// [batch, seq, 1] (in the model's dtype) that multiplies
//   attention zero_update:       the attention update, where the residual Add reads it (in a
//                                parallel block, GPT-J: the Add summing it with the MLP's);
//   mlp zero_update:             the MLP update, where the residual (or parallel-sum) Add reads it;
//   mlp zero_preactivation:      the MLP pre-activations (every reader: the activation), so a
//                                cancelled MLP writes act(0)·W + b = its output bias (gelu(0) = 0).
// x · 1 is exact in IEEE arithmetic, so an all-ones gate changes no number the sublayer
// computes (onnxruntime may still fuse the original graph differently: ≤ 1 ulp-level drift).

import { UserError } from '../../errors.js';
import { DataType, type NodeProto } from '../proto.js';
import type { Rewrite } from '../rewrite.js';
import type { LayerSites, ModelSites } from '../sites/types.js';
import { intAttr } from '../tensor.js';
import { VariantNames, type VariantRequest } from '../variant.js';
import { addDescribedInput, constantOver, type AddedInput } from '../inputs.js';

const noGate = '1 everywhere = no intervention; 0 at (layer, position) cancels there; values in between scale';

export const GATE_INPUTS = {
  attention: {
    name: VariantNames.gateAttention,
    rule: 'gate_attention',
    meaning: () => 'factor on each block\'s attention update before the residual add: [batch row, layer, position]',
    fill: () => noGate,
    plainRow: (c) => constantOver(c.shape, 1),
  },
  mlp: {
    name: VariantNames.gateMlp,
    rule: 'gate_mlp',
    meaning: (c) => (c.request.gates?.mlp === 'zero_preactivation'
      ? 'factor on each block\'s MLP pre-activations (the activation\'s input): [batch row, layer, position]; at 0 the MLP writes its output bias'
      : 'factor on each block\'s MLP update before the residual add: [batch row, layer, position]'),
    fill: () => noGate,
    plainRow: (c) => constantOver(c.shape, 1),
  },
} as const satisfies Record<string, AddedInput>;

export type GateRequest = NonNullable<VariantRequest['gates']>;

/** Activation ops that take the MLP bias as an input: gating their input would leave the bias ungated. */
const BIAS_FUSED = new Set(['BiasGelu', 'FastGelu', 'BiasFastGelu']);

/** The per-layer gate column [batch, seq, 1] in dtype `dt`. */
function gateColumn(rw: Rewrite, gate: string, layer: number, dt: number, base: string): string {
  const slice = rw.op('Gather', [gate, rw.scalarInt(`${base}/index`, layer)], `${base}/slice`, DataType.FLOAT, ['batch', 'seq'],
    [intAttr('axis', 1)]);
  const col = rw.unsqueeze(slice, [2], `${base}/column`, DataType.FLOAT, ['batch', 'seq', 1]);
  return dt === DataType.FLOAT ? col : rw.op('Cast', [col], `${base}/column_cast`, dt, ['batch', 'seq', 1], [intAttr('to', dt)]);
}

function gateAt(rw: Rewrite, L: LayerSites, gate: string, tensor: string, what: string, which?: (n: NodeProto) => boolean): void {
  const base = `dissect/gate/${what}/layer${L.layer}`;
  const dt = rw.dtype(tensor);
  const col = gateColumn(rw, gate, L.layer, dt, base);
  rw.redirect(tensor, (t) => rw.op('Mul', [t, col], `${base}/gated`, dt), which);
}

export function gatesPass(rw: Rewrite, sites: ModelSites, gates: GateRequest): void {
  const shape = ['batch', sites.layers, 'seq'];
  if (gates.attention) {
    if (gates.attention !== 'zero_update') throw new UserError(`unknown attention gate mode '${String(gates.attention)}'`);
    const g = addDescribedInput(rw, GATE_INPUTS.attention, DataType.FLOAT, shape);
    for (const L of sites.perLayer) {
      gateAt(rw, L, g, L.attnOut, 'attention', (n) => (n.output ?? []).includes(L.attnAddOut));
    }
  }
  if (gates.mlp) {
    const mode = gates.mlp;
    if (mode !== 'zero_update' && mode !== 'zero_preactivation') throw new UserError(`unknown MLP gate mode '${String(mode)}'`);
    const g = addDescribedInput(rw, GATE_INPUTS.mlp, DataType.FLOAT, shape);
    for (const L of sites.perLayer) {
      if (mode === 'zero_update') {
        gateAt(rw, L, g, L.mlpOut, 'mlp', (n) => (n.output ?? []).includes(L.mlpAddOut));
      } else {
        const fused = rw.ix.consumersOf(L.mlpPre).find((n) => BIAS_FUSED.has(n.opType ?? '') && (n.input ?? []).length > 1);
        if (fused) {
          throw new UserError(`layer ${L.layer}: the MLP bias is fused into the activation (${fused.opType}); ` +
            'zero_preactivation cannot gate the pre-activations with their bias', 'Use the zero_update MLP gate, or an unfused export.');
        }
        gateAt(rw, L, g, L.mlpPre, 'mlp_pre', () => true);
      }
    }
  }
}
