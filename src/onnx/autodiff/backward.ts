// Reverse-mode automatic differentiation as a graph pass: the gradients of a tensor y with
// respect to chosen tensors of the same graph (hidden states), emitted as backward nodes into
// the graph itself, so they run wherever the forward graph runs. Only the slice through which
// y depends on those tensors by float values is differentiated: shape arithmetic, masks and
// integer tensors carry no gradient. Each row's y is differentiated on its own (the seed is 1
// for every element of y), which is Σ over rows of y, since rows of a batch do not interact.

import { UserError } from '../../errors.js';
import { nodeLabel, type GraphIndex } from '../graph.js';
import type { NodeProto } from '../proto.js';
import type { Rewrite } from '../rewrite.js';
import { isFloatType } from '../tensor.js';
import { filledLike, GradientEmitter } from './emitter.js';
import { inferRanks } from './ranks.js';
import { GRADIENT_RULES, ruleKey } from './rules.js';

export interface DifferentiableSlice {
  /** The nodes through which y depends on the sources by float values, in graph order. */
  readonly nodes: readonly NodeProto[];
  /** Tensors that depend on the sources by float values (the sources included). */
  readonly active: ReadonlySet<string>;
}

/** The part of a topologically ordered graph through which `y` depends on `sources` by float values. */
export function differentiableSlice(ix: GraphIndex, dtypes: ReadonlyMap<string, number>, sources: readonly string[], y: string): DifferentiableSlice {
  const active = new Set(sources);
  for (const n of ix.nodes) {
    if (!(n.input ?? []).some((t) => t && active.has(t))) continue;
    for (const o of n.output ?? []) if (o && isFloatType(dtypes.get(o))) active.add(o);
  }
  const needed = new Set([y]);
  const nodes: NodeProto[] = [];
  for (let i = ix.nodes.length - 1; i >= 0; i--) {
    const n = ix.nodes[i]!;
    const reads = (n.input ?? []).some((t) => t && active.has(t));
    if (!reads || !(n.output ?? []).some((o) => o && needed.has(o) && active.has(o))) continue;
    nodes.push(n);
    for (const t of n.input ?? []) if (t && active.has(t)) needed.add(t);
  }
  return { nodes: nodes.reverse(), active };
}

/** The ops of a slice that have no gradient rule, each with the first node that has it. */
export function opsWithoutRule(slice: DifferentiableSlice): Map<string, NodeProto> {
  const missing = new Map<string, NodeProto>();
  for (const n of slice.nodes) {
    const key = ruleKey(n.opType ?? '', n.domain ?? undefined);
    if (!GRADIENT_RULES[key] && !missing.has(key)) missing.set(key, n);
  }
  return missing;
}

/**
 * Emits the backward nodes of `y` (any shape; each element seeded with 1) with respect to each
 * of `wrt`, and returns the gradient tensors in the same order (zeros where y does not depend
 * on one). Refuses, naming them, ops in the slice that have no rule.
 */
export function emitGradients(rw: Rewrite, y: string, wrt: readonly string[], base: string): string[] {
  rw.sortNodes();
  const forward = rw.ix;
  const slice = differentiableSlice(forward, rw.dtypes, wrt, y);
  const ranks = inferRanks(forward);
  const missing = opsWithoutRule(slice);
  if (missing.size) {
    const list = [...missing].map(([op, n]) => `${op} (first at ${nodeLabel(n)})`).join(', ');
    throw new UserError(`gradient attribution: no gradient rule for ${list}`,
      'the gradient pass differentiates the ops transformer exports use (src/onnx/autodiff/rules.ts); report the model');
  }
  const contributions = new Map<string, string[]>();
  const contribute = (t: string, g: string): void => {
    const list = contributions.get(t);
    if (list) list.push(g);
    else contributions.set(t, [g]);
  };
  /** The gradient of t: its contributions summed (undefined where nothing reaches y). */
  const total = (t: string): string | undefined => {
    const list = contributions.get(t);
    if (!list) return undefined;
    const sum = list.reduce((a, b) => rw.op('Add', [a, b], `${base}/sum`, rw.dtype(a)));
    contributions.set(t, [sum]);
    return sum;
  };
  const shapes = new Map<string, string>();
  contribute(y, filledLike(rw, y, 1, `${base}/seed`));
  for (let k = slice.nodes.length - 1; k >= 0; k--) {
    const node = slice.nodes[k]!;
    const outputs = (node.output ?? []).map((o) => (o ? total(o) : undefined));
    if (!outputs.some(Boolean)) continue;
    const emitter = new GradientEmitter(rw, forward, ranks, node, `${base}/${k}`, slice.active, shapes);
    const inputs = GRADIENT_RULES[ruleKey(node.opType ?? '', node.domain ?? undefined)]!(emitter, outputs);
    inputs.forEach((g, i) => {
      const t = node.input?.[i];
      if (g && t && slice.active.has(t)) contribute(t, g);
    });
  }
  return wrt.map((t, i) => total(t) ?? filledLike(rw, t, 0, `${base}/zero${i}`));
}
