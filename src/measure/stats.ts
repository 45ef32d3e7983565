// Aggregate statistics over examples: mean, n and a confidence interval for the mean.
//
// The CI methods are named because they are a choice the report records:
// - `bootstrap_percentile`: resample the examples with replacement `resamples` times
//   (1000 by default), take the mean of each resample, and report the (1−level)/2 and
//   (1+level)/2 percentiles of those means (2.5 % and 97.5 % for level 0.95), with
//   numpy's default ("linear") percentile interpolation. This is the method behind
//   seaborn's default error band; the random stream differs (seaborn uses numpy's
//   PCG64), so intervals agree in distribution, not digit for digit.
// - `none`: no interval.
//
// Randomness comes from mulberry32, a 32-bit PRNG built only from 32-bit integer
// operations (Math.imul, shifts, xor), so a given seed yields the same stream on every
// platform and JavaScript engine. Every series is resampled from a fresh generator seeded
// with the run's seed: an interval depends only on its own data and the seed, never on
// how many series were computed before it.

import { mulberry32 } from '../random.js';

export { mulberry32 };

export type CiMethod = 'bootstrap_percentile' | 'none';
export const ciMethods: readonly CiMethod[] = ['bootstrap_percentile', 'none'];

export type CiOptions =
  | { readonly method: 'none' }
  | {
      readonly method: 'bootstrap_percentile';
      /** Number of bootstrap resamples (≥ 1). */
      readonly resamples: number;
      /** Coverage in (0, 1), e.g. 0.95. */
      readonly level: number;
      /** Unsigned 32-bit integer seed. */
      readonly seed: number;
    };

/** seaborn's defaults: 1000 resamples, 95 %; the seed is ours. */
export const defaultCi: CiOptions = { method: 'bootstrap_percentile', resamples: 1000, level: 0.95, seed: 0 };

export interface Summary {
  /** Arithmetic mean; null when there are no values. */
  readonly mean: number | null;
  readonly n: number;
  /** [lo, hi]; null when the method is `none` or there are no values. */
  readonly ci: readonly [number, number] | null;
}

export class StatsInputError extends Error {
  override readonly name = 'StatsInputError';
}

function checkFinite(xs: readonly number[]): void {
  for (let i = 0; i < xs.length; i++) {
    if (!Number.isFinite(xs[i])) throw new StatsInputError(`value ${i} is not a finite number: ${xs[i]}`);
  }
}

/** Left-to-right sum divided by n. NaN for an empty sample. */
export function mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i]!;
  return s / xs.length;
}

/**
 * Percentile p ∈ [0, 100] of an ascending array, numpy's default "linear" method:
 * position h = (n−1)·p/100, value = a[⌊h⌋] + (h−⌊h⌋)·(a[⌊h⌋+1] − a[⌊h⌋]).
 */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) throw new StatsInputError('percentile of an empty sample');
  if (!(p >= 0 && p <= 100)) throw new StatsInputError(`percentile must be in [0, 100], got ${p}`);
  const h = ((n - 1) * p) / 100;
  const lo = Math.floor(h);
  if (lo >= n - 1) return sorted[n - 1]!;
  const frac = h - lo;
  const a = sorted[lo]!;
  const b = sorted[lo + 1]!;
  return frac === 0 ? a : a + frac * (b - a);
}

/**
 * Uniform integer in [0, n) from a uint32 source without modulo bias (Lemire's
 * multiply-and-reject; exact in doubles because n < 2^21 keeps x·n below 2^53).
 */
export function uniformIndex(next: () => number, n: number): number {
  if (!Number.isInteger(n) || n < 1 || n >= 2 ** 21) throw new StatsInputError(`index range must be an integer in [1, 2^21), got ${n}`);
  let m = next() * n;
  let low = m % 4294967296;
  if (low < n) {
    const threshold = (4294967296 - n) % n;
    while (low < threshold) {
      m = next() * n;
      low = m % 4294967296;
    }
  }
  return Math.floor(m / 4294967296);
}

function checkResamplesAndSeed(resamples: number, seed: number): void {
  if (!Number.isInteger(resamples) || resamples < 1) throw new StatsInputError(`resamples must be a positive integer, got ${resamples}`);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new StatsInputError(`seed must be an integer in [0, 2^32), got ${seed}`);
}

function checkBootstrapOptions(resamples: number, level: number, seed: number): void {
  checkResamplesAndSeed(resamples, seed);
  if (!(level > 0 && level < 1)) throw new StatsInputError(`CI level must be in (0, 1), got ${level}`);
}

/**
 * The sorted means of `resamples` bootstrap resamples (exposed for tests and plots).
 * Draw i of resample b is `uniformIndex(mulberry32(seed), n)` taken in order: b-major,
 * then i; the loop below inlines both for speed (~1.2 M draws per series).
 */
export function bootstrapMeans(xs: readonly number[], resamples: number, seed: number): Float64Array {
  checkFinite(xs);
  if (xs.length === 0) throw new StatsInputError('bootstrap of an empty sample');
  checkResamplesAndSeed(resamples, seed);
  const n = xs.length;
  if (n >= 2 ** 21) throw new StatsInputError(`bootstrap sample too large: ${n}`);
  const data = Float64Array.from(xs);
  const threshold = (4294967296 - n) % n;
  let a = seed | 0;
  const means = new Float64Array(resamples);
  for (let b = 0; b < resamples; b++) {
    let s = 0;
    for (let i = 0; i < n; i++) {
      let high: number;
      let low: number;
      do {
        a = (a + 0x6d2b79f5) | 0;
        let t = Math.imul(a ^ (a >>> 15), 1 | a);
        t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
        const m = ((t ^ (t >>> 14)) >>> 0) * n; // exact: < 2^53
        high = Math.floor(m * 2.3283064365386963e-10); // m / 2^32, exact scaling
        low = m - high * 4294967296;
      } while (low < threshold);
      s += data[high]!;
    }
    means[b] = s / n;
  }
  return means.sort();
}

/** Percentile bootstrap interval of the mean. n = 1 gives [x, x]; a constant sample gives zero width. */
export function bootstrapPercentileCi(
  xs: readonly number[],
  resamples: number,
  level: number,
  seed: number,
): [number, number] {
  checkBootstrapOptions(resamples, level, seed);
  const means = bootstrapMeans(xs, resamples, seed);
  const edge = (100 - level * 100) / 2; // 2.5 for level 0.95, as seaborn's (100 − width) / 2
  return [percentileSorted(means, edge), percentileSorted(means, 100 - edge)];
}

/** Mean, n and the configured interval. Values must be finite. */
export function summarize(xs: readonly number[], ci: CiOptions): Summary {
  checkFinite(xs);
  if (ci.method !== 'none') checkBootstrapOptions(ci.resamples, ci.level, ci.seed);
  if (xs.length === 0) return { mean: null, n: 0, ci: null };
  const m = mean(xs);
  if (ci.method === 'none') return { mean: m, n: xs.length, ci: null };
  return { mean: m, n: xs.length, ci: bootstrapPercentileCi(xs, ci.resamples, ci.level, ci.seed) };
}
