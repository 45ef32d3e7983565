// Shared setup of the end-to-end tests: .dissect programs over the committed default
// model, run through the same pipeline as `dissect run`.

import { writeFileSync } from 'node:fs';
import { tempDir } from '../temp.js';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadProgram, runProgram, type RunOutcome } from '../../src/pipeline.js';
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

export interface RunSetup {
  readonly source: string;
  readonly batch?: number;
  readonly limit?: number;
  readonly out?: string;
  readonly fresh?: boolean;
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
