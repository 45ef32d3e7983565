// The cost of gradient attribution on the default model: a batch of whole prompts run in the
// variant without the backward pass (the clean forward) and in the attribution variant (forward
// and one backward for every hidden state), per fact; the goal is at most 3 clean forwards.
// Then examples/attribution.dissect's `attribution` experiment alone, end to end, in facts/s,
// and the same ratio at GPT-2-small's width, where matrix products outweigh the per-node cost.
// Run by bench/run.ts in a process of its own.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildVariant } from '../src/onnx/compile.js';
import { loadProgram, runProgram, selectedFacts } from '../src/pipeline/index.js';
import { buildFeeds, type BatchRow } from '../src/run/batch.js';
import { orThrow } from '../src/run/errors.js';
import { createVariantSession } from '../src/run/session.js';
import { readSourceModel, type SourceModel } from '../src/onnx/source.js';
import { VariantNames, type VariantRequest } from '../src/onnx/variant.js';
import { writeSkeleton } from './skeleton.js';

const example = fileURLToPath(new URL('../../examples/attribution.dissect', import.meta.url));
const BATCH = 32;
const REPEATS = 10;

/**
 * One batch in a variant of `source`, in ms: the median wall time, and the process's CPU time
 * (every thread's) per batch, which other processes on a busy machine disturb less.
 */
async function batchTime(source: SourceModel, request: VariantRequest, rows: readonly BatchRow[], fetches: readonly string[]): Promise<{ wall: number; cpu: number }> {
  const variant = buildVariant(source, request);
  const session = orThrow(await createVariantSession(variant));
  const feeds = buildFeeds(variant.manifest, rows); // built once: the timing is the pass's alone
  try {
    await session.run(feeds, fetches); // warm-up
    const times: number[] = [];
    const cpu = process.cpuUsage();
    for (let i = 0; i < REPEATS; i++) {
      const t = performance.now();
      await session.run(feeds, fetches);
      times.push(performance.now() - t);
    }
    const { user, system } = process.cpuUsage(cpu);
    return { wall: times.sort((a, b) => a - b)[REPEATS >> 1]!, cpu: (user + system) / 1000 / REPEATS };
  } finally {
    await session.release();
  }
}

/** A clean forward and one attribution of every hidden state, per fact, and their ratio. */
async function forwardVersusBackward(name: string, source: SourceModel, rows: readonly BatchRow[]): Promise<void> {
  const plain: VariantRequest = { knockout: false, logits: false };
  const forward = await batchTime(source, plain, rows, [VariantNames.targetProb]);
  const attribution = { target: 'log_probability', reduction: 'sum' } as const;
  const backward = await batchTime(source, { ...plain, attribution }, rows, [VariantNames.attribution]);
  for (const key of ['wall', 'cpu'] as const) {
    console.log(`${name}, ${key.padEnd(4)}: clean forward ${(forward[key] / rows.length).toFixed(2)} ms/fact, attribution of every hidden state ` +
      `${(backward[key] / rows.length).toFixed(2)} ms/fact = ${(backward[key] / forward[key]).toFixed(2)} clean forwards ` +
      `(goal ≤ 3; batch ${rows.length}, ${key === 'wall' ? 'median' : 'mean'} of ${REPEATS})`);
  }
}

const loaded = loadProgram(example);
await forwardVersusBackward('default model', loaded.source, selectedFacts(loaded, { limit: BATCH }).selected.map((f) => {
  const ids = [...loaded.tokenizer.encode(f.prompt).ids];
  return { ids, lastIndex: ids.length - 1, target: ids[0]! };
}));

const out = mkdtempSync(join(tmpdir(), 'dissect-bench-attribution-'));
try {
  // the example's model and data, its plain attribution experiment alone
  const { model, dataset } = loaded.program;
  const file = join(out, 'attribution.dissect');
  writeFileSync(file, [
    `model "${model.onnx}" tokenizer "${model.tokenizer}"`,
    `dataset counterfact "${dataset.path}"`,
    'filter known',
    'experiment attribution {\n  for h in hidden all\n  measure attribution of hidden h\n}',
  ].join('\n'));
  const t = performance.now();
  const { results } = await runProgram(loadProgram(file), {
    out: join(out, 'run'), selection: {}, batch: BATCH, device: 'cpu', command: ['bench'], fresh: true,
  });
  const s = (performance.now() - t) / 1000;
  console.log(`attribution of hidden h over every hidden state, batch ${BATCH}: ${s.toFixed(1)} s, ${(results.data.kept / s).toFixed(0)} facts/s`);
  // GPT-2-small's width (4 of its 12 layers), random weights: where the matrix products dominate
  const shape = { layers: 4, heads: 12, dModel: 768, vocab: 50257, positions: 1024, dMlp: 3072 };
  const skeleton = readSourceModel(writeSkeleton(out, shape, { lazy: false }));
  const ids = Array.from({ length: 16 }, (_, i) => (i * 7919) % shape.vocab);
  await forwardVersusBackward('GPT-2-small width, 4 layers, 16 tokens', skeleton, Array.from({ length: 8 }, () => ({ ids, lastIndex: 15, target: 0 })));
} finally {
  rmSync(out, { recursive: true, force: true });
}
