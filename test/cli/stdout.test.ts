// stdout holds only what a command was asked for, so that it can be piped and parsed: check's
// report, the summary of run and merge (the same on a rerun that resumes), inspect, doctor and schema.
// Status lines (what was written, resumed) go to stderr; compile, report and attributes are
// asked for files, so their stdout is empty. (--example's JSON: errors.test.ts.)

import test from 'ava';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../temp.js';
import { dissect } from './helpers.js';

const example = fileURLToPath(new URL('../../../examples/information-flow.dissect', import.meta.url));
const model = fileURLToPath(new URL('../../../generated/tiny-gpt2/model.onnx', import.meta.url));

test('check, inspect, doctor and schema print their output alone', (t) => {
  const check = dissect('check', example);
  t.is(check.code, 0, check.stderr);
  t.deepEqual(check.stdout.split('\n').map((l) => l.split(': ')[0]),
    [example, 'model', 'inputs', 'facts', 'experiment information_flow', 'forward passes', '']);
  t.regex(check.stdout, /: ok\n/);
  const inspect = dissect('inspect', model, '--json');
  t.is(inspect.code, 0, inspect.stderr);
  t.is((JSON.parse(inspect.stdout) as { family: string }).family, 'gpt2');
  const doctor = dissect('doctor');
  t.deepEqual(doctor.stdout.split('\n').map((l) => /^(onnxruntime-node|[^:]*(?=:))/.exec(l)?.[0]),
    ['onnxruntime-node', 'execution providers', 'cuda', 'NVIDIA_TF32_OVERRIDE', undefined]);
  t.is((JSON.parse(dissect('schema').stdout) as { properties: { format: { const: string } } }).properties.format.const, 'dissect-results/2');
});

test('run and merge print their summary alone, also when a run resumes; compile, report and attributes print nothing on stdout', (t) => {
  const dir = tempDir('stdout');
  const out = join(dir, 'run');
  const first = dissect('run', example, '--out', out, '--limit', '2');
  t.is(first.code, 0, first.stderr);
  const lines = first.stdout.trimEnd().split('\n');
  t.is(lines[0], 'examples: 2 of 2 kept');
  t.is(lines.at(-1), `report:  ${join(out, 'report.html')}`);
  const again = dissect('run', example, '--out', out, '--limit', '2');
  t.is(again.stdout, first.stdout);
  t.regex(again.stderr, /^resumed: 2 examples came from the journal$/m);

  // merge prints a run's summary of the whole too; what it merged is status
  const shards = [0, 1].map((k) => join(dir, `shard${k}`));
  shards.forEach((shard, k) => t.is(dissect('run', example, '--out', shard, '--limit', '2', '--batch', '1', '--shard', `${k}/2`).code, 0));
  const merged = dissect('merge', ...shards, '--out', join(dir, 'merged'));
  t.is(merged.code, 0, merged.stderr);
  t.is(merged.stdout.split('\n')[0], 'examples: 2 of 2 kept');
  t.regex(merged.stderr, /^merged 2 shard folders: 2 facts, none run again$/m);

  const compiled = dissect('compile', example, '--out', join(dir, 'variant'));
  const report = dissect('report', join(out, 'results.json'), '--out', join(dir, 'report'));
  mkdirSync(join(dir, 'texts'));
  writeFileSync(join(dir, 'texts', 'Lornar Elnar.txt'), 'Lornar Elnar was born in Solvig.\n');
  const attributes = dissect('attributes', join(dir, 'texts'), '--out', join(dir, 'attributes.json'));
  for (const [r, written] of [[compiled, /^wrote .*model\.onnx\nwrote .*manifest\.json\n$/], [report, /^wrote .*report\.html\n\d+ plots in /], [attributes, /^wrote .*attributes\.json: 1 subject\n$/]] as const) {
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout, '');
    t.regex(r.stderr, written);
  }
});

test('--clean-stream picks where last-position rows get the clean run (recorded in results.json); a misspelt place lists the two', (t) => {
  const dir = tempDir('clean-stream');
  const run = dissect('run', example, '--out', join(dir, 'run'), '--limit', '2', '--clean-stream', 'in-graph');
  t.is(run.code, 0, run.stderr);
  const results = JSON.parse(readFileSync(join(dir, 'run', 'results.json'), 'utf8')) as { provenance: { rows: { cleanStream: string } } };
  t.is(results.provenance.rows.cleanStream, 'in-graph');
  const wrong = dissect('run', example, '--out', join(dir, 'wrong'), '--clean-stream', 'gpu');
  t.not(wrong.code, 0);
  t.regex(wrong.stderr, /--clean-stream <where>' argument 'gpu' is invalid\. Allowed choices are host, in-graph/);
});
