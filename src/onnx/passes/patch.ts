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

export function patchPass(rw: Rewrite, sites: ModelSites): void {
  const I64 = DataType.INT64;
  const BOOL = DataType.BOOL;
  const dt = rw.dtype(sites.perLayer[0]!.residIn);
  const d = sites.dModel;
  const layer = rw.addInput(VariantNames.patchLayer, I64, ['batch'], 'per row: the hidden state patched, 0..L (l < L: block l\'s input; L: the final norm\'s input; −1 = none)');
  const mask = rw.addInput(VariantNames.patchMask, BOOL, ['batch', 'seq'], 'per row and position: true = replaced by dissect_patch_values');
  const values = rw.addInput(VariantNames.patchValues, dt, ['batch', 'seq', d], 'replacement block-input vectors (read where the mask is true)');
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
