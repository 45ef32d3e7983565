// Memory benchmark: a GPT-2-small-sized random model (12 layers, d 768, 12 heads, 50,257
// tokens: 650 MB of float32 weights), written at bench time with its weights inline and as
// external data, runs the information-flow sweep on 10 prompts of the default model's facts
// (its word-level tokenizer, padded with made-up words to the 50,257 ids a random model may
// predict). Each run is its own process, so that its peak
// RSS is its own; the goal is peak RSS ≤ 1.3 × weights + 1 GB at the default batch, and a
// huge --batch capped below it.
//   node dist/bench/memory.js            all runs
//   node dist/bench/memory.js --run MODEL TOKENIZER BATCH PROMPTS   one run (the child process)

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { externalizeInitializers } from '../src/onnx/external.js';
import { readModel, writeModel } from '../src/onnx/proto.js';
import { loadProgram, runProgram } from '../src/pipeline/index.js';
import { informationFlowSource } from './flow.js';
import { buildSkeleton, type SkeletonShape } from './skeleton.js';

const GPT2_SMALL: SkeletonShape = { layers: 12, heads: 12, dModel: 768, vocab: 50257, positions: 1024, dMlp: 3072 };
const tiny = fileURLToPath(new URL('../../generated/tiny-gpt2/', import.meta.url));
const GB = 1e9;

/** The default model's tokenizer.json with words w<id> up to `vocab` ids. */
function paddedTokenizer(vocab: number): { model: { vocab: Record<string, number> } } {
  const json = JSON.parse(readFileSync(join(tiny, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } };
  for (let id = Object.keys(json.model.vocab).length; id < vocab; id++) json.model.vocab[`w${id}`] = id;
  return json;
}

/** The child: one run, printed as JSON. */
async function runOnce(model: string, tokenizer: string, batch: number, prompts: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'dissect-bench-memory-'));
  try {
    const file = join(dir, 'flow.dissect');
    writeFileSync(file, informationFlowSource({
      model, tokenizer, dataset: { format: 'counterfact', path: join(tiny, 'facts.json') }, window: 3, layers: 'all',
    }));
    const t = performance.now();
    const outcome = await runProgram(loadProgram(file), {
      out: join(dir, 'out'), selection: { limit: prompts }, batch, device: 'cpu', command: ['bench'], fresh: true,
    });
    console.log(JSON.stringify({
      seconds: (performance.now() - t) / 1000,
      peakRss: process.resourceUsage().maxRSS * 1024,
      kept: outcome.results.data.kept,
      batch: outcome.batch,
    }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--run') {
  await runOnce(process.argv[3]!, process.argv[4]!, Number(process.argv[5]), Number(process.argv[6]));
} else {
  const dir = mkdtempSync(join(tmpdir(), 'dissect-bench-memory-'));
  try {
    const inline = join(dir, 'inline', 'model.onnx');
    mkdirSync(dirname(inline));
    writeModel(inline, buildSkeleton(GPT2_SMALL, { lazy: false, seed: 3 }));
    const externalDir = join(dir, 'external');
    mkdirSync(externalDir);
    const external = join(externalDir, 'model.onnx');
    const moved = readModel(inline); // the same weights, moved out (building them again takes longer)
    externalizeInitializers(moved, externalDir, 'weights.bin');
    writeModel(external, moved);
    const tokenizer = join(dir, 'tokenizer.json');
    writeFileSync(tokenizer, JSON.stringify(paddedTokenizer(GPT2_SMALL.vocab)));
    const weights = statSync(inline).size;
    const bound = 1.3 * weights + GB;
    console.log(`GPT-2-small size, random weights (${(weights / GB).toFixed(2)} GB); information flow, 36 rows a prompt; bound 1.3 × weights + 1 GB = ${(bound / GB).toFixed(2)} GB`);
    // the huge batch over 40 prompts: 1,440 rows, which it would put in one forward pass
    for (const [label, model, batch, prompts] of [['inline', inline, 32, 10], ['external', external, 32, 10], ['inline', inline, 100_000_000, 40]] as const) {
      const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--run', model, tokenizer, String(batch), String(prompts)], { encoding: 'utf8' });
      const r = JSON.parse(out.trim().split('\n').pop()!) as { seconds: number; peakRss: number; batch: { requested: number; used: number } };
      const used = r.batch.used === r.batch.requested ? '' : ` (capped to ${r.batch.used})`;
      console.log(`weights ${label.padEnd(8)} ${prompts} prompts, --batch ${batch}${used}: ${r.seconds.toFixed(1)} s, peak RSS ${(r.peakRss / GB).toFixed(2)} GB ` +
        `(${(r.peakRss / weights).toFixed(2)} × weights; ${r.peakRss <= bound ? 'within' : 'OVER'} the bound)`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
