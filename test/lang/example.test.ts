// examples/information-flow.dissect: the paper's knockout experiment.

import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../src/lang/grammar-export.js';
import { frontEnd, parseDissect } from '../../src/lang/index.js';
import { blocks } from './helpers.js';

const file = join(repoRoot, 'examples/information-flow.dissect');
const source = readFileSync(file, 'utf8');
const tiny = join(repoRoot, 'generated/tiny-gpt2');

test('the example parses', (t) => {
  t.deepEqual(parseDissect(source, file).diagnostics, []);
});

test('the example checks against an 8-layer model, with paths resolved next to the repo', (t) => {
  const asked: string[] = [];
  const r = frontEnd(source, file, {
    shapeOf: (p) => { asked.push(p); return { layers: 8, heads: 4, vocab: 50257 }; },
  });
  t.deepEqual(r.diagnostics, []);
  const p = r.program!;
  t.deepEqual(asked, [join(tiny, 'model.onnx')]);
  t.deepEqual(p.model.tokenizer, join(tiny, 'tokenizer.json'));
  t.deepEqual(p.dataset.path, join(tiny, 'facts.json'));
  t.is(p.params.window, 3);
  const x = p.experiments[0]!;
  t.is(x.name, 'information_flow');
  t.deepEqual(x.sweeps.map((s) => s.kind === 'positions' ? s.values.map((v) => v.label) : s.values), [
    [0, 1, 2, 3, 4, 5, 6, 7],
    ['subject', 'nonsubject', 'last'],
  ]);
  t.deepEqual(blocks(x.interventions).map((i) => [i.source, i.target, i.layers, i.heads]), [[
    { kind: 'var', name: 'blocked' },
    { kind: 'named', name: 'last' },
    { kind: 'window', center: { kind: 'var', name: 'l' }, size: { kind: 'int', value: 3 } },
    'all',
  ]]);
  t.deepEqual(x.measures, ['probability_change', 'probability', 'rank']);
});

test('the example scales to GPT-2 XL with --set window=9', (t) => {
  const r = frontEnd(source, file, { overrides: { window: '9' }, shapeOf: () => ({ layers: 48, heads: 25, vocab: 50257 }) });
  t.is(r.program!.experiments[0]!.sweeps[0]!.kind === 'layers' && r.program!.experiments[0]!.sweeps[0]!.values.length, 48);
  t.is(r.program!.params.window, 9);
});
