// Activation patching at hidden states. Inputs: dissect_patch_layer int64 [batch] (−1 = no
// patch), dissect_patch_mask bool [batch, seq] and dissect_patch_values [batch, seq, d] (model
// dtype). Hidden state l (block l's input, Hugging Face's hidden_states[l]; l = L is the final
// norm's input) becomes
//   Where(patch_layer = l ∧ mask, values, h_l)
// for every reader of it — the pre-norm and the residual Add alike — which is what a forward
// pre-hook on transformer.h[l] (or on the final norm) overwriting its input does. Where selects,
// so unpatched entries are the model's own numbers exactly. The language patches block inputs;
// integrated gradients also patch hidden L.

import { DataType } from '../proto.js';
import type { Rewrite } from '../rewrite.js';
import type { ModelSites } from '../sites/types.js';
import { VariantNames } from '../variant.js';
import { addDescribedInput, constantOver, type AddedInput } from '../inputs.js';

export const PATCH_INPUTS = {
  layer: {
    name: VariantNames.patchLayer,
    rule: 'patch_layer',
    meaning: (c) => `the hidden state patched, per row: l < ${c.sites.layers} is block l's input (hidden_states[l]), ${c.sites.layers} the final norm's input`,
    fill: (c) => `a hidden-state index in [0, ${c.sites.layers}], or −1 for no patch`,
    plainRow: (c) => constantOver(c.shape, -1),
  },
  mask: {
    name: VariantNames.patchMask,
    rule: 'patch_mask',
    meaning: () => 'positions whose hidden state is replaced, per row',
    fill: () => 'true where the hidden state is replaced by dissect_patch_values; all false (or patch layer −1) = no intervention',
    plainRow: (c) => constantOver(c.shape, false),
  },
  values: {
    name: VariantNames.patchValues,
    rule: 'patch_values',
    meaning: () => 'replacement hidden-state vectors [batch row, position, d_model]',
    fill: (c) => `any finite values where the mask is false (zeros); e.g. dissect_hidden_states[:, l] of another run (${c.dtype})`,
    plainRow: (c) => constantOver(c.shape, 0),
  },
} as const satisfies Record<string, AddedInput>;

export function patchPass(rw: Rewrite, sites: ModelSites): void {
  const I64 = DataType.INT64;
  const BOOL = DataType.BOOL;
  const dt = rw.dtype(sites.perLayer[0]!.residIn);
  const d = sites.dModel;
  const layer = addDescribedInput(rw, PATCH_INPUTS.layer, I64, ['batch']);
  const mask = addDescribedInput(rw, PATCH_INPUTS.mask, BOOL, ['batch', 'seq']);
  const values = addDescribedInput(rw, PATCH_INPUTS.values, dt, ['batch', 'seq', d]);
  const layerCol = rw.unsqueeze(layer, [1], 'dissect/patch/layer_column', I64, ['batch', 1]);
  const states = [...sites.perLayer.map((L) => L.residIn), sites.perLayer[sites.layers - 1]!.residPost];
  states.forEach((state, l) => {
    const base = `dissect/patch/layer${l}`;
    const here = rw.op('Equal', [layerCol, rw.constant(`${base}/index`, I64, [], [l])], `${base}/selected`, BOOL, ['batch', 1]);
    const where = rw.op('And', [here, mask], `${base}/positions`, BOOL, ['batch', 'seq']);
    const cond = rw.unsqueeze(where, [2], `${base}/condition`, BOOL, ['batch', 'seq', 1]);
    rw.redirect(state, (t) => rw.op('Where', [cond, values, t], `${base}/input`, dt, ['batch', 'seq', d]));
  });
}
