import test from 'ava';
import {
  bootstrapMeans,
  bootstrapPercentileCi,
  mean,
  mulberry32,
  percentileSorted,
  StatsInputError,
  summarize,
  uniformIndex,
} from '../../src/measure/stats.js';

const close = (a: number, b: number, tol = 1e-12) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));

test('mean', (t) => {
  t.is(mean([1, 2, 3, 4]), 2.5);
  t.is(mean([-75, 50]), -12.5);
  t.true(Number.isNaN(mean([])));
});

test('percentiles interpolate linearly like numpy', (t) => {
  const a = [1, 2, 3, 4];
  t.is(percentileSorted(a, 0), 1);
  t.is(percentileSorted(a, 25), 1.75); // h = 3 × 0.25 = 0.75
  t.is(percentileSorted(a, 50), 2.5);
  t.true(close(percentileSorted(a, 97.5), 3.925)); // h = 2.925
  t.is(percentileSorted(a, 100), 4);
  t.is(percentileSorted([5], 2.5), 5);
  t.throws(() => percentileSorted([], 50), { instanceOf: StatsInputError });
  t.throws(() => percentileSorted(a, 101), { instanceOf: StatsInputError });
});

test('mulberry32 matches the published reference implementation', (t) => {
  // Outputs × 2^32 of the widely circulated JavaScript mulberry32 (bryc), seeds 0 and 42.
  const g0 = mulberry32(0);
  t.deepEqual([g0(), g0(), g0()], [1144304738, 1416247, 958946056]);
  const g42 = mulberry32(42);
  t.deepEqual([g42(), g42(), g42(), g42(), g42()], [2581720956, 1925393290, 3661312704, 2876485805, 750819978]);
});

test('uniformIndex rejects the biased low zone (Lemire)', (t) => {
  // n = 3: threshold = 2^32 mod 3 = 1, so a draw of 0 (low part 0) is rejected.
  const draws = [0, 4294967295];
  const next = () => draws.shift()!;
  t.is(uniformIndex(next, 3), 2); // (2^32 − 1) × 3 / 2^32 → 2
  t.is(draws.length, 0);
  const g = mulberry32(9);
  for (let i = 0; i < 1000; i++) {
    const k = uniformIndex(g, 7);
    t.true(Number.isInteger(k) && k >= 0 && k < 7);
  }
});

test('bootstrapMeans is mulberry32 + uniformIndex drawn resample by resample', (t) => {
  const xs = [3, -1, 4, 1, -5, 9, 2];
  const g = mulberry32(123);
  const expected: number[] = [];
  for (let b = 0; b < 50; b++) {
    let s = 0;
    for (let i = 0; i < xs.length; i++) s += xs[uniformIndex(g, xs.length)]!;
    expected.push(s / xs.length);
  }
  expected.sort((a, b) => a - b);
  t.deepEqual(Array.from(bootstrapMeans(xs, 50, 123)), expected);
});

test('a constant sample has a zero-width interval at its mean', (t) => {
  const s = summarize([3.3, 3.3, 3.3, 3.3, 3.3], { method: 'bootstrap_percentile', resamples: 1000, level: 0.95, seed: 0 });
  t.is(s.n, 5);
  t.deepEqual(s.ci, [s.mean!, s.mean!]);
  t.true(close(s.mean!, 3.3));
});

test('n = 1: the interval is the value itself', (t) => {
  t.deepEqual(bootstrapPercentileCi([7.25], 1000, 0.95, 0), [7.25, 7.25]);
  t.deepEqual(summarize([-42.5], { method: 'bootstrap_percentile', resamples: 1000, level: 0.95, seed: 3 }), {
    mean: -42.5,
    n: 1,
    ci: [-42.5, -42.5],
  });
});

test('hand-derived intervals for two-valued samples', (t) => {
  // {0, 1}: resample means are 0, ½, 1 with probabilities ¼, ½, ¼; ~250 of 1000 at each
  // end, far more than the 25 needed, so the 2.5/97.5 percentiles are exactly 0 and 1.
  t.deepEqual(bootstrapPercentileCi([0, 1], 1000, 0.95, 7), [0, 1]);
  // {0,0,0,1}: P(mean = 0) = (3/4)^4 ≈ 0.32 → lower end 0; P(mean ≥ 3/4) ≈ 0.051 but
  // P(mean = 1) ≈ 0.004 < 0.025 → upper end 3/4.
  t.deepEqual(bootstrapPercentileCi([0, 0, 0, 1], 1000, 0.95, 7), [0, 0.75]);
});

test('a fixed seed gives pinned intervals (cross-checked with a Python port + numpy.percentile)', (t) => {
  t.deepEqual(bootstrapPercentileCi([1, 2, 3, 4, 5], 1000, 0.95, 42), [1.8, 4.2]);
  const ci = bootstrapPercentileCi([2.5, -1, 4, 10, 0.5, 3], 1000, 0.95, 12345);
  t.is(ci[0], 0.75);
  t.true(close(ci[1], 6.0854166666666645));
  t.deepEqual(bootstrapPercentileCi([2.5, -1, 4, 10, 0.5, 3], 1000, 0.95, 12345), ci); // rerun: identical
});

test('intervals contain the mean, narrow with the level, vary with the seed', (t) => {
  const g = mulberry32(5);
  const xs = Array.from({ length: 200 }, () => (g() / 4294967296) * 100 - 60);
  const m = mean(xs);
  const ci95 = bootstrapPercentileCi(xs, 1000, 0.95, 1);
  const ci50 = bootstrapPercentileCi(xs, 1000, 0.5, 1);
  t.true(ci95[0] < m && m < ci95[1]);
  t.true(ci95[0] < ci50[0] && ci50[1] < ci95[1]);
  const other = bootstrapPercentileCi(xs, 1000, 0.95, 2);
  t.notDeepEqual(other, ci95);
  // Standard error of the mean of U(−60, 40) with n = 200 is ≈ 2.04; 95 % half-width ≈ 4.
  t.true(Math.abs((ci95[1] - ci95[0]) / 2 - 4) < 0.6);
});

test('summarize: none, empty, and bad input', (t) => {
  t.deepEqual(summarize([1, 2, 6], { method: 'none' }), { mean: 3, n: 3, ci: null });
  t.deepEqual(summarize([], { method: 'bootstrap_percentile', resamples: 1000, level: 0.95, seed: 0 }), { mean: null, n: 0, ci: null });
  t.throws(() => summarize([1, Number.NaN], { method: 'none' }), { instanceOf: StatsInputError, message: /value 1/ });
  t.throws(() => summarize([1], { method: 'bootstrap_percentile', resamples: 0, level: 0.95, seed: 0 }), { message: /resamples/ });
  t.throws(() => summarize([1], { method: 'bootstrap_percentile', resamples: 10, level: 1, seed: 0 }), { message: /level/ });
  t.throws(() => summarize([1], { method: 'bootstrap_percentile', resamples: 10, level: 0.9, seed: -1 }), { message: /seed/ });
});
