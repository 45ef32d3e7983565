// The fuzzer's fixed-seed sample: mutated example sources end in positioned diagnostics or
// in a plan within the model and the row limits. `npm run fuzz` runs a longer sample.
//
// Strong enough: `npm run fuzz -- 10000 1` on the commit issue 12 was filed against
// (aa8f493, with readModelShape inlined) gives 145 findings: 129 uncaught exceptions (stack
// overflows in the parser's error recovery, the checker and the planner; 'internal: the
// checker allows one patch per experiment'), 12 V8 aborts, 1 hang and 3 plans over the row
// limit. After the fixes the same 10,000 inputs give none.

import test from 'ava';
import { fuzz, type FuzzOptions } from './harness.js';
import { exampleSeeds } from './mutate.js';

const options: FuzzOptions = { seeds: exampleSeeds(), seed: 12, count: 1_500, timeoutMs: 10_000, heapMb: 1024, maxFindings: 5 };

test('1,500 mutated sources: no uncaught exception, abort, hang, unpositioned diagnostic or plan out of bounds', async (t) => {
  const summary = await fuzz(options);
  t.deepEqual(summary.findings.map((f) => `#${f.index} ${f.kind}: ${f.detail.split('\n').slice(0, 3).join(' | ')}`), []);
  t.is(summary.judged, options.count);
  // a mutator that broke every input (or none) would pass vacuously
  t.true(summary.plans > options.count / 10, `${summary.plans} plans`);
  t.true(summary.diagnostics > options.count / 10, `${summary.diagnostics} diagnostics`);
});

test('the harness records a judgement slower than its time limit as a hang, and goes on in a new child', async (t) => {
  const summary = await fuzz({ ...options, count: 2, timeoutMs: 1 });
  t.deepEqual(summary.findings.map((f) => [f.index, f.kind]), [[0, 'hang'], [1, 'hang']]);
});

test('the harness records a child that dies as an abort', async (t) => {
  const summary = await fuzz({ ...options, count: 1, heapMb: 2 });
  t.deepEqual(summary.findings.map((f) => [f.index, f.kind]), [[0, 'abort']]);
});
