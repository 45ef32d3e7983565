// `npm run fuzz -- [count] [seed]`: the long fuzzing run (10,000 inputs unless told). Each
// finding's input is written to a temporary folder, named by seed and index, to reproduce.

import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fuzz } from './harness.js';
import { exampleSeeds } from './mutate.js';

const count = Number(process.argv[2] ?? 10_000);
const seed = Number(process.argv[3] ?? 1);
if (!Number.isSafeInteger(count) || count < 1 || !Number.isSafeInteger(seed) || seed < 0) {
  process.stderr.write('usage: npm run fuzz -- [count ≥ 1] [seed ≥ 0]\n');
  process.exit(2);
}

const started = Date.now();
const summary = await fuzz({
  seeds: exampleSeeds(), seed, count, timeoutMs: 10_000, heapMb: 1024, maxFindings: Infinity,
  onProgress: (done) => { if (done % 500 === 0) process.stderr.write(`${done}/${count}\n`); },
});
const seconds = ((Date.now() - started) / 1000).toFixed(0);
process.stdout.write(`${summary.judged} inputs (seed ${seed}) in ${seconds} s: ${summary.diagnostics} ended in diagnostics, ${summary.plans} in a plan, ${summary.findings.length} findings\n`);
const byKind = new Map<string, number>();
for (const f of summary.findings) byKind.set(f.kind, (byKind.get(f.kind) ?? 0) + 1);
for (const [kind, n] of byKind) process.stdout.write(`  ${kind}: ${n}\n`);
if (summary.findings.length > 0) {
  const dir = join(tmpdir(), `dissect-fuzz-${seed}`);
  mkdirSync(dir, { recursive: true });
  for (const f of summary.findings) {
    writeFileSync(join(dir, `${f.index}.dissect`), f.input.text);
    writeFileSync(join(dir, `${f.index}.txt`), `${f.kind}\n${f.input.file}\n${f.detail}\n`);
  }
  process.stdout.write(`inputs and details: ${dir}/<index>.dissect, <index>.txt\n`);
  process.exitCode = 1;
}
