// The checked Program for representative files (deep equality), parameters and overrides.

import test from 'ava';
import type { Program } from '../../src/lang/program.js';
import { blocks, brief, FILE, run } from './helpers.js';

const span = (line: number, column: number) => ({ file: FILE, line, column });

const representative = `# a file using every construct
param model     = "../models/tiny/model.onnx"
param tokenizer = "/abs/tokenizer.json"
param data      = "queries.jsonl"
param question  = "question"
param window    = 3
param first     = 2

model model tokenizer tokenizer
dataset jsonl data fields prompt = question, subject = "entity", target = "answer"
filter none
bos prepend
choose ci = none
positions relation = nonsubject - subject_next
positions edges = [0, 2, -1] + (relation - last)

experiment flow {
  for l in layers all
  for blocked in positions subject, relation,   edges - [0]
  block blocked -> last at layers window(l, window)
  block subject_first + subject_last -> last at layers first..4 heads 0, 3
  measure probability_change, probability, rank
}

experiment single {
  for c in layers first, 5..6
  block subject -> last at layers c heads all
  block [1] -> last at layers 7
  block last -> last at layers all
  measure rank
}
`;

const relation = {
  kind: 'difference',
  left: { kind: 'named', name: 'nonsubject' },
  right: { kind: 'named', name: 'subject_next' },
} as const;
const edges = {
  kind: 'union',
  left: { kind: 'indices', indices: [0, 2, -1] },
  right: { kind: 'difference', left: relation, right: { kind: 'named', name: 'last' } },
} as const;

const expected: Program = {
  file: FILE,
  siteOverrides: [],
  model: { onnx: '/virtual/models/tiny/model.onnx', tokenizer: '/abs/tokenizer.json', tokenizerSpan: span(9, 23), span: span(9, 1) },
  dataset: {
    format: 'jsonl',
    path: '/virtual/exp/queries.jsonl',
    fields: { prompt: 'question', subject: 'entity', target: 'answer' },
    pathSpan: span(10, 15),
    span: span(10, 1),
  },
  filter: 'none',
  bos: 'prepend',
  choices: {
    knockout_window: 'centred_clipped', knockout_value: 'replace_half_min', ci: 'none',
    projection: 'embedding', cancel_mlp: 'zero_preactivation', cancel_attention: 'uniform',
    head_mapping_side: 'unembedding', mapping_subject_token: 'last', head_mapping_normalisation: 'none', recompute: 'renormalise',
    attribution_target: 'log_probability', attribution_reduction: 'sum',
  },
  params: {
    model: '../models/tiny/model.onnx',
    tokenizer: '/abs/tokenizer.json',
    data: 'queries.jsonl',
    question: 'question',
    window: 3,
    first: 2,
  },
  experiments: [
    {
      name: 'flow',
      sweeps: [
        { kind: 'layers', variable: 'l', values: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], span: span(18, 3) },
        {
          kind: 'positions',
          variable: 'blocked',
          values: [
            { label: 'subject', set: { kind: 'named', name: 'subject' } },
            { label: 'relation', set: relation },
            { label: 'edges - [0]', set: { kind: 'difference', left: edges, right: { kind: 'indices', indices: [0] } } },
          ],
          span: span(19, 3),
        },
      ],
      interventions: [
        {
          kind: 'block',
          source: { kind: 'var', name: 'blocked' },
          target: { kind: 'named', name: 'last' },
          layers: { kind: 'window', center: { kind: 'var', name: 'l' }, size: { kind: 'int', value: 3 } },
          heads: 'all',
          span: span(20, 3),
        },
        {
          kind: 'block',
          source: { kind: 'union', left: { kind: 'named', name: 'subject_first' }, right: { kind: 'named', name: 'subject_last' } },
          target: { kind: 'named', name: 'last' },
          layers: { kind: 'range', from: { kind: 'int', value: 2 }, to: { kind: 'int', value: 4 } },
          heads: [0, 3],
          span: span(21, 3),
        },
      ],
      measures: ['probability_change', 'probability', 'rank'],
      probes: [],
      summaries: [],
      span: span(17, 1),
      source: representative.split('\n').slice(16, 23).join('\n'),
    },
    {
      name: 'single',
      sweeps: [{ kind: 'layers', variable: 'c', values: [2, 5, 6], span: span(26, 3) }],
      interventions: [
        {
          kind: 'block',
          source: { kind: 'named', name: 'subject' },
          target: { kind: 'named', name: 'last' },
          layers: { kind: 'single', layer: { kind: 'var', name: 'c' } },
          heads: 'all',
          span: span(27, 3),
        },
        {
          kind: 'block',
          source: { kind: 'indices', indices: [1] },
          target: { kind: 'named', name: 'last' },
          layers: { kind: 'single', layer: { kind: 'int', value: 7 } },
          heads: 'all',
          span: span(28, 3),
        },
        {
          kind: 'block',
          source: { kind: 'named', name: 'last' },
          target: { kind: 'named', name: 'last' },
          layers: { kind: 'all' },
          heads: 'all',
          span: span(29, 3),
        },
      ],
      measures: ['rank'],
      probes: [],
      summaries: [],
      span: span(25, 1),
      source: representative.split('\n').slice(24, 31).join('\n'),
    },
  ],
};

test('a representative file checks to the expected Program', (t) => {
  const r = run(representative);
  t.deepEqual(brief(r.diagnostics), []);
  t.deepEqual(r.program, expected);
});

test('the experiment source quotes its lines from the keyword to the closing brace', (t) => {
  const r = run(representative);
  const src = r.program!.experiments[1]!.source;
  t.true(src.startsWith('experiment single {'));
  t.true(src.endsWith('}'));
  t.is(src.split('\n').length, 7);
});

test('the model path is resolved against the file folder and passed to shapeOf', (t) => {
  const r = run(representative);
  t.deepEqual(r.shapeCalls, ['/virtual/models/tiny/model.onnx']);
});

test('defaults: filter known, bos none, every choice at its default', (t) => {
  const r = run('model "m.onnx" tokenizer "t.json"\ndataset known "k.json"\nexperiment e { measure rank }\n');
  t.deepEqual(brief(r.diagnostics), []);
  const p = r.program!;
  t.is(p.filter, 'known');
  t.is(p.bos, 'none');
  t.deepEqual(p.choices, {
    knockout_window: 'centred_clipped', knockout_value: 'replace_half_min', ci: 'bootstrap_percentile',
    projection: 'embedding', cancel_mlp: 'zero_preactivation', cancel_attention: 'uniform',
    head_mapping_side: 'unembedding', mapping_subject_token: 'last', head_mapping_normalisation: 'none', recompute: 'renormalise',
    attribution_target: 'log_probability', attribution_reduction: 'sum',
  });
  t.deepEqual(p.dataset, { format: 'known', path: '/virtual/exp/k.json', pathSpan: { file: FILE, line: 2, column: 15 }, span: { file: FILE, line: 2, column: 1 } });
  t.deepEqual(p.params, {});
  t.deepEqual(p.experiments[0]!.sweeps, []);
  t.deepEqual(p.experiments[0]!.interventions, []);
});

test('csv datasets take fields too', (t) => {
  const r = run('model "m.onnx" tokenizer "t.json"\ndataset csv "d.csv" fields target = "a", prompt = "q", subject = "s"\n');
  t.deepEqual(r.program!.dataset, {
    format: 'csv',
    path: '/virtual/exp/d.csv',
    fields: { prompt: 'q', subject: 's', target: 'a' },
    pathSpan: { file: FILE, line: 2, column: 13 },
    span: { file: FILE, line: 2, column: 1 },
  });
});

test('a file without experiments is valid', (t) => {
  const r = run('model "m.onnx" tokenizer "t.json"\ndataset known "k.json"\n');
  t.deepEqual(r.program!.experiments, []);
  t.deepEqual(brief(r.diagnostics), []);
});

// ---- --set overrides --------------------------------------------------------------------------

const withParams = `param window = 9
param model = "a.onnx"
model model tokenizer "t.json"
dataset known "k.json"
experiment e {
  for l in layers 0..2
  block subject -> last at layers window(l, window)
  measure rank
}
`;

test('--set overrides an integer parameter with a number', (t) => {
  const r = run(withParams, { overrides: { window: '5' } });
  t.deepEqual(brief(r.diagnostics), []);
  t.is(r.program!.params.window, 5);
  t.deepEqual(blocks(r.program!.experiments[0]!.interventions)[0]!.layers, {
    kind: 'window', center: { kind: 'var', name: 'l' }, size: { kind: 'int', value: 5 },
  });
});

test('--set overrides a string parameter with the text as given, paths included', (t) => {
  const r = run(withParams, { overrides: { model: '../other/b.onnx' } });
  t.is(r.program!.params.model, '../other/b.onnx');
  t.is(r.program!.model.onnx, '/virtual/other/b.onnx');
  t.deepEqual(r.shapeCalls, ['/virtual/other/b.onnx']);
});

test('--set with a string that looks like a number stays a string for string parameters', (t) => {
  const r = run(withParams, { overrides: { model: '42' } });
  t.is(r.program!.params.model, '42');
});

test('--set of an unknown parameter is an error with a suggestion', (t) => {
  const r = run(withParams, { overrides: { windw: '3' } });
  t.is(r.program, undefined);
  t.deepEqual(r.diagnostics, [{
    span: { file: '<command line>', line: 1, column: 1 },
    severity: 'error',
    message: "unknown parameter 'windw' in --set windw=3",
    hint: "did you mean 'window'?",
  }]);
});

test('--set of an unknown parameter without a near name lists the declared ones', (t) => {
  const r = run(withParams, { overrides: { zzz: '3' } });
  t.is(r.diagnostics[0]!.hint, 'this file declares: window, model');
});

test('--set of an integer parameter with a non-integer is an error', (t) => {
  for (const bad of ['x', '-1', '2.5', '']) {
    const r = run(withParams, { overrides: { window: bad } });
    t.deepEqual(brief(r.diagnostics), [
      `1:1 --set window=${bad}: 'window' is an integer parameter (line 1), but '${bad}' is not a non-negative integer`,
    ]);
  }
});

test('an overridden value is range-checked like a literal', (t) => {
  const source = 'param c = 3\nmodel "m.onnx" tokenizer "t.json"\ndataset known "k.json"\n' +
    'experiment e {\n  block subject -> last at layers c\n  measure rank\n}\n';
  t.deepEqual(brief(run(source).diagnostics), []);
  t.deepEqual(brief(run(source, { overrides: { c: '12' } }).diagnostics), [
    '5:35 layer 12 is out of range: the model has 12 layers (0..11)',
  ]);
});
