// Hidden states: one output [batch, layers+1, seq, d] in the model's dtype, entry l being the
// input of block l (entry 0 = the embedding output) and entry L the residual stream after the
// last block. Unlike Hugging Face's hidden_states, whose last entry is after the final
// LayerNorm, entry L here is the raw residual stream (the final norm's input). Entries are
// read after interventions: a patched block input appears patched.

import type { Rewrite } from '../rewrite.js';
import type { ModelSites } from '../sites/types.js';
import { intAttr } from '../tensor.js';
import { VariantNames } from '../variant.js';

/** The tensors of hidden_states 0..L as the graph now computes them. */
export function hiddenStateTensors(rw: Rewrite, sites: ModelSites): string[] {
  const last = sites.perLayer[sites.layers - 1]!;
  return [...sites.perLayer.map((L) => rw.current(L.residIn)), rw.current(last.residPost)];
}

export function hiddenStatesPass(rw: Rewrite, sites: ModelSites): void {
  const d = sites.dModel;
  const states = hiddenStateTensors(rw, sites);
  const dt = rw.dtype(states[0]!);
  const parts = states.map((t, l) => rw.unsqueeze(t, [1], `dissect/hidden/state${l}`, dt, ['batch', 1, 'seq', d]));
  const all = rw.op('Concat', parts, 'dissect/hidden/states', dt, ['batch', sites.layers + 1, 'seq', d], [intAttr('axis', 1)]);
  rw.addOutput(VariantNames.hiddenStates, all, dt, ['batch', sites.layers + 1, 'seq', d],
    'hidden states 0..L: block inputs, then the residual stream after the last block (no final norm)');
}
