// Hostile paths: every file-system error on a path the user gives is a message naming the
// path and why, exit 1, no stack trace, and nothing outside --out written or deleted.

import test from 'ava';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readModel, writeModel } from '../../src/onnx/proto.js';
import { externalizeInitializers } from '../../src/onnx/external.js';
import { fixtures, noStack, program, Sandbox, tinyGpt2 } from './sandbox.js';

const long = `${'a'.repeat(300)}`;

/** A user error: exit 1, the message, no stack, nothing touched outside --out. */
function refused(t: import('ava').ExecutionContext, s: Sandbox, args: string[], message: RegExp): void {
  const r = s.dissect(...args);
  t.is(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
  t.regex(r.stderr, message);
  t.true(noStack(r.stderr), r.stderr);
  t.deepEqual(r.touched, [], `${args.join(' ')} wrote outside --out`);
}

test('inspect: a missing model, a folder and a name too long', (t) => {
  const s = new Sandbox();
  refused(t, s, ['inspect', 'nope.onnx'], /^dissect: error: cannot read the model nope\.onnx: no such file or folder\n  hint: give the path of an \.onnx file\n$/);
  refused(t, s, ['inspect', s.path('home')], /cannot read the model .*home: it is a folder/);
  refused(t, s, ['inspect', `${long}.onnx`], /cannot read the model a+\.onnx: the name is too long/);
  refused(t, s, ['inspect', s.write('garbage.onnx', 'not a model')], /garbage\.onnx: not a readable ONNX model \(.*\)\n  hint: an ONNX model is the \.onnx file torch\.onnx\.export or Optimum writes/);
  refused(t, s, ['inspect', `${long}.dissect`], /cannot read a+\.dissect: the name is too long/);
});

test('the model, tokenizer, dataset and attributes named in a .dissect file: missing, a folder, a name too long', (t) => {
  const s = new Sandbox();
  const cases: [Parameters<typeof program>[0], RegExp][] = [
    [{ model: s.path('home') }, /x\.dissect:1:7: error: cannot read the model .*home: it is a folder/],
    [{ model: `${long}.onnx` }, /x\.dissect:1:7: error: cannot read the model .*a+\.onnx: the name is too long/],
    [{ tokenizer: s.path('nope.json') }, /cannot read the tokenizer .*nope\.json: no such file or folder/],
    [{ tokenizer: `${long}.json` }, /cannot read the tokenizer .*a+\.json: the name is too long/],
    // At the path, with the source line and a caret, like the model's.
    [{ dataset: s.path('home') }, /x\.dissect:2:21: error: cannot read the dataset .*home: it is a folder\n  2 \| dataset counterfact "/],
    [{ dataset: `${long}.json` }, /cannot read the dataset .*a+\.json: the name is too long/],
  ];
  for (const [paths, message] of cases) refused(t, s, ['check', s.write('x.dissect', program(paths))], message);
  // attributes are read by a run
  const attributes = program({ attributes: s.path('home') }).replace('measure probability', 'measure attributes_rate of hidden 1 at last');
  refused(t, s, ['run', s.write('x.dissect', attributes), '--out', s.out, '--limit', '1'], /x\.dissect:3:17: error: cannot read the attributes file .*home: it is a folder\n  3 \| attributes json "/);
});

test('--params, report and attributes: missing files, folders and unwritable outputs', (t) => {
  const s = new Sandbox();
  const source = s.write('x.dissect', program({}));
  refused(t, s, ['check', source, '--params', s.path('home')], /cannot read --params .*home: it is a folder/);
  refused(t, s, ['report', `${long}.json`, '--out', s.out], /cannot read a+\.json: the name is too long/);
  refused(t, s, ['report', s.path('tmp'), '--out', s.out], /cannot read .*tmp: it is a folder/);
  s.write('texts/Lornar Elnar.txt', 'born in Solvig');
  mkdirSync(s.path('texts/folder.txt'));
  refused(t, s, ['attributes', s.path('texts'), '--out', s.path('out/a.json')], /cannot read the attribute text .*folder\.txt: it is a folder/);
  refused(t, s, ['attributes', s.path('x.dissect'), '--out', s.path('out/a.json')], /cannot read the folder .*x\.dissect: a part of the path is a file, not a folder/);
});

test('inspect exits 1 when the external data cannot be used', (t) => {
  const s = new Sandbox();
  const model = readModel(join(fixtures, 'gpt2-opset14.onnx'));
  mkdirSync(s.path('m'));
  externalizeInitializers(model, s.path('m'), 'weights.bin');
  writeModel(s.path('m/model.onnx'), model);
  writeFileSync(s.path('m/weights.bin'), readFileSync(s.path('m/weights.bin')).subarray(0, 1000));
  const r = s.dissect('inspect', s.path('m/model.onnx'));
  t.is(r.code, 1);
  t.regex(r.stdout, /PROBLEM: .*needs bytes up to \d+ but the file has 1000/);
  t.regex(r.stdout, /supported: yes, but its external data cannot be used \(PROBLEM above\)\n/);
  t.deepEqual(r.touched, []);
  const ok = s.dissect('inspect', join(tinyGpt2, 'model.onnx'));
  t.is(ok.code, 0);
  t.regex(ok.stdout, /supported: yes\n/);
});
