// The CLI on bad input: a message with file:line:col and a hint, exit code 1, never a stack.

import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const fixtures = fileURLToPath(new URL('../../../generated/fixtures/', import.meta.url));

function dissect(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function workspace(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'dissect-cli-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

const noStack = (s: string) => !/\n\s+at .+:\d+:\d+\)?\n/.test(s);

test('a layer out of range is reported at its position with a hint, exit 1', (t) => {
  const dir = workspace({
    'x.dissect': [
      `model "${join(fixtures, 'gpt2-opset14.onnx')}" tokenizer "tok.json"`,
      'dataset counterfact "facts.json"',
      'experiment e {',
      '  block subject -> last at layers 5',
      '  measure probability',
      '}',
      '',
    ].join('\n'),
  });
  const r = dissect('check', join(dir, 'x.dissect'));
  t.is(r.code, 1);
  t.regex(r.stderr, /x\.dissect:4:\d+: error: layer 5 is out of range: the model has 2 layers \(0\.\.1\)/);
  t.regex(r.stderr, /hint: /);
  t.true(noStack(r.stderr), r.stderr);
});

test('several errors are reported in one pass', (t) => {
  const dir = workspace({
    'x.dissect': [
      `model "${join(fixtures, 'gpt2-opset14.onnx')}" tokenizer "tok.json"`,
      'dataset counterfact "facts.json"',
      'experiment e {',
      '  block subjct -> last at layers 7',
      '  measure probability',
      '}',
      '',
    ].join('\n'),
  });
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

test('a missing dataset file is a clear error, not a crash', (t) => {
  const tokenizer = fileURLToPath(new URL('../../../generated/tiny-gpt2/tokenizer.json', import.meta.url));
  const dir = workspace({
    'x.dissect': `model "${join(fixtures, 'gpt2-opset14.onnx')}" tokenizer "${tokenizer}"\ndataset counterfact "facts.json"\n`,
  });
  const r = dissect('check', join(dir, 'x.dissect'));
  t.is(r.code, 1);
  t.regex(r.stderr, /^dissect: error: .*facts\.json/m);
  t.true(noStack(r.stderr), r.stderr);
});

test('a missing .dissect file and a bad flag are user errors', (t) => {
  const missing = dissect('check', '/nonexistent/x.dissect');
  t.is(missing.code, 1);
  t.regex(missing.stderr, /cannot read \/nonexistent\/x\.dissect/);
  const flag = dissect('run', 'x.dissect', '--out', 'o', '--batch', 'zero');
  t.is(flag.code, 1);
  t.regex(flag.stderr, /expected a positive integer, got "zero"/);
});

test('doctor lists the cpu provider and schema prints the results schema', (t) => {
  const doctor = dissect('doctor');
  t.is(doctor.code, 0);
  t.regex(doctor.stdout, /onnxruntime-node 1\.\d+\.\d+/);
  t.regex(doctor.stdout, /execution providers: .*cpu/);
  const schema = dissect('schema');
  t.is(schema.code, 0);
  t.is(JSON.parse(schema.stdout).properties.format.const, 'dissect-results/1');
});
