// `site` statements: checked before the model is read (detection needs them), handed to it,
// their layers checked against the model afterwards, and errors put at the statement.

import test from 'ava';
import { overridableSites } from '../../src/lang/program.js';
import { LAYER_SITE_NAMES } from '../../src/onnx/sites/types.js';
import { siteOverridesOf } from '../../src/plan/plan.js';
import { FILE, header, problems, run } from './helpers.js';

test('site statements reach the model reader and the Program, in source order', (t) => {
  const r = run([
    header,
    'param act = "/h.{layer}/mlp/act/Mul_3_output_0"',
    'site mlp_act at layers all = act',
    'site probs at layers 2..4 = "attn_probs_{layer}"',
    'site k at layers 7 = "keys"',
    'experiment e {\n  measure probability\n}',
  ].join('\n'));
  t.deepEqual(r.diagnostics, []);
  const want = [
    { site: 'mlp_act', layers: 'all', tensor: '/h.{layer}/mlp/act/Mul_3_output_0', span: { file: FILE, line: 5, column: 1 } },
    { site: 'probs', layers: [2, 3, 4], tensor: 'attn_probs_{layer}', span: { file: FILE, line: 6, column: 1 } },
    { site: 'k', layers: [7], tensor: 'keys', span: { file: FILE, line: 7, column: 1 } },
  ];
  t.deepEqual(r.program?.siteOverrides, want);
  t.deepEqual(r.sitesSeen, [want], 'the model reader got them');
});

test('the language names every layer site of the model, in snake_case', (t) => {
  t.deepEqual(siteOverridesOf(overridableSites.map((site) => ({ site, layers: 'all', tensor: 'x', span: { file: FILE, line: 1, column: 1 } }))).map((o) => o.site),
    [...LAYER_SITE_NAMES]);
});

test('bad site statements: unknown site, layer forms, placeholders, duplicates, layers beyond the model', (t) => {
  const body = (lines: string[]): string => [header, ...lines, 'experiment e {\n  measure probability\n}'].join('\n');
  t.deepEqual(problems(body(['site mlp_akt at layers all = "x"'])), ["4:6 unknown site 'mlp_akt'"]);
  t.deepEqual(problems(body(['site q at layers window(3, 2) = "x"'])), ['4:18 a site override takes all, a layer or a range a..b']);
  t.deepEqual(problems(body(['site q at layers 1 = "q_{l}"'])), ['4:22 unknown placeholder {l} in the tensor name']);
  t.deepEqual(problems(body(['site q at layers 1..3 = "a"', 'site q at layers 3 = "b"'])), ['5:1 site q is overridden twice for the same layer']);
  t.deepEqual(problems(body(['site v at layers 12 = "v"'])), ['4:18 layer 12 is out of range: the model has 12 layers (0..11)']);
  const hint = run(body(['site mlp_akt at layers all = "x"'])).diagnostics[0]!.hint;
  t.regex(hint ?? '', /mlp_act/);
});

test('a model error caused by an override is reported at that statement', (t) => {
  const source = [header, 'site k at layers 0 = "k0"', 'site v at layers 0 = "nope"', 'experiment e {\n  measure probability\n}'].join('\n');
  const r = run(source, { shape: (sites) => ({ error: `site override v at layer 0: the graph has no tensor named '${sites[1]!.tensor}'`, site: 1 }) });
  t.deepEqual(r.diagnostics.map((d) => `${d.span.line}:${d.span.column} ${d.message}`), [
    "5:22 site override v at layer 0: the graph has no tensor named 'nope'",
  ]);
  t.regex(r.diagnostics[0]!.hint ?? '', /dissect inspect/);
});

test('site parses with its keywords usable as names elsewhere', (t) => {
  t.deepEqual(problems([header, 'param site_name = "x"', 'site q at layers 0 = site_name', 'experiment e {\n  measure probability\n}'].join('\n')), []);
});
