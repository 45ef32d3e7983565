// Shared setup of the end-to-end tests: .dissect programs over the committed default
// model, run through the same pipeline as `dissect run`.

import type { ExecutionContext } from 'ava';
import { writeFileSync } from 'node:fs';
import { tempDir } from '../temp.js';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadProgram, runProgram, type RunOutcome } from '../../src/pipeline/index.js';
import type { Results } from '../../src/measure/schema.js';

export const tinyGpt2 = fileURLToPath(new URL('../../../generated/tiny-gpt2/', import.meta.url));
export const tinyGptj = fileURLToPath(new URL('../../../generated/tiny-gptj/', import.meta.url));

export { tempDir };

/** The paper's information-flow experiment on a default model (the GPT-2 one unless told). */
export function informationFlowSource(window: number, extra = '', model = tinyGpt2): string {
  return [
    `param window = ${window}`,
    `model "${join(model, 'model.onnx')}" tokenizer "${join(model, 'tokenizer.json')}"`,
    `dataset counterfact "${join(model, 'facts.json')}"`,
    'filter known',
    extra,
    'experiment flow {',
    '  for l in layers all',
    '  for blocked in positions subject, nonsubject, last',
    '  block blocked -> last at layers window(l, window)',
    '  measure probability_change, probability, rank',
    '}',
    '',
  ].join('\n');
}

/** Experiments of every kind of row besides the information flow's (start-layer and clean-stream tests). */
export const START_LAYER_EXPERIMENTS = [
  'experiment extraction {',
  '  for l in layers all',
  '  block subject -> last at layers l',
  '  measure extraction of attention l, extraction of heads l, target_rank of mlp l at last, target_rank of hidden l + 1 at last',
  '}',
  'experiment everywhere {',
  '  for l in layers all',
  '  block subject -> all at layers l',
  '  measure probability, rank, target_rank of hidden l at subject_last',
  '}',
  'experiment cancelled {',
  '  for l in layers all',
  '  cancel mlp at layers l at positions subject',
  '  measure probability, target_rank of attention l at last',
  '}',
  'experiment patched {',
  '  for l in layers 1..3',
  '  patch hidden l at positions subject with mean hidden l',
  '  measure probability, rank',
  '}',
].join('\n');

export interface RunSetup {
  readonly source: string;
  readonly batch?: number;
  readonly limit?: number;
  readonly out?: string;
  readonly fresh?: boolean;
  readonly fullRows?: boolean;
  readonly allLayers?: boolean;
  readonly cleanStream?: 'host' | 'in-graph';
}

export async function runSource(setup: RunSetup): Promise<RunOutcome & { out: string }> {
  const dir = tempDir('e2e');
  const file = join(dir, 'experiment.dissect');
  writeFileSync(file, setup.source);
  const out = setup.out ?? join(dir, 'out');
  const outcome = await runProgram(loadProgram(file), {
    out,
    selection: setup.limit !== undefined ? { limit: setup.limit } : {},
    batch: setup.batch ?? 64,
    device: 'cpu',
    command: ['test'],
    ...(setup.fresh ? { fresh: true } : {}),
    ...(setup.fullRows ? { fullRows: true } : {}),
    ...(setup.allLayers ? { allLayers: true } : {}),
    ...(setup.cleanStream ? { cleanStream: setup.cleanStream } : {}),
  });
  return { ...outcome, out };
}

/** |a - b| ≤ rel · max(|a|, |b|), with a floor for values near 0. */
export function closeRel(a: number, b: number, rel: number, floor = 1e-12): boolean {
  return Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b), floor);
}

/** A program's first lines on the default GPT-2: model, dataset, the known filter, then `lines`. */
export function tinyGpt2Program(...lines: string[]): string {
  return [
    `model "${join(tinyGpt2, 'model.onnx')}" tokenizer "${join(tinyGpt2, 'tokenizer.json')}"`,
    `dataset counterfact "${join(tinyGpt2, 'facts.json')}"`,
    'filter known',
    ...lines,
  ].join('\n');
}

/** The value of `measure` for fact `id` at a sweep binding of experiment `e`; undefined when absent. */
export function valueAt(r: Results, e: number, id: number, key: Record<string, number | string>, measure: string): number | undefined {
  const row = r.experiments[e]!.values.find((v) => v.example === String(id) && Object.entries(key).every(([k, x]) => v.key[k] === x));
  return row?.values[measure];
}

/**
 * Every value of two runs of one program agrees: probabilities within 1e-5 absolute, their
 * change (in percent of p0) within 1e-3 points, ranks, extraction and top tokens exactly.
 * Returns how many values were compared.
 */
export function sameNumbers(t: ExecutionContext, fast: Results, full: Results): number {
  const tolerance: Record<string, number> = { probability: 1e-5, probability_change: 1e-3 };
  let worst = { by: 0, what: '' };
  let compared = 0;
  fast.experiments.forEach((x, e) => {
    const a = x.values;
    const b = full.experiments[e]!.values;
    t.is(a.length, b.length, x.name);
    a.forEach((row, i) => {
      t.deepEqual([row.example, row.key], [b[i]!.example, b[i]!.key]);
      for (const [k, v] of Object.entries(row.values)) {
        const w = b[i]!.values[k]!;
        compared++;
        if (tolerance[k] === undefined) t.is(v, w, `${x.name} ${row.example} ${JSON.stringify(row.key)} ${k}`);
        const by = tolerance[k] === undefined ? 0 : Math.abs((v ?? 0) - (w ?? 0)) / tolerance[k]!;
        if (by > worst.by) worst = { by, what: `${row.example} ${JSON.stringify(row.key)} ${k}: ${v} vs ${w}` };
      }
    });
    t.deepEqual(x.forwardPasses, full.experiments[e]!.forwardPasses);
    t.deepEqual(x.tokens ?? [], full.experiments[e]!.tokens ?? [], `${x.name} top tokens`);
  });
  t.true(worst.by <= 1, `worst: ${worst.what}`);
  return compared;
}
