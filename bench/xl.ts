// XL benchmark: the paper's information-flow sweep (window 9 from examples/presets/gpt2-xl.json,
// 3 position sets × every layer) on a random-weight graph of GPT-2 XL's shape (48 layers,
// d 1600, 25 heads, 50,257 tokens; 6.5 GB of external weights, written at bench time and
// deleted after, also on failure or Ctrl-C), over 20 prompts of 10–15 GPT-2 tokens. It
// prints facts/s, peak RSS, the projected time of the paper's full sweep (1,209 facts), and
// the speed-up over the paper code's method (one configuration per forward pass:
// `--full-rows --batch 1`) and over batched whole prompts (`--full-rows`), both run by
// dissect on the same graph, timed on a fixed sample of configurations (the windows around 6
// layers spread over the model: a whole-prompt row costs the same wherever its window lies)
// and extrapolated to the whole sweep. Times are per prompt after the run's fixed cost
// (reading the graph, building the variant, loading the weights). Each run is its own
// process, so that its peak RSS is its own. Ends with four machine-readable lines.
//   npm run bench:xl [-- --small] [-- --layers N]   the bench alone (--small: 4 layers, d 256; --layers N: XL's
//                                                  width with N layers; both for development)
//   node dist/bench/xl.js --child SPEC    one run (the child process), printed as JSON

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadProgram, runProgram } from '../src/pipeline/index.js';
import { gpt2TokenizerJson } from '../test/run/_tokenizers.js';
import { informationFlowSource } from './flow.js';
import { benchFacts } from './prompts.js';
import { writeSkeleton, type SkeletonShape } from './skeleton.js';

const XL: SkeletonShape = { layers: 48, heads: 25, dModel: 1600, vocab: 50257, positions: 1024, dMlp: 6400 };
const SMALL: SkeletonShape = { ...XL, layers: 4, heads: 4, dModel: 256, dMlp: 1024 };
const PAPER_FACTS = 1209;
const PROMPTS = 20;
const GB = 1e9;
const preset = fileURLToPath(new URL('../../examples/presets/gpt2-xl.json', import.meta.url));

interface RunSpec {
  readonly dir: string;
  readonly label: string;
  readonly window: number;
  readonly layers: 'all' | readonly number[];
  readonly fullRows: boolean;
  readonly batch: number;
  readonly prompts: number;
}

interface RunResult {
  /** Seconds from the first fact's clean pass to the last fact journaled: wall time, and CPU time of all the process's threads. */
  readonly marginal: number;
  readonly marginalCpu: number;
  readonly peakRss: number;
  readonly facts: number;
  /** Forward rows per fact, its clean pass included. */
  readonly rowsPerFact: number;
  readonly batch: number;
  /** The run's own count (RunOutcome.cost: at the kept prompts' mean token count). */
  readonly equivalents: number;
}

/** The child: one run of the sweep, printed as JSON. */
async function runOnce(spec: RunSpec): Promise<void> {
  const file = join(spec.dir, `${spec.label}.dissect`);
  writeFileSync(file, informationFlowSource({
    model: join(spec.dir, 'model.onnx'), tokenizer: join(spec.dir, 'tokenizer.json'), dataset: { format: 'known', path: join(spec.dir, 'facts.json') },
    window: spec.window, layers: spec.layers,
  }));
  const loaded = loadProgram(file);
  // wall and CPU seconds at the first and the last progress call
  const now = (): [number, number] => {
    const cpu = process.cpuUsage();
    return [performance.now() / 1000, (cpu.user + cpu.system) / 1e6];
  };
  let first: [number, number] | undefined;
  let last: [number, number] = [0, 0];
  const { results, batch, cost } = await runProgram(loaded, {
    out: join(spec.dir, spec.label), selection: { limit: spec.prompts }, batch: spec.batch, device: 'cpu', command: ['bench', 'xl'],
    fresh: true, fullRows: spec.fullRows,
    onProgress: () => { last = now(); first ??= last; },
  });
  const result: RunResult = {
    marginal: last[0] - first![0],
    marginalCpu: last[1] - first![1],
    peakRss: process.resourceUsage().maxRSS * 1024,
    facts: results.data.kept,
    rowsPerFact: loaded.plan.passesPerExample,
    batch: batch.used,
    equivalents: cost.cleanForwardEquivalents,
  };
  console.log(JSON.stringify(result));
}

let running: ChildProcess | undefined;

/** Runs `spec` in a child process; its result and wall time (process start to exit). */
function runChild(spec: RunSpec): Promise<RunResult & { wall: number }> {
  const start = performance.now();
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child', JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'inherit'] });
    running = child;
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => { out += s; });
    child.on('error', fail);
    child.on('close', (code, signal) => {
      running = undefined;
      if (code !== 0) fail(new Error(`bench run ${spec.label} failed (${signal ?? `exit ${code}`})`));
      else done({ ...(JSON.parse(out.trim().split('\n').pop()!) as RunResult), wall: (performance.now() - start) / 1000 });
    });
  });
}

async function bench(shape: SkeletonShape): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'dissect-bench-xl-'));
  // the weights file goes with the folder whatever ends the bench: the end, an error, Ctrl-C
  process.on('exit', () => {
    running?.kill();
    rmSync(dir, { recursive: true, force: true });
  });
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) process.on(signal, () => process.exit(code));

  let t = performance.now();
  writeSkeleton(dir, shape, { lazy: false, seed: 1 });
  const weights = statSync(join(dir, 'weights.bin')).size;
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(gpt2TokenizerJson()));
  writeFileSync(join(dir, 'facts.json'), JSON.stringify(benchFacts(PROMPTS)));
  console.log(`graph: ${shape.layers} layers, d ${shape.dModel}, ${shape.heads} heads, ${shape.vocab.toLocaleString('en')} tokens; ` +
    `random weights, ${(weights / GB).toFixed(2)} GB external, written in ${((performance.now() - t) / 1000).toFixed(0)} s`);

  t = performance.now();
  const load = loadavg()[0]!;
  const { window } = JSON.parse(readFileSync(preset, 'utf8')) as { window: number };
  const sample = [...new Set(Array.from({ length: 6 }, (_, i) => Math.round((i * (shape.layers - 1)) / 5)))];
  const sweep = await runChild({ dir, label: 'dissect', window, layers: 'all', fullRows: false, batch: 32, prompts: PROMPTS });
  const paper = await runChild({ dir, label: 'paper', window, layers: sample, fullRows: true, batch: 1, prompts: 2 });
  const batched = await runChild({ dir, label: 'batched', window, layers: sample, fullRows: true, batch: 32, prompts: 10 });

  // seconds a prompt of the whole sweep: the sample's time a row, times the sweep's rows
  const perPrompt = (r: RunResult, time: 'marginal' | 'marginalCpu' = 'marginal'): number => (r[time] / r.facts) * (sweep.rowsPerFact / r.rowsPerFact);
  const rows = sweep.rowsPerFact - 1;
  console.log(`sweep: information flow, window ${window}, ${shape.layers} layers × 3 position sets = ${rows} rows a prompt; ${PROMPTS} prompts of 10–15 tokens`);
  console.log('run                                     prompts  rows/prompt  batch  wall s  fixed s  s/prompt  CPU s/prompt  peak RSS');
  for (const [name, r] of [['dissect', sweep], ['paper method (--full-rows --batch 1)', paper], ['batched whole prompts (--full-rows)', batched]] as const) {
    const extrapolated = r === sweep ? '' : ` (${r.rowsPerFact - 1} timed)`;
    console.log(`${name.padEnd(40)}${String(r.facts).padStart(7)}  ${`${rows}${extrapolated}`.padStart(11)}  ${String(r.batch).padStart(5)}` +
      `  ${r.wall.toFixed(1).padStart(6)}  ${(r.wall - r.marginal).toFixed(1).padStart(7)}  ${perPrompt(r).toFixed(2).padStart(8)}  ${perPrompt(r, 'marginalCpu').toFixed(2).padStart(12)}  ${(r.peakRss / GB).toFixed(2).padStart(5)} GB`);
  }
  console.log(`dissect: ${(sweep.facts / sweep.marginal).toFixed(2)} facts/s after ${(sweep.wall - sweep.marginal).toFixed(1)} s fixed`);
  console.log(`clean-forward equivalents in FLOPs per prompt: ${sweep.equivalents.toFixed(1)} (the paper's method: ${sweep.rowsPerFact}; ` +
    'counted from the plan\'s rows as they ran, from their first block; src/plan/cost.ts)');
  // other processes stretch wall time; CPU time (all threads) far less, so its ratios show what a quiet machine would
  const cpuRatio = (r: RunResult): string => (perPrompt(r, 'marginalCpu') / perPrompt(sweep, 'marginalCpu')).toFixed(1);
  console.log(`on CPU time: ${cpuRatio(paper)}x the paper method, ${cpuRatio(batched)}x batched whole prompts`);
  console.log(`benchmark runs: ${((performance.now() - t) / 1000).toFixed(0)} s; load average ${load.toFixed(1)} before, ${loadavg()[0]!.toFixed(1)} after (${cpus().length} cores)`);
  const projected = sweep.wall - sweep.marginal + PAPER_FACTS * perPrompt(sweep);
  console.log(`xl speedup vs paper method: ${(perPrompt(paper) / perPrompt(sweep)).toFixed(1)}x`);
  console.log(`xl speedup vs batched whole prompts: ${(perPrompt(batched) / perPrompt(sweep)).toFixed(1)}x`);
  console.log(`xl projected full sweep: ${(projected / 3600).toFixed(1)} h`);
  console.log(`xl peak RSS: ${(sweep.peakRss / GB).toFixed(1)} GB`);
}

if (process.argv[2] === '--child') await runOnce(JSON.parse(process.argv[3]!) as RunSpec);
else await bench(benchShape(process.argv.slice(2)));

/** The graph the flags ask for: XL, or --small, with --layers N overriding the layer count. */
function benchShape(args: readonly string[]): SkeletonShape {
  const shape = args.includes('--small') ? SMALL : XL;
  const at = args.indexOf('--layers');
  if (at < 0) return shape;
  const layers = Number(args[at + 1]);
  if (!Number.isInteger(layers) || layers < 1) throw new Error(`--layers takes a positive whole number of layers, got ${args[at + 1] ?? 'nothing'}`);
  return { ...shape, layers };
}
