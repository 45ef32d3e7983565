// Attention-knockout measures: from the raw numbers the runner reads out of the graph to
// the per-example values that the report aggregates. Pure functions, no I/O.
//
// Conventions (the runner must follow them):
// - the target is the clean run's top-1 token at the last position, not the dataset's
//   attribute string;
// - `p0` is the clean softmax probability of that token; `pNew` is its probability in
//   the intervened row; both are plain probabilities in (0, 1], not logs;
// - `rank` is 0-based: the number of vocabulary entries whose logit is strictly greater
//   than the target's (0 = still the top-1 prediction).

import type { MeasureName } from '../lang/program.js';
import type { ExampleId, SweepKey, ValueRow } from './schema.js';

/** The clean (unintervened) run of one example. */
export interface CleanOutput {
  /** Clean probability of the clean top-1 token. Must be > 0. */
  readonly p0: number;
  /** Token id of the clean top-1 token: the target of every knockout measure. */
  readonly targetId: number;
}

/** One configuration row (one binding of the sweep variables) of one example. */
export interface RowOutput {
  /** Probability of the target token with the intervention applied. */
  readonly pNew: number;
  /** 0-based rank of the target token with the intervention applied. */
  readonly rank: number;
}

/** Every knockout measure of one row. */
export type KnockoutValues = { readonly [M in MeasureName]: number };

export class MeasureInputError extends Error {
  override readonly name = 'MeasureInputError';
}

function checkProbability(what: string, p: number, allowZero: boolean): void {
  if (!Number.isFinite(p) || p > 1 + 1e-6 || (allowZero ? p < 0 : p <= 0)) {
    throw new MeasureInputError(`${what} must be a probability${allowZero ? '' : ' > 0'}, got ${p}`);
  }
}

function checkClean(clean: CleanOutput): void {
  checkProbability('clean probability p0', clean.p0, false);
  if (!Number.isInteger(clean.targetId) || clean.targetId < 0) {
    throw new MeasureInputError(`target id must be a non-negative integer, got ${clean.targetId}`);
  }
}

function checkRow(row: RowOutput): void {
  checkProbability('intervened probability pNew', row.pNew, true);
  if (!Number.isInteger(row.rank) || row.rank < 0) {
    throw new MeasureInputError(`rank must be a non-negative integer, got ${row.rank}`);
  }
}

/** Relative change of the target's probability, in percent: (pNew − p0) / p0 × 100. */
export function probabilityChange(p0: number, pNew: number): number {
  checkProbability('clean probability p0', p0, false);
  checkProbability('intervened probability pNew', pNew, true);
  return ((pNew - p0) / p0) * 100;
}

/** All knockout measures of one row of one example. Throws MeasureInputError on bad input. */
export function knockoutValues(clean: CleanOutput, row: RowOutput): KnockoutValues {
  checkClean(clean);
  checkRow(row);
  return {
    probability_change: ((row.pNew - clean.p0) / clean.p0) * 100,
    probability: row.pNew,
    rank: row.rank,
  };
}

/** One measure of one row. */
export function knockoutMeasure(name: MeasureName, clean: CleanOutput, row: RowOutput): number {
  return knockoutValues(clean, row)[name];
}

/** Only the requested measures, in the requested order (the order of the experiment). */
export function selectMeasures(
  values: KnockoutValues,
  measures: readonly MeasureName[],
): Partial<Record<MeasureName, number>> {
  const out: Partial<Record<MeasureName, number>> = {};
  for (const m of measures) out[m] = values[m];
  return out;
}

/** One configuration row as the runner hands it over: which binding, and its raw numbers. */
export interface KeyedRowOutput extends RowOutput {
  readonly key: SweepKey;
}

/** Every row of one example, reduced to the experiment's measures. */
export function knockoutExampleRows(
  exampleId: ExampleId,
  clean: CleanOutput,
  rows: readonly KeyedRowOutput[],
  measures: readonly MeasureName[],
): ValueRow[] {
  return rows.map((row) => ({
    example: exampleId,
    key: row.key,
    values: selectMeasures(knockoutValues(clean, row), measures),
  }));
}
