// `patch … with corrupted hidden`: the Program shape, the optional `corrupted` field of a
// jsonl / csv dataset, and the error when the dataset has no corrupted prompts.

import test from 'ava';
import type { PatchIntervention } from '../../src/lang/program.js';
import { FILE, problems, run } from './helpers.js';

const pairs = 'dataset jsonl "pairs.jsonl" fields prompt = "prompt", subject = "subject", target = "target", corrupted = "corrupted_prompt"';

const experiment = `experiment patched {
  for l in layers 0..2
  patch hidden l at positions subject with corrupted hidden 0
  measure probability
}`;

test('with corrupted hidden gives a corrupted_hidden source and the dataset keeps the field', (t) => {
  const r = run(`model "m.onnx" tokenizer "t.json"\n${pairs}\n${experiment}\n`);
  t.deepEqual(r.diagnostics, []);
  const p = r.program!;
  t.deepEqual(p.dataset, {
    format: 'jsonl', path: '/virtual/exp/pairs.jsonl',
    fields: { prompt: 'prompt', subject: 'subject', target: 'target', corrupted: 'corrupted_prompt' },
    pathSpan: { file: FILE, line: 2, column: 15 },
    span: { file: FILE, line: 2, column: 1 },
  });
  const patch = p.experiments[0]!.interventions[0] as PatchIntervention;
  t.deepEqual(patch, {
    kind: 'patch', layer: { kind: 'var', name: 'l' }, positions: { kind: 'named', name: 'subject' },
    source: { kind: 'corrupted_hidden', index: { kind: 'int', value: 0 } }, span: { file: FILE, line: 5, column: 3 },
  });
});

test('a fields clause without corrupted still checks, with no corrupted field', (t) => {
  const r = run('model "m.onnx" tokenizer "t.json"\ndataset csv "f.csv" fields prompt = "p", subject = "s", target = "t"\n'
    + 'experiment e {\n  measure probability\n}\n');
  t.deepEqual(r.diagnostics, []);
  t.deepEqual((r.program!.dataset as { fields: object }).fields, { prompt: 'p', subject: 's', target: 't' });
});

test('corrupted hidden without a corrupted field is an error at the patch, with a hint', (t) => {
  for (const dataset of [
    'dataset counterfact "facts.json"',
    'dataset jsonl "pairs.jsonl" fields prompt = "prompt", subject = "subject", target = "target"',
  ]) {
    const r = run(`model "m.onnx" tokenizer "t.json"\n${dataset}\n${experiment}\n`);
    t.is(r.program, undefined);
    t.deepEqual(problems(`model "m.onnx" tokenizer "t.json"\n${dataset}\n${experiment}\n`),
      ['5:3 patch with corrupted hidden needs a corrupted prompt per fact, but the dataset has no corrupted field']);
    t.regex(r.diagnostics[0]!.hint ?? '', /corrupted = "<column>"/);
  }
});

test('the other patch sources are unchanged, and corrupted is still a valid name', (t) => {
  const r = run(`model "m.onnx" tokenizer "t.json"\n${pairs}\nparam corrupted = 1\nexperiment e {
  patch hidden corrupted at positions last with mean hidden 2
  measure probability
}\n`);
  t.deepEqual(r.diagnostics, []);
  const patch = r.program!.experiments[0]!.interventions[0] as PatchIntervention;
  t.deepEqual(patch.source, { kind: 'mean_hidden', index: { kind: 'int', value: 2 } });
  t.deepEqual(patch.layer, { kind: 'int', value: 1 });
});
