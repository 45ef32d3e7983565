// `npm run bench`: the speed and memory targets, measured (never asserted in tests).
//   compile  a GPT-J-sized graph with external weights: goal < 2 s and < 300 MiB peak RSS
//   memory   a GPT-2-small-sized model, weights inline and external: time and peak RSS against
//            the goal of 1.3 × weights + 1 GB, and a huge --batch lowered to what memory holds
//   run      the information-flow sweep on the default model: examples and rows per second,
//            with rows as the last token against the clean cache and over whole prompts
//   attribution  one backward pass for every hidden state against a clean forward, and
//            attribution facts per second (bench/attribution.ts)
//   GPT-J    the full-width GPT-J check of the tests against PyTorch, which peaks at 7 GiB and
//            so is skipped by `npm test` (test/onnx/full-width-gptj.test.ts)
//   xl       the paper's information-flow sweep on GPT-2 XL's shape against the paper code's
//            method and batched whole prompts (xl.ts); last, so that its four machine-readable
//            lines end the output
// Each benchmark runs in its own process so that peak RSS is its own.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadProgram, runProgram } from '../src/pipeline/index.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const example = fileURLToPath(new URL('../../examples/information-flow.dissect', import.meta.url));

for (const args of [[], ['--all']]) {
  console.log(`\n== compile ${args.length ? '(every pass)' : '(knockout)'}`);
  process.stdout.write(execFileSync(process.execPath, [join(here, 'compile.js'), ...args], { encoding: 'utf8' }));
}
console.log('   goal: compile under 2 s, peak RSS under 300 MiB');
console.log('\n== recognise: GPT-2 XL\'s shape (48 layers, d 1600, 25 heads)');
process.stdout.write(execFileSync(process.execPath, [join(here, 'compile.js'), '--layers', '48', '--d-model', '1600', '--heads', '25'], { encoding: 'utf8' }));
console.log('   goal: recognise under 1 s');

console.log('\n== memory: a GPT-2-small-sized model, weights inline and external');
process.stdout.write(execFileSync(process.execPath, [join(here, 'memory.js')], { encoding: 'utf8' }));

console.log('\n== run: information flow on the default model (300 facts × 24 rows)');
const out = mkdtempSync(join(tmpdir(), 'dissect-bench-run-'));
try {
  for (const fullRows of [false, true]) {
    for (const batch of [1, 32, 128]) {
      const t = performance.now();
      const { results } = await runProgram(loadProgram(example), {
        out: join(out, `${batch}-${fullRows}`), selection: {}, batch, device: 'cpu', command: ['bench'], fresh: true, fullRows,
      });
      const s = (performance.now() - t) / 1000;
      const rows = results.experiments.reduce((n, x) => n + x.forwardPasses, 0) + results.data.total;
      const how = fullRows ? 'whole prompts' : 'last position';
      console.log(`${how.padEnd(13)} batch ${String(batch).padStart(3)}: ${s.toFixed(1)} s, ${(results.data.kept / s).toFixed(0)} facts/s, ${(rows / s).toFixed(0)} rows/s`);
    }
  }
} finally {
  rmSync(out, { recursive: true, force: true });
}

console.log('\n== attribution: gradient × hidden state of every hidden state, against clean forwards');
process.stdout.write(execFileSync(process.execPath, [join(here, 'attribution.js')], { encoding: 'utf8' }));

console.log('\n== GPT-J width: a 2-block slice of GPT-J-6B against PyTorch (needs /usr/bin/python3 with torch and onnx)');
execFileSync('npx', ['ava', join(here, '..', 'test', 'onnx', 'full-width-gptj.test.js')], {
  stdio: 'inherit', env: { ...process.env, DISSECT_FULL_WIDTH: '1' },
});

console.log('\n== xl: the paper\'s information-flow sweep on GPT-2 XL\'s shape');
execFileSync(process.execPath, [join(here, 'xl.js')], { stdio: 'inherit' });
