// From per-example value rows to the aggregate series of an experiment: one point per
// (sweep binding, measure), in sweep order (outermost variable first), then measure order.

import type { Sweep } from '../lang/program.js';
import type { SeriesPoint, SweepAxis, SweepKey, ValueRow } from './schema.js';
import { summarize, type CiOptions } from './stats.js';

export class AggregateInputError extends Error {
  override readonly name = 'AggregateInputError';
}

/** The report's view of a program's sweeps: layer sweeps keep numbers, position sweeps their labels. */
export function sweepAxes(sweeps: readonly Sweep[]): SweepAxis[] {
  return sweeps.map((s): SweepAxis => {
    if (s.kind !== 'positions') return { variable: s.variable, kind: s.kind, values: [...s.values] };
    const singleTokens = s.values.every((v) => v.set.kind === 'indices' && v.set.indices.length === 1);
    return { variable: s.variable, kind: 'positions', values: s.values.map((v) => v.label), ...(singleTokens ? { singleTokens: true } : {}) };
  });
}

/** Every binding of the sweep variables, outermost variable varying slowest. One empty binding if no sweeps. */
export function bindings(axes: readonly SweepAxis[]): SweepKey[] {
  let out: Record<string, number | string>[] = [{}];
  for (const axis of axes) {
    const next: Record<string, number | string>[] = [];
    for (const partial of out) for (const v of axis.values) next.push({ ...partial, [axis.variable]: v });
    out = next;
  }
  return out;
}

/** A canonical string for a binding (independent of property order). Throws if a variable is missing or unknown. */
export function keyId(axes: readonly SweepAxis[], key: SweepKey): string {
  const names = Object.keys(key);
  if (names.length !== axes.length || axes.some((a) => !Object.prototype.hasOwnProperty.call(key, a.variable))) {
    throw new AggregateInputError(
      `binding ${JSON.stringify(key)} does not bind exactly the sweep variables [${axes.map((a) => a.variable).join(', ')}]`,
    );
  }
  return JSON.stringify(axes.map((a) => key[a.variable]));
}

/**
 * Mean, n and CI per (binding, measure). Every row's key must be one of the bindings;
 * a row that lacks a measure does not count towards that measure's n.
 */
export function aggregateSeries(
  axes: readonly SweepAxis[],
  measures: readonly string[],
  rows: readonly ValueRow[],
  ci: CiOptions,
): SeriesPoint[] {
  const keys = bindings(axes);
  const groups = new Map<string, ValueRow[]>();
  for (const k of keys) groups.set(keyId(axes, k), []);
  for (const row of rows) {
    const id = keyId(axes, row.key);
    const group = groups.get(id);
    if (group === undefined) {
      throw new AggregateInputError(`row of example ${JSON.stringify(row.example)} has binding ${JSON.stringify(row.key)}, which is not in the sweep`);
    }
    group.push(row);
  }
  const out: SeriesPoint[] = [];
  for (const key of keys) {
    const group = groups.get(keyId(axes, key))!;
    for (const measure of measures) {
      const xs: number[] = [];
      for (const r of group) {
        const v = r.values[measure];
        if (v !== undefined) xs.push(v);
      }
      const s = summarize(xs, ci);
      out.push({ key, measure, mean: s.mean, ci: s.ci, n: s.n });
    }
  }
  return out;
}
