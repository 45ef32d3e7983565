// The CLI on bad input: a message with file:line:col and a hint, exit code 1, never a stack.

import test from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../temp.js';
import { dissect } from './helpers.js';

const fixtures = fileURLToPath(new URL('../../../generated/fixtures/', import.meta.url));

function workspace(files: Record<string, string>): string {
  const dir = tempDir('cli');
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

/** The first lines of a .dissect file on the GPT-2 fixture (its tokenizer and dataset never read). */
const fixtureHeader = [`model "${join(fixtures, 'gpt2-opset14.onnx')}" tokenizer "tok.json"`, 'dataset counterfact "facts.json"'];

/** A folder holding x.dissect: the fixture header, then `lines`. */
function fixtureProgram(...lines: string[]): string {
  return workspace({ 'x.dissect': [...fixtureHeader, ...lines, ''].join('\n') });
}

const noStack = (s: string) => !/\n\s+at .+:\d+:\d+\)?\n/.test(s);

test('a layer out of range is reported at its position with a hint, exit 1', (t) => {
  const dir = fixtureProgram(
    'experiment e {',
    '  block subject -> last at layers 5',
    '  measure probability',
    '}',
  );
  const r = dissect('check', join(dir, 'x.dissect'));
  t.is(r.code, 1);
  t.regex(r.stderr, /x\.dissect:4:\d+: error: layer 5 is out of range: the model has 2 layers \(0\.\.1\)/);
  t.regex(r.stderr, /hint: /);
  t.true(noStack(r.stderr), r.stderr);
});

test('several errors are reported in one pass', (t) => {
  const dir = fixtureProgram(
    'experiment e {',
    '  block subjct -> last at layers 7',
    '  measure probability',
    '}',
  );
  const r = dissect('check', join(dir, 'x.dissect'));
  t.is(r.code, 1);
  t.regex(r.stderr, /x\.dissect:4:9: error: .*subjct/);
  t.regex(r.stderr, /did you mean .*subject/);
  t.regex(r.stderr, /x\.dissect:4:\d+: error: layer 7 is out of range/);
});

test('a missing model file names the path at the model statement', (t) => {
  const dir = workspace({
    'x.dissect': 'model "nope.onnx" tokenizer "tok.json"\ndataset counterfact "facts.json"\n',
  });
  const r = dissect('check', join(dir, 'x.dissect'));
  t.is(r.code, 1);
  t.regex(r.stderr, /x\.dissect:1:\d+: error: .*nope\.onnx/);
  t.true(noStack(r.stderr), r.stderr);
});

test('a missing dataset, tokenizer or attributes file is a diagnostic like the model\'s: at the path or the parameter naming it, with the line, a caret and the hint', (t) => {
  const tiny = fileURLToPath(new URL('../../../generated/tiny-gpt2/', import.meta.url));
  const source = (dataset: string, tokenizer: string, attributes: string) => [
    `param data = "${dataset}"`,
    `model "${join(tiny, 'model.onnx')}" tokenizer "${tokenizer}"`,
    'dataset counterfact data',
    `attributes json "${attributes}" candidates 100`,
    'experiment e {\n  measure attributes_rate of hidden 1 at last\n}',
  ].join('\n') + '\n';
  const dir = workspace({
    'dataset.dissect': source('fact.json', join(tiny, 'tokenizer.json'), join(tiny, 'attributes.json')),
    'tokenizer.dissect': source(join(tiny, 'facts.json'), 'tok.json', join(tiny, 'attributes.json')),
    'attributes.dissect': source(join(tiny, 'facts.json'), join(tiny, 'tokenizer.json'), 'attrs.json'),
  });
  const dataset = dissect('check', join(dir, 'dataset.dissect'));
  t.is(dataset.code, 1);
  t.is(dataset.stderr, [
    `${join(dir, 'dataset.dissect')}:3:21: error: cannot read the dataset ${join(dir, 'fact.json')}: no such file or folder`,
    '  3 | dataset counterfact data',
    '    |                     ^',
    `  hint: paths are relative to the .dissect file's folder (${dir})`,
    '',
  ].join('\n'));
  const tokenizer = dissect('check', join(dir, 'tokenizer.dissect'));
  t.is(tokenizer.code, 1);
  t.regex(tokenizer.stderr, new RegExp(`^${join(dir, 'tokenizer.dissect')}:2:\\d+: error: cannot read the tokenizer ${join(dir, 'tok.json')}: no such file or folder\n  2 \\| model `));
  const run = dissect('run', join(dir, 'attributes.dissect'), '--out', join(dir, 'out'), '--limit', '1');
  t.is(run.code, 1);
  t.regex(run.stderr, new RegExp(`^${join(dir, 'attributes.dissect')}:4:17: error: cannot read the attributes file ${join(dir, 'attrs.json')}: no such file or folder\n  4 \\| attributes json "attrs.json" candidates 100\n    \\|                 \\^\n  hint: paths are relative`));
});

test('a missing .dissect file and a bad flag are user errors', (t) => {
  const missing = dissect('check', '/nonexistent/x.dissect');
  t.is(missing.code, 1);
  t.regex(missing.stderr, /cannot read \/nonexistent\/x\.dissect/);
  const flag = dissect('run', 'x.dissect', '--out', 'o', '--batch', 'zero');
  t.is(flag.code, 1);
  t.regex(flag.stderr, /expected a positive integer, got "zero"/);
  const both = dissect('run', 'x.dissect', '--out', 'o', '--example', '3', '--shard', '0/2');
  t.is(both.code, 1);
  t.is(both.stderr, 'dissect: error: --example runs one fact, which is no shard of a run\n  hint: drop --shard (or --example)\n');
});

test('doctor lists the cpu provider and schema prints the results schema', (t) => {
  const doctor = dissect('doctor');
  t.is(doctor.code, 0);
  t.regex(doctor.stdout, /onnxruntime-node 1\.\d+\.\d+/);
  t.regex(doctor.stdout, /execution providers: .*cpu/);
  // every provider but cpu and cuda is marked: --device refuses it
  for (const p of /execution providers: (.*)/.exec(doctor.stdout)![1]!.split(', ')) {
    if (!/^(cpu|cuda)\b/.test(p)) t.regex(p, /(\(|; )not usable with --device\)$/, p);
  }
  t.regex(dissect('run', '--help').stdout, /--out <dir> +output folder \(required;/);
  const schema = dissect('schema');
  t.is(schema.code, 0);
  t.is(JSON.parse(schema.stdout).properties.format.const, 'dissect-results/2');
});

test('--params applies a preset before --set, and names a bad file', (t) => {
  const example = fileURLToPath(new URL('../../../examples/paper.dissect', import.meta.url));
  const preset = fileURLToPath(new URL('../../../examples/presets/gpt2-xl.json', import.meta.url));
  const r = dissect('check', example, '--params', preset, '--set', 'candidates=100', '--set', 'keep=10');
  t.is(r.code, 1);
  // The preset's GPT-2 XL layers do not fit the 8-layer default model; --set fixed the rest.
  t.regex(r.stderr, /layer 39 is out of range: the model has 8 layers \(0\.\.7\)/);
  t.notRegex(r.stderr, /candidates/);
  const missing = dissect('check', example, '--params', '/nonexistent.json');
  t.is(missing.code, 1);
  t.regex(missing.stderr, /cannot read --params \/nonexistent\.json: no such file or folder/);
});

test('--max-rows raises the rows per fact and in total; over either limit, check names the flag value that fits', (t) => {
  const example = fileURLToPath(new URL('../../../examples/paper.dissect', import.meta.url));
  // the paper's program plans 316 rows per fact on the default model, which knows 300 facts
  const perFact = dissect('check', example, '--max-rows', '300');
  t.is(perFact.code, 1);
  t.regex(perFact.stderr, /paper\.dissect:\d+:12: error: the experiments up to '\w+' give \d+ rows per fact, more than the limit of 300\n/);
  t.regex(perFact.stderr, /raise the limit: --max-rows 316 /);
  const total = dissect('check', example, '--max-rows', '400/90000');
  t.is(total.code, 1);
  t.regex(total.stderr, /paper\.dissect:31:1: error: 300 facts × 316 rows per fact make 94,800 rows, more than the limit of 90,000\n/);
  t.regex(total.stderr, /raise the limit: --max-rows 400\/94800\n/);
  t.true(noStack(total.stderr), total.stderr);
  const enough = dissect('check', example, '--max-rows', '316/1e5');
  t.is(enough.code, 0, enough.stderr);
  // 55 of them change nothing and are read from the clean pass
  t.regex(enough.stdout, /experiment enrichment: 36 configurations per example, each read from the clean pass\n/);
  // and 8 of the attribution experiment's 9 hidden states come from the first one's backward pass
  t.regex(enough.stdout, /experiment attribution: 9 configurations per example, 8 read from another configuration's backward pass\n/);
  t.regex(enough.stdout, /forward passes: 254 per example \(1 clean \+ configurations, but the 55 read from the clean pass and the 8 read from another configuration's backward pass\)/);
  // run counts the facts it selects
  const out = tempDir('max-rows');
  const run = dissect('run', example, '--out', out, '--limit', '3', '--max-rows', '400/900');
  t.is(run.code, 1);
  t.regex(run.stderr, /paper\.dissect:31:1: error: 3 facts × 316 rows per fact make 948 rows, more than the limit of 900\n/);
  const bad = dissect('check', example, '--max-rows', '0');
  t.is(bad.code, 1);
  t.regex(bad.stderr, /expected rows per fact, optionally \/rows in total \(e\.g\. 200000 or 200000\/1e9\), got "0"/);
});

test('--example runs one fact and prints everything measured about it', (t) => {
  const example = fileURLToPath(new URL('../../../examples/information-flow.dissect', import.meta.url));
  const out = tempDir('example');
  const r = dissect('run', example, '--out', out, '--example', '7');
  t.is(r.code, 0, r.stderr);
  const dump = JSON.parse(r.stdout) as { example: { id: string; prompt: string }; experiments: { rows: unknown[] }[] };
  t.is(dump.example.id, '7');
  t.is(dump.example.prompt, 'Nelvo Velden works as a');
  t.is(dump.experiments[0]!.rows.length, 8 * 3);
  // Run again, it resumes from the journal: stdout is still the JSON alone, the status is on stderr.
  const again = dissect('run', example, '--out', out, '--example', '7');
  t.is(again.code, 0, again.stderr);
  t.deepEqual(JSON.parse(again.stdout), dump);
  t.regex(again.stderr, /^resumed: 1 examples came from the journal$/m);
  const wrong = dissect('run', example, '--out', out, '--example', 'nope', '--fresh');
  t.is(wrong.code, 1);
  t.regex(wrong.stderr, /--example nope: no fact has that id/);
});

test('inspect FILE.dissect applies its site statements; one naming a missing tensor is a clear error', (t) => {
  const dir = fixtureProgram(
    'site probs at layers 1 = "/h.1/attn/Softmax_output_0"',
    'site mlp_act at layers 0 = "no_such_tensor"',
  );
  const r = dissect('inspect', join(dir, 'x.dissect'));
  t.is(r.code, 1);
  t.regex(r.stderr, /site override mlp_act at layer 0: the graph has no tensor named 'no_such_tensor'/); // as site statements name it
  t.true(noStack(r.stderr));
  writeFileSync(join(dir, 'x.dissect'), readFileSync(join(dir, 'x.dissect'), 'utf8').replace(/site mlp_act.*\n/, ''));
  const ok = dissect('inspect', join(dir, 'x.dissect'));
  t.is(ok.code, 0, ok.stderr);
  t.regex(ok.stdout, /layer 1: confidence medium \(probs named by a site override\)/);
  t.regex(ok.stdout, /layer 0: confidence high/);
});
