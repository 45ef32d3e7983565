// The model's LM head applied to rows of final-norm outputs [N, d] → logits [N, V], exactly as
// the graph's own head computes them (Gemm or MatMul + bias, then any scale and soft-cap), for passes
// that read logits of chosen positions without the full [b, s, V] tensor.

import { DataType } from '../proto.js';
import type { Rewrite } from '../rewrite.js';
import type { ModelSites } from '../sites/types.js';
import { intAttr } from '../tensor.js';

export function applyLmHead(rw: Rewrite, sites: ModelSites, rows: string, base: string, shape?: readonly (string | number)[]): string {
  const u = sites.unembedding;
  const dt = rw.dtype(rows);
  let logits: string;
  if (u.layout === 'Vd' || u.op === 'Gemm') {
    logits = rw.op('Gemm', [rows, u.weight, ...(u.bias ? [u.bias] : [])], base, dt, shape, [intAttr('transB', u.layout === 'Vd' ? 1 : 0)]);
  } else {
    logits = rw.op('MatMul', [rows, u.weight], base, dt, shape);
    if (u.bias) logits = rw.op('Add', [logits, u.bias], `${base}_biased`, dt, shape);
  }
  const floatType = dt === DataType.FLOAT16 ? DataType.FLOAT16 : DataType.FLOAT;
  if (u.scale !== undefined) logits = rw.op('Mul', [logits, rw.constant(`${base}/scale`, floatType, [], [u.scale])], `${base}_scaled`, dt, shape);
  if (u.softcap === undefined) return logits;
  const cap = rw.constant(`${base}/softcap`, floatType, [], [u.softcap]);
  const tanh = rw.op('Tanh', [rw.op('Div', [logits, cap], `${base}/over_cap`, dt, shape)], `${base}/tanh`, dt, shape);
  return rw.op('Mul', [tanh, cap], `${base}_capped`, dt, shape);
}
