// --batch against memory: a row's bytes estimated from the variant's shapes, and a batch
// lowered to what the budget holds, saying so.

import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadProgram, runProgram, type LoadedProgram } from '../../src/pipeline/index.js';
import { BATCH_MEMORY_BUDGET, batchNotice, batchSize, gradientRowBytes, lastPositionRowBytes, rowBytes } from '../../src/run/memory.js';
import { informationFlowSource, tempDir, tinyGpt2 } from '../e2e/helpers.js';

function load(source: string): LoadedProgram {
  const file = join(tempDir(), 'experiment.dissect');
  writeFileSync(file, source);
  return loadProgram(file);
}

const logitLens = [
  `model "${join(tinyGpt2, 'model.onnx')}" tokenizer "${join(tinyGpt2, 'tokenizer.json')}"`,
  `dataset counterfact "${join(tinyGpt2, 'facts.json')}"`,
  'experiment lens {', '  for h in hidden all', '  measure top_tokens 5 of hidden h at last', '}', '',
].join('\n');

test('a row\'s bytes: the default model (8 layers, 4 heads, d 128, MLP 512, 264 tokens), 10 tokens', (t) => {
  const flow = load(informationFlowSource(3));
  const { sites } = flow.source;
  t.deepEqual([sites.layers, sites.heads, sites.dModel, sites.dMlp, sites.vocab], [8, 4, 128, 512, 264]);
  // a block: 10 · (6·128 + 2·512 + 3·4·10) = 19,120; logits 3·264 = 792; the cache fed, returned
  // and kept 3·2·8·10·128 = 61,440 floats; the knockout mask 8 layers · 1 · 10² bools
  t.is(rowBytes(sites, flow.plan, 10), (19_120 + 792 + 61_440) * 4 + 800);
  // the logit lens changes nothing (its rows are read from the clean pass: no cache) and projects
  // the hidden states: 10 positions · 264 floats
  t.is(rowBytes(sites, load(logitLens).plan, 10), (19_120 + 792 + 2_640) * 4);
});

test('a last-position row\'s bytes: one token\'s block against 10 keys, its prompt\'s past counted per row; a pass holds n times --batch of them', (t) => {
  const flow = load(informationFlowSource(3));
  const { plan } = flow;
  const { sites } = flow.source;
  // a block for one token: 6·128 + 2·512 + 3·4·10 = 1,912; its past gathered, one block at a time,
  // 2·10·128 = 2,560; logits 792; its token's keys and values returned 2·8·128 = 2,048; its
  // prompt's past fed 2·8·10·128 = 20,480 floats; the knockout mask 8 layers · 1 · 10 bools
  t.is(lastPositionRowBytes(sites, plan, 10), (1_912 + 2_560 + 792 + 2_048 + 20_480) * 4 + 80);
  // a clean pass holds as many prompts as a last-position pass's rows fill with tokens
  t.like(batchSize(32, sites, plan, 10), { used: 32, lastPosition: 320, cleanPass: 32 });
  // a budget of 100 whole-prompt rows holds 293 last-position rows, not 100 · 10: clean passes of 29 prompts
  const budget = 100 * rowBytes(sites, plan, 10);
  t.like(batchSize(1_000, sites, plan, 10, budget), { used: 100, lastPosition: Math.floor(budget / 111_248), cleanPass: 29 });
  t.is(Math.floor(budget / 111_248), 293);
  // the logit lens runs no last-position rows: its clean passes are whole batches
  t.like(batchSize(32, sites, load(logitLens).plan, 10), { lastPosition: undefined, cleanPass: undefined });
});

test('--batch is lowered to what the budget holds, and says why', (t) => {
  const { source: { sites }, plan } = load(informationFlowSource(3));
  const capped = batchSize(100_000_000, sites, plan, 10);
  t.is(capped.used, Math.floor(BATCH_MEMORY_BUDGET / 326_208));
  t.is(capped.used, 3291);
  t.is(batchNotice(capped), '--batch 100000000 lowered to 3291 rows per forward pass: a row of the longest prompt (10 tokens) needs about 0.3 MiB, ' +
    'and a batch is kept within 1 GiB beside the weights (raise it with --batch-memory)');
  // --batch-memory 4 (GiB) holds four times the rows
  t.is(batchSize(100_000_000, sites, plan, 10, 4 * 2 ** 30).used, Math.floor(4 * 2 ** 30 / 326_208));
  const asked = batchSize(32, sites, plan, 10);
  t.is(asked.used, 32);
  t.is(batchNotice(asked), undefined);
});

test.serial('a run uses the lowered batch for its longest prompt and reports it', async (t) => {
  const loaded = load(informationFlowSource(3));
  const { batch, results } = await runProgram(loaded, {
    out: join(tempDir(), 'out'), selection: { limit: 4 }, batch: 100_000_000, device: 'cpu', command: ['test'],
  });
  t.is(results.data.total, 4);
  t.is(batch.requested, 100_000_000);
  // the plan run: its rows begin at their first block, so its variant also returns hidden states
  const run = { ...loaded.plan, variant: { ...loaded.plan.variant, startLayer: true, hiddenStates: true } };
  t.true(results.provenance.rows!.startLayer!.used);
  t.is(batch.used, Math.floor(BATCH_MEMORY_BUDGET / rowBytes(loaded.source.sites, run, batch.longestPrompt)));
  t.true(batch.longestPrompt >= Math.max(...results.examples.map((e) => e.tokens.length)));
});

const attribution = [
  `model "${join(tinyGpt2, 'model.onnx')}" tokenizer "${join(tinyGpt2, 'tokenizer.json')}"`,
  `dataset counterfact "${join(tinyGpt2, 'facts.json')}"`,
  'experiment grad {', '  for h in hidden all', '  measure attribution of hidden h', '}',
  'experiment flow {', '  for l in layers all', '  block subject -> last at layers l', '  measure probability_change', '}', '',
].join('\n');

test('a row that takes gradients: every block\'s working set kept for the backward pass and its gradient', (t) => {
  const { sites } = load(logitLens).source;
  // 2 · 8 blocks · 10 · (6·128 + 2·512 + 3·4·10) = 305,920; logits and their gradient 2·3·264 = 1,584;
  // hidden states and their gradients 2 · 9 · 10 · 128 = 23,040
  t.is(gradientRowBytes(sites, 10), (305_920 + 1_584 + 23_040) * 4);
});

test.serial('rows that take gradients get a batch of their own, lowered by their larger row; the numbers are the same', async (t) => {
  const loaded = load(attribution);
  const run = (batchMemory: number) => runProgram(loaded, {
    out: join(tempDir(), 'out'), selection: { limit: 6 }, batch: 6, batchMemory, device: 'cpu', command: ['test'],
  });
  // 2 MiB hold every knockout row of the batch but only a few rows with their backward pass
  const small = await run(2 * 2 ** 20);
  const gradients = small.gradientBatch!;
  t.is(gradients.used, Math.floor(2 * 2 ** 20 / gradientRowBytes(loaded.source.sites, gradients.longestPrompt)));
  t.true(gradients.used < small.batch.used, `${gradients.used} rows with gradients, ${small.batch.used} without`);
  t.regex(batchNotice(gradients, true)!, /^--batch 6 lowered to \d rows that take gradients per forward pass: a row and its backward pass of the longest prompt/);
  const large = await run(2 ** 30);
  t.is(large.gradientBatch!.used, 6);
  const values = (r: typeof small) => r.results.experiments.map((x) => x.series.map((p) => p.mean));
  const [a, b] = [values(small).flat(), values(large).flat()];
  t.is(a.length, b.length);
  a.forEach((v, i) => t.true(Math.abs((v ?? 0) - (b[i] ?? 0)) <= 1e-5 * Math.max(1, Math.abs(b[i] ?? 0)), `value ${i}: ${v} vs ${b[i]}`));
});

test.serial('last-position rows run hundreds to a pass or a few to a pass, and clean passes whole or in parts, with the same numbers', async (t) => {
  const loaded = load(informationFlowSource(3));
  const run = (batchMemory?: number) => runProgram(loaded, {
    out: join(tempDir(), 'out'), selection: { limit: 6 }, batch: 32, ...(batchMemory ? { batchMemory } : {}), device: 'cpu', command: ['test'],
  });
  const wide = await run();
  t.is(wide.batch.lastPosition, 32 * wide.batch.longestPrompt);
  // room for a few last-position rows (fewer with the hidden states rows from their first block
  // read): whole prompts one to a pass
  const narrow = await run(3 * lastPositionRowBytes(loaded.source.sites, loaded.plan, wide.batch.longestPrompt) + 1);
  t.is(narrow.batch.used, 1);
  t.true(narrow.batch.lastPosition! >= 2 && narrow.batch.lastPosition! <= 3, `${narrow.batch.lastPosition} last-position rows a pass`);
  t.like(narrow.results.provenance.rows, { mode: 'last_position' });
  // room for 8 whole prompts: the 6 facts are one chunk, whose clean pass runs in parts (one cache, joined)
  const parts = await run(8 * rowBytes(loaded.source.sites, loaded.plan, wide.batch.longestPrompt));
  t.true(parts.batch.cleanPass! >= 1 && parts.batch.cleanPass! < 6, `${parts.batch.cleanPass} prompts a clean pass`);
  const values = (r: typeof wide) => r.results.experiments.flatMap((x) => x.series.map((p) => p.mean ?? 0));
  const [a, b] = [values(wide), values(narrow)];
  t.deepEqual(values(parts), a, 'a clean pass in parts feeds the same keys and values');
  t.true(a.length > 0);
  // percentage points; a pass's keys are padded to its chunk's longest prompt, so the reductions
  // differ in length and round differently (float32: ~1e-7 of a probability)
  t.deepEqual(a.map((v, i) => Math.abs(v - b[i]!) <= 1e-4 * Math.max(1, Math.abs(v))), a.map(() => true));
});
