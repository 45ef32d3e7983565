#!/usr/bin/env node
// The CLI is a thin shell over the stages: it parses flags, calls one stage function per
// command and turns user errors into a message and exit code 1.

import { Command, InvalidArgumentError, Option } from 'commander';
import { join } from 'node:path';
import { isUserError } from '../errors.js';
import { releaseOpenFolders } from '../output/folder.js';
import { JOURNAL_FILE, journaledFacts } from '../run/journal.js';
import { defaultRowLimits, type RowLimits } from '../lang/index.js';
import { DiagnosticsError } from '../pipeline/index.js';
import { version } from '../version.js';
import {
  attributesCommand, checkCommand, compileCommand, doctorCommand, inspectCommand, mergeCommand, reportCommand, runCommand, schemaCommand,
} from './commands.js';
import { plural } from '../plural.js';

function parseOverride(value: string, previous: Record<string, string>): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(`expected name=value, got "${value}"`);
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a positive integer, got "${value}"`);
  return n;
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`expected a positive number, got "${value}"`);
  return n;
}

function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`expected a non-negative integer, got "${value}"`);
  return n;
}

/** `k/n`: the k-th of n shards, 0 ≤ k < n. */
function parseShard(value: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(value);
  const index = Number(m?.[1]);
  const count = Number(m?.[2]);
  if (!m || count < 1 || index >= count) throw new InvalidArgumentError(`expected k/n with 0 ≤ k < n (e.g. 0/4), got "${value}"`);
  return { index, count };
}

/** `PER_FACT[/TOTAL]`: positive whole numbers, exponents allowed (1e9); the total defaults as without the flag. */
function parseMaxRows(value: string): RowLimits {
  const [perFact, total, extra] = value.split('/').map((part) => (part.trim() === '' ? NaN : Number(part)));
  const valid = (n: number | undefined) => n !== undefined && Number.isInteger(n) && n >= 1;
  if (extra !== undefined || !valid(perFact) || (total !== undefined && !valid(total))) {
    throw new InvalidArgumentError(`expected rows per fact, optionally /rows in total (e.g. 200000 or 200000/1e9), got "${value}"`);
  }
  return { perFact: perFact!, total: total ?? defaultRowLimits.total };
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

const program = new Command()
  .name('dissect')
  .description('Compile and run interpretability experiments on ONNX transformer models')
  .version(version)
  .showHelpAfterError('(dissect <command> --help for usage)');

const withProgramFlags = (cmd: Command): Command =>
  cmd
    .option('--params <file>', 'a JSON object of param values (a preset), applied before --set')
    .option('--set <name=value>', 'override a param of the .dissect file (repeatable)', parseOverride, {})
    .option('--max-rows <n[/total]>', `rows a program may give per fact, and in total over the facts (default ${defaultRowLimits.perFact}/${defaultRowLimits.total})`, parseMaxRows);

withProgramFlags(program.command('check <file>'))
  .description('check a .dissect file against its model; print the forward passes a run needs')
  .action(checkCommand);

withProgramFlags(program.command('compile <file>'))
  .description('write the compiled ONNX variant and its manifest.json')
  .requiredOption('--out <dir>', 'output folder (required)')
  .option('--force', 'write into a non-empty folder that is not a dissect output (dissect still removes only files it wrote)')
  .action(compileCommand);

withProgramFlags(program.command('run <file>'))
  .description('run the experiments; write results.json, results.csv and report.html')
  .requiredOption('--out <dir>', 'output folder (required; a rerun resumes from its journal)')
  .option('--limit <n>', 'keep the first n facts', positiveInt)
  .option('--sample <n>', 'keep a seeded random sample of n facts', positiveInt)
  .option('--seed <s>', 'seed for --sample and the bootstrap CI', nonNegativeInt, 0)
  .option('--example <id>', 'run one fact and print everything measured about it as JSON')
  .option('--batch <n>', 'rows per forward pass, and facts per chunk; a pass of last-position rows (one token each) holds up to n times as many for prompts of n tokens (all lowered to what 1 GiB holds beside the weights)', positiveInt, 32)
  .option('--batch-memory <GiB>', 'memory a batch may take beside the weights; --batch is lowered to fit (default 1)', positiveNumber)
  .option('--device <device>', 'cpu | cuda | cuda:N', 'cpu')
  .option('--threads <n>', 'onnxruntime intra-op threads', positiveInt)
  .option('--fresh', 'discard an existing journal in --out instead of resuming')
  .option('--force', 'write into a non-empty folder that is not a dissect output (dissect still removes only files it wrote)')
  .option('--full-rows', 'run every row over its whole prompt, never its last token alone against the clean run\'s cache, and from block 0 (to cross-check)')
  .option('--all-layers', 'run every row from block 0, never from the first block it changes or reads (to cross-check)')
  .addOption(new Option('--clean-stream <where>', 'where last-position rows get the clean run\'s keys and values: host (the clean pass returns them and each batch feeds them back) or in-graph (each batch recomputes them in its own graph; nothing crosses to the host)')
    .choices(['host', 'in-graph']).default(undefined, 'in-graph on cuda, host on cpu'))
  .option('--shard <k/n>', 'run only batches k, k+n, k+2n, … of the selection (0 ≤ k < n), e.g. one per machine; `dissect merge` assembles the shards', parseShard)
  .option('--merge <dir>', 'take the finished facts of another --out folder of this run (a shard) and compute the rest: to resume (repeatable); `dissect merge` assembles finished shards', collect, [])
  .action(runCommand);

program.command('merge <shards...>')
  .description('assemble the results of a run split with --shard from its shards\' folders alone (no model, nothing run again)')
  .requiredOption('--out <dir>', 'output folder (required; not a shard\'s)')
  .option('--force', 'write into a non-empty folder that is not a dissect output (dissect still removes only files it wrote)')
  .action(mergeCommand);

program.command('report <results>')
  .description('rebuild report.html and plots/ from a results.json, without the model')
  .option('--out <dir>', 'output folder (default: the folder of results.json)')
  .option('--force', 'write into a non-empty folder that is not a dissect output (dissect still removes only files it wrote)')
  .action(reportCommand);

program.command('inspect <model>')
  .description('print the sites found in an ONNX model, layer by layer, and how confidently; given a .dissect file, its model with its site statements')
  .option('--json', 'machine-readable output')
  .action(inspectCommand);

program.command('attributes <folder>')
  .description('build an attributes JSON (subject → texts) from one <subject>.txt file per subject')
  .requiredOption('--out <file>', 'the JSON file to write (required)')
  .action(attributesCommand);

program.command('doctor')
  .description('print the onnxruntime version and the available execution providers')
  .action(doctorCommand);

program.command('schema')
  .description('print the JSON Schema of results.json')
  .action(schemaCommand);

// Ctrl-C: every finished fact is already in the journal (one fsync'd line each); say so, free
// the folder for the rerun that resumes, and exit as interrupted.
process.once('SIGINT', () => {
  for (const dir of releaseOpenFolders()) {
    const saved = journaledFacts(dir);
    if (saved === undefined) continue; // a folder of report, compile or merge: nothing to resume
    process.stderr.write(`\ninterrupted: ${plural(saved, 'finished fact')} saved in ${join(dir, JOURNAL_FILE)}; run the same command again to resume from there\n`);
  }
  process.exit(130);
});

// `dissect … | head` closes the pipe early: that is the reader's choice, not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

try {
  await program.parseAsync();
} catch (e) {
  if (!isUserError(e)) throw e;
  // Diagnostics arrive formatted (file:line:col, source line, hint); other user errors get a prefix.
  if (e instanceof DiagnosticsError) process.stderr.write(e.message); // formatDiagnostics ends each block with a newline
  else process.stderr.write(`dissect: error: ${e.message}\n${e.hint ? `  hint: ${e.hint}\n` : ''}`);
  process.exitCode = 1;
}
