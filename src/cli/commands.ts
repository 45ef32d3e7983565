// One function per CLI command. Each calls the pipeline and prints; user errors are thrown
// as UserError and printed by main.ts.

import { writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fsUserError, UserError } from '../errors.js';
import { formatDiagnostics, type RowLimits } from '../lang/index.js';
import { compilable, compileVariant, inspectModel, renderInspectJson, renderInspectText } from '../onnx/index.js';
import {
  buildVariants, loadProgram, mergeShards, modelStatementOf, readParamsFile, refuseOverTotalRows, runProgram, selectedFacts,
  type LoadedProgram, type RunOutcome,
} from '../pipeline/index.js';
import { mayRunLastPosition, readsCleanPass, rowsInSharedGradientRuns } from '../plan/plan.js';
import { PLOTS_DIR, readResultsFile, writeReport } from '../report/html/index.js';
import { resultsSchema } from '../measure/schema.js';
import { exampleDump, formatSummary } from '../report/summary.js';
import { importAttributeTexts } from '../run/attributes.js';
import { splitDuplicateIds } from '../run/dataset.js';
import { orThrow } from '../run/errors.js';
import { rowConventions } from '../run/example.js';
import { batchNotice } from '../run/memory.js';
import { costNotice } from '../plan/cost.js';
import { progressReporter } from './progress.js';
import { withOutputFolder } from '../output/folder.js';
import { doctorInfo } from '../run/session.js';
import { plural } from '../plural.js';

/**
 * A status line (what was written, resumed, lowered): on stderr, so that stdout holds only what a
 * command was asked for (check's report, the run's summary or --example's JSON, inspect, doctor, schema).
 */
function status(text: string): void {
  process.stderr.write(`${text}\n`);
}

/** The output of `run` and `merge`: the summary and where the report is. */
function printSummary(outcome: Pick<RunOutcome, 'results' | 'written' | 'report'>): void {
  process.stdout.write(`${formatSummary(outcome.results, outcome.written)}\nreport:  ${outcome.report!.html}\n`);
}

/** The flags of every command that loads a program. */
type ProgramFlags = { set: Record<string, string>; params?: string; maxRows?: RowLimits };

function load(file: string, opts: ProgramFlags): LoadedProgram {
  const loaded = loadProgram(file, { ...(opts.params ? readParamsFile(opts.params) : {}), ...opts.set }, opts.maxRows);
  if (loaded.warnings.length) status(formatDiagnostics([...loaded.warnings], loaded.sourceText));
  return loaded;
}

export function checkCommand(file: string, opts: ProgramFlags): void {
  const loaded = load(file, opts);
  const { selected } = selectedFacts(loaded, {});
  refuseOverTotalRows(loaded, selected.length);
  const { duplicates } = splitDuplicateIds(selected);
  buildVariants(loaded);
  const { plan, source: { sites, limits }, tokenizer } = loaded;
  const positions = limits.positions ? `at most ${limits.positions.count} tokens (the rows of ${limits.positions.table})` : 'no limit found in the graph';
  const repeats = duplicates.length ? `; ${duplicates.length} repeat${duplicates.length === 1 ? 's an earlier id and is' : ' earlier ids and are'} dropped` : '';
  const read = plan.experiments.reduce((n, e) => n + e.rows.filter(readsCleanPass).length, 0);
  const shared = plan.experiments.reduce((n, e) => n + rowsInSharedGradientRuns(e), 0);
  const passes = plan.passesPerExample - read - shared;
  const lines = [
    `${file}: ok`,
    `model: ${sites.family}, ${sites.layers} layers, ${sites.heads} heads, d_model ${sites.dModel}, vocab ${sites.vocab}`,
    `inputs: tokenizer ids 0..${tokenizer.vocabSize - 1} for ${limits.embeddingRows} embedding rows; prompts of ${positions}`,
    `facts: ${selected.length} in the dataset (filter ${loaded.program.filter} is applied at run time${repeats})`,
    ...plan.experiments.map((e) => {
      const fast = plan.variant.lastPosition ? e.rows.filter(mayRunLastPosition).length : 0;
      const read = e.rows.filter(readsCleanPass).length;
      const how = [[fast, 'run as the last token alone'], [read, 'read from the clean pass'],
        [rowsInSharedGradientRuns(e), "read from another configuration's backward pass"]].flatMap(([count, what]) =>
        count === 0 ? [] : [count === e.rows.length ? `each ${what}` : `${count} ${what}`]);
      return `experiment ${e.name}: ${plural(e.rows.length, 'configuration')} per example${how.map((h) => `, ${h}`).join('')}`;
    }),
    `forward passes: ${passes} per example (1 clean + configurations${read ? `, but the ${read} read from the clean pass` : ''}`
      + `${shared ? `${read ? ' and' : ', but'} the ${shared} read from another configuration's backward pass` : ''}), `
      + `at most ${passes * selected.length} for ${selected.length} facts`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

export async function compileCommand(file: string, opts: ProgramFlags & { out: string; force?: boolean }): Promise<void> {
  const loaded = load(file, opts);
  const compiled = await withOutputFolder(opts.out, { force: opts.force ?? false }, (out) => compileVariant(loaded.source, loaded.plan.variant, out, { rows: rowConventions(loaded.program) }));
  status(`wrote ${compiled.modelPath}\nwrote ${compiled.manifestPath}`);
}

interface RunFlags extends ProgramFlags {
  out: string;
  force?: boolean;
  limit?: number;
  sample?: number;
  seed: number;
  batch: number;
  batchMemory?: number;
  device: string;
  threads?: number;
  fresh?: boolean;
  example?: string;
  fullRows?: boolean;
  allLayers?: boolean;
  cleanStream?: 'host' | 'in-graph';
  shard?: { index: number; count: number };
  merge: string[];
}

export async function runCommand(file: string, opts: RunFlags): Promise<void> {
  if (opts.example !== undefined && opts.shard) {
    throw new UserError('--example runs one fact, which is no shard of a run', 'drop --shard (or --example)');
  }
  const loaded = load(file, opts);
  const progress = progressReporter({ tty: !!process.stderr.isTTY, write: (line) => process.stderr.write(line) });
  const outcome = await runProgram(loaded, {
    out: resolve(opts.out),
    selection: {
      ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
      ...(opts.sample !== undefined ? { sample: opts.sample } : {}),
      seed: opts.seed,
      ...(opts.example !== undefined ? { example: opts.example } : {}),
      ...(opts.shard ? { shard: opts.shard } : {}),
    },
    batch: opts.batch,
    ...(opts.batchMemory !== undefined ? { batchMemory: opts.batchMemory * 2 ** 30 } : {}),
    device: opts.device,
    ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
    ...(opts.fresh ? { fresh: true } : {}),
    ...(opts.force ? { force: true } : {}),
    report: true,
    ...(opts.fullRows ? { fullRows: true } : {}),
    ...(opts.allLayers ? { allLayers: true } : {}),
    ...(opts.cleanStream ? { cleanStream: opts.cleanStream } : {}),
    ...(opts.merge.length ? { merge: opts.merge.map((d) => resolve(d)) } : {}),
    command: process.argv.slice(2),
    onProgress: (done, total) => progress.update(done, total),
  });
  progress.stop();
  for (const lowered of [batchNotice(outcome.batch), outcome.gradientBatch && batchNotice(outcome.gradientBatch, true)]) if (lowered) status(lowered);
  if (outcome.resumed > 0) status(`resumed: ${outcome.resumed} examples came from the journal`);
  // a run wholly resumed from its journal ran nothing to cost
  if (outcome.resumed < outcome.results.data.total) status(costNotice(outcome.cost));
  // With --example stdout is the JSON dump alone, so that it can be piped and diffed.
  if (opts.example !== undefined) {
    process.stdout.write(JSON.stringify(exampleDump(outcome.results), null, 1) + '\n');
    status(`report:  ${outcome.report!.html}`);
  } else {
    printSummary(outcome);
  }
}

export async function mergeCommand(shards: string[], opts: { out: string; force?: boolean }): Promise<void> {
  const outcome = await mergeShards(shards, {
    out: resolve(opts.out), ...(opts.force ? { force: true } : {}), report: true, command: process.argv.slice(2),
  });
  status(`merged ${plural(shards.length, 'shard folder')}: ${outcome.results.data.total} facts, none run again`);
  printSummary(outcome);
}

export async function reportCommand(resultsFile: string, opts: { out?: string; force?: boolean }): Promise<void> {
  const results = readResultsFile(resultsFile);
  const dir = opts.out ?? dirname(resolve(resultsFile));
  const report = await withOutputFolder(dir, { force: opts.force ?? false }, (out) => writeReport(out, results));
  const pngs = report.pngs.length ? `, ${report.pngs.length} PNG` : report.pngSkipped ? ` (no PNG: ${report.pngSkipped})` : '';
  status(`wrote ${report.html}\n${report.svgs.length} plots in ${join(dirname(report.html), PLOTS_DIR)} (SVG${pngs})`);
}

/** `dissect inspect MODEL`, or `dissect inspect FILE.dissect` for its model with its site statements. */
export function inspectCommand(target: string, opts: { json?: boolean }): void {
  const { onnx: model, siteOverrides } = target.endsWith('.dissect') ? modelStatementOf(target) : { onnx: target, siteOverrides: [] };
  const report = inspectModel(model, siteOverrides);
  process.stdout.write((opts.json ? renderInspectJson(report) : renderInspectText(report)) + '\n');
  if (!compilable(report)) process.exitCode = 1;
}

export function attributesCommand(folder: string, opts: { out: string }): void {
  const map = orThrow(importAttributeTexts(folder));
  try {
    writeFileSync(opts.out, JSON.stringify(map, null, 1) + '\n');
  } catch (e) {
    throw fsUserError('write', opts.out, e, 'give --out a file in an existing folder you can write to');
  }
  status(`wrote ${opts.out}: ${plural(Object.keys(map).length, 'subject')}`);
}

/** The execution providers --device takes. */
const DEVICES = ['cpu', 'cuda'];

/** A provider as doctor lists it, with what keeps it from --device in one parenthesis. */
function backendText(b: { readonly name: string; readonly bundled: boolean }): string {
  const notes = [...(b.bundled ? [] : ['not bundled']), ...(DEVICES.includes(b.name) ? [] : ['not usable with --device'])];
  return notes.length ? `${b.name} (${notes.join('; ')})` : b.name;
}

export function doctorCommand(): void {
  const info = doctorInfo();
  const lines = [
    `onnxruntime-node ${info.ortVersion}`,
    // onnxruntime-node lists every provider it knows; --device takes cpu and cuda only
    `execution providers: ${info.backends.map(backendText).join(', ')}`,
    `cuda: ${info.cudaUnavailable ? `unavailable: ${info.cudaUnavailable}` : 'available'}`,
    `NVIDIA_TF32_OVERRIDE: ${info.tf32Override ?? 'unset'}${info.tf32Override === '0' ? '' : ' (set it to 0 for exact fp32 on GPUs)'}`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

export function schemaCommand(): void {
  process.stdout.write(JSON.stringify(resultsSchema, null, 2) + '\n');
}
