// Integer expressions and layer sets evaluated for one binding of the sweep variables: one
// definition for the checker (which tries bindings) and the planner (which builds rows);
// and the extremes of an expression over all bindings, found without listing them.

import type { ChoiceOption } from './choices.js';
import type { IntExpr, LayerSet } from './program.js';

/** The value of `e` once its variables have values. */
export function evalInt(e: IntExpr, value: (variable: string) => number): number {
  switch (e.kind) {
    case 'int': return e.value;
    case 'var': return value(e.name);
    case 'add': return evalInt(e.left, value) + evalInt(e.right, value);
    case 'sub': return evalInt(e.left, value) - evalInt(e.right, value);
  }
}

/** from, from + 1, …, to. */
export function span(from: number, to: number): number[] {
  const out: number[] = [];
  for (let i = from; i <= to; i++) out.push(i);
  return out;
}

/** Layers of `window(center, size)` under the `knockout_window` choice. */
export function windowLayers(rule: ChoiceOption<'knockout_window'>, center: number, size: number, layers: number): number[] {
  switch (rule) {
    // the paper's: max(0, c-⌊k/2⌋) .. min(L-1, c+⌈k/2⌉-1)
    case 'centred_clipped':
      return span(Math.max(0, center - Math.floor(size / 2)), Math.min(layers - 1, center + Math.ceil(size / 2) - 1));
  }
}

/**
 * The layers of a set. A range is cut to the model's layers before it is listed: the checker
 * keeps unclipped ranges inside them, and under `within` (whose bounds it keeps inside them)
 * a range may run far past them.
 */
export function layersOf(set: LayerSet, value: (variable: string) => number, layerCount: number, windowRule: ChoiceOption<'knockout_window'>): number[] {
  const int = (e: IntExpr) => evalInt(e, value);
  switch (set.kind) {
    case 'all': return span(0, layerCount - 1);
    case 'single': return [int(set.layer)];
    case 'range': return span(Math.max(0, int(set.from)), Math.min(layerCount - 1, int(set.to)));
    case 'window': return windowLayers(windowRule, int(set.center), int(set.size), layerCount);
    case 'within': {
      const from = int(set.from);
      const to = int(set.to);
      return layersOf(set.set, value, layerCount, windowRule).filter((l) => l >= from && l <= to);
    }
  }
}

/** Values of integer sweep variables, outermost sweep first. */
export type Binding = ReadonlyMap<string, number>;

/** Each variable's smallest and largest value (a sweep's values need not be in order). */
export type VariableBounds = ReadonlyMap<string, { readonly low: number; readonly high: number }>;

/** `e` as constant + Σ coefficient × variable (`l - l` keeps l, with coefficient 0). */
function linearTerms(e: IntExpr, sign: number, coefficients: Map<string, number>): void {
  switch (e.kind) {
    case 'int': return;
    case 'var': coefficients.set(e.name, (coefficients.get(e.name) ?? 0) + sign); return;
    case 'add': linearTerms(e.left, sign, coefficients); linearTerms(e.right, sign, coefficients); return;
    case 'sub': linearTerms(e.left, sign, coefficients); linearTerms(e.right, -sign, coefficients); return;
  }
}

export interface Extreme { readonly value: number; readonly binding: Binding }

/**
 * The smallest and largest value of `e` over every combination of its variables' values, and
 * a binding that gives each. `e` is linear and sweeps are independent, so each variable sits
 * at one of its bounds: found in one pass, however many rows the sweeps multiply out to.
 * Bindings list the variables in the order of `bounds`.
 */
export function extremes(e: IntExpr, bounds: VariableBounds): { low: Extreme; high: Extreme } {
  const coefficients = new Map<string, number>();
  linearTerms(e, 1, coefficients);
  const low = new Map<string, number>();
  const high = new Map<string, number>();
  for (const [name, { low: min, high: max }] of bounds) {
    const k = coefficients.get(name);
    if (k === undefined) continue;
    low.set(name, k < 0 ? max : min);
    high.set(name, k < 0 ? min : max);
  }
  const at = (b: Binding): Extreme => ({ value: evalInt(e, (v) => b.get(v) ?? NaN), binding: b });
  return { low: at(low), high: at(high) };
}
