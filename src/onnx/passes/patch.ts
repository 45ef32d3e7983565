// Activation patching at block inputs. Inputs: dissect_patch_layer int64 [batch] (−1 = no
// patch), dissect_patch_mask bool [batch, seq] and dissect_patch_values [batch, seq, d] (model
// dtype). Block l's input (Hugging Face's hidden_states[l]) becomes
//   Where(patch_layer = l ∧ mask, values, residIn_l)
// for every reader of it — the pre-norm and the residual Add alike — which is what a forward
// pre-hook on transformer.h[l] overwriting its input hidden states does. Where selects, so
// unpatched entries are the model's own numbers exactly.

import { DataType } from '../proto.js';
import type { Rewrite } from '../rewrite.js';
import type { ModelSites } from '../sites/types.js';
import { VariantNames } from '../variant.js';

export function patchPass(rw: Rewrite, sites: ModelSites): void {
  const I64 = DataType.INT64;
  const BOOL = DataType.BOOL;
  const dt = rw.dtype(sites.perLayer[0]!.residIn);
  const d = sites.dModel;
  const layer = rw.addInput(VariantNames.patchLayer, I64, ['batch'], 'per row: the block whose input is patched (−1 = none)');
  const mask = rw.addInput(VariantNames.patchMask, BOOL, ['batch', 'seq'], 'per row and position: true = replaced by dissect_patch_values');
  const values = rw.addInput(VariantNames.patchValues, dt, ['batch', 'seq', d], 'replacement block-input vectors (read where the mask is true)');
  const layerCol = rw.unsqueeze(layer, [1], 'dissect/patch/layer_column', I64, ['batch', 1]);
  for (const L of sites.perLayer) {
    const base = `dissect/patch/layer${L.layer}`;
    const here = rw.op('Equal', [layerCol, rw.constant(`${base}/index`, I64, [], [L.layer])], `${base}/selected`, BOOL, ['batch', 1]);
    const where = rw.op('And', [here, mask], `${base}/positions`, BOOL, ['batch', 'seq']);
    const cond = rw.unsqueeze(where, [2], `${base}/condition`, BOOL, ['batch', 'seq', 1]);
    rw.redirect(L.residIn, (t) => rw.op('Where', [cond, values, t], `${base}/input`, dt, ['batch', 'seq', d]));
  }
}
