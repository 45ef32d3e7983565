// head_mappings (each head's OV circuit in token space) and per-index position sweeps
// (`for t in positions each a..b`).

import test from 'ava';
import type { ForStmt, HeadMappingsStmt } from '../../src/lang/ast.js';
import { parseDissect } from '../../src/lang/index.js';
import type { Program } from '../../src/lang/program.js';
import { brief, FILE, header, problems, run, syntaxProblems } from './helpers.js';

const span = (line: number, column: number) => ({ file: FILE, line, column });

const defaultChoices = {
  knockout_window: 'centred_clipped', knockout_value: 'replace_half_min', ci: 'bootstrap_percentile',
  projection: 'embedding', cancel_mlp: 'zero_preactivation', cancel_attention: 'uniform',
  head_mapping_side: 'unembedding', mapping_subject_token: 'last', head_mapping_normalisation: 'none', recompute: 'renormalise',
  attribution_target: 'log_probability', attribution_reduction: 'sum',
} as const;

/** Checks `text` placed after the 3-line header (so its line 1 is file line 4). */
function body(text: string, overrides?: Record<string, string>): string[] {
  return problems(`${header}\n${text}`, overrides ? { overrides } : {});
}

// ---- head_mappings ---------------------------------------------------------------------------

const mappings = `param model = "m.onnx"
param k = 20
model model tokenizer "t.json"
dataset counterfact "facts.json"
choose head_mapping_side = embedding
choose mapping_subject_token = any
choose head_mapping_normalisation = token_frequency
head_mappings layers 7, 4..5, 5 top k
`;

test('head_mappings checks to layers sorted without duplicates, and the choices are recorded', (t) => {
  const r = run(mappings);
  t.deepEqual(brief(r.diagnostics), []);
  const expected: Program = {
    file: FILE,
    siteOverrides: [],
    model: { onnx: '/virtual/exp/m.onnx', tokenizer: '/virtual/exp/t.json', tokenizerSpan: span(3, 23), span: span(3, 1) },
    dataset: { format: 'counterfact', path: '/virtual/exp/facts.json', pathSpan: span(4, 21), span: span(4, 1) },
    filter: 'known',
    bos: 'none',
    choices: { ...defaultChoices, head_mapping_side: 'embedding', mapping_subject_token: 'any', head_mapping_normalisation: 'token_frequency' },
    params: { model: 'm.onnx', k: 20 },
    experiments: [],
    headMappings: { layers: [4, 5, 7], top: 20, span: span(8, 1) },
  };
  t.deepEqual(r.program, expected);
});

test('head_mappings layers all, a single layer, and a clipped window', (t) => {
  const of = (text: string) => run(`${header}\n${text}\n`).program?.headMappings;
  t.deepEqual(of('head_mappings layers all top 1'), { layers: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], top: 1, span: span(4, 1) });
  t.deepEqual(of('head_mappings layers 5 top 100'), { layers: [5], top: 100, span: span(4, 1) });
  t.deepEqual(of('head_mappings layers window(11, 4) top 3'), { layers: [9, 10, 11], top: 3, span: span(4, 1) });
  t.deepEqual(of('head_mappings layers 0..20 within 10..11 top 3'), { layers: [10, 11], top: 3, span: span(4, 1) });
});

test('head_mapping_normalisation takes only its two values', (t) => {
  t.deepEqual(body('choose head_mapping_normalisation = none\n'), []);
  t.deepEqual(body('choose head_mapping_normalisation = frequency\n'), ["4:37 unknown value 'frequency' for choice 'head_mapping_normalisation'"]);
});

test('without head_mappings the Program has no headMappings', (t) => {
  const r = run(`${header}\n`);
  t.deepEqual(brief(r.diagnostics), []);
  t.false('headMappings' in r.program!);
});

test('head_mappings keeps its keywords usable as names', (t) => {
  const r = run(`param top = 3\nparam each = 2\n${header}\nhead_mappings layers each top top\n`);
  t.deepEqual(brief(r.diagnostics), []);
  t.deepEqual(r.program!.headMappings, { layers: [2], top: 3, span: span(6, 1) });
  t.deepEqual(r.program!.params, { top: 3, each: 2, model: 'm.onnx' });
});

test('head_mappings parses to its AST', (t) => {
  const r = parseDissect('head_mappings layers 4..7 top 20\n', FILE);
  t.deepEqual(r.diagnostics, []);
  const s = r.ast!.statements[0] as HeadMappingsStmt;
  t.is(s.kind, 'head_mappings');
  t.deepEqual(s.layers.map((l) => l.kind), ['range']);
  t.deepEqual(s.top, { kind: 'int', value: 20, text: '20', span: { line: 1, column: 31, offset: 30, endOffset: 32, endLine: 1 } });
});

test('a duplicate head_mappings statement', (t) => {
  const r = run(`${header}\nhead_mappings layers 1 top 5\nhead_mappings layers 2 top 5\n`);
  t.deepEqual(brief(r.diagnostics), ["5:1 duplicate 'head_mappings' statement"]);
  t.is(r.diagnostics[0]!.hint, 'the first one is at line 4; keep one');
});

test('a head_mappings layer out of range', (t) => {
  t.deepEqual(body('head_mappings layers 4..12 top 5\n'), ['4:25 layer 12 is out of range: the model has 12 layers (0..11)']);
  t.deepEqual(body('head_mappings layers 3, last top 5\nparam last = 12\n'), [
    '4:25 layer 12 is out of range: the model has 12 layers (0..11)',
  ]);
  t.deepEqual(body('head_mappings layers 7..4 top 5\n'), ['4:22 empty layer range 7..4']);
  t.deepEqual(body('head_mappings layers 0..3 within 5..6 top 5\n'), ['4:22 layer set 0..3 within 5..6 holds no layer']);
  t.deepEqual(body('head_mappings layers l top 5\n'), ["4:22 unknown name 'l'"]);
});

test('head_mappings top too large or too small', (t) => {
  t.deepEqual(body('head_mappings layers 4..7 top 501\n'), ['4:31 head_mappings top 501 is larger than the vocabulary (500)']);
  t.deepEqual(body('head_mappings layers 4..7 top 0\n'), ['4:31 head_mappings top must be at least 1, got 0']);
  t.deepEqual(body('param k = 5\nhead_mappings layers 4..7 top k\n', { k: '600' }), [
    '5:31 head_mappings top 600 is larger than the vocabulary (500)',
  ]);
  t.deepEqual(body('param k = "x"\nhead_mappings layers 4..7 top k\n'), [
    "5:31 parameter 'k' is a string, but a count is expected here",
  ]);
});

test('head_mappings syntax errors', (t) => {
  t.deepEqual(syntaxProblems('head_mappings layers 4..7\n'), ["1:26 expected 'top', found the end of the file"]);
  t.deepEqual(syntaxProblems('head_mappings 4..7 top 5\n'), ["1:15 expected 'layers', found '4'"]);
  t.deepEqual(syntaxProblems('head_mappings layers 4..7 top\nparam x = 1\n'),
    ['1:30 expected an integer or a name, found the end of the line']);
  t.is(parseDissect('head_mappings layers 4..7\n', FILE).diagnostics[0]!.hint, 'syntax: head_mappings layers <layers>, ... top <k>');
});

// ---- per-index position sweeps ---------------------------------------------------------------

const heatmap = `param model = "m.onnx"
model model tokenizer "t.json"
dataset counterfact "facts.json"

experiment heatmap {
  for l in layers all
  for t in positions each -8..-1
  block t -> last at layers window(l, 10)
  measure probability
}
`;

test('each a..b expands to one singleton index set per index, labelled [i]', (t) => {
  const r = run(heatmap);
  t.deepEqual(brief(r.diagnostics), []);
  const expected: Program = {
    file: FILE,
    siteOverrides: [],
    model: { onnx: '/virtual/exp/m.onnx', tokenizer: '/virtual/exp/t.json', tokenizerSpan: span(2, 23), span: span(2, 1) },
    dataset: { format: 'counterfact', path: '/virtual/exp/facts.json', pathSpan: span(3, 21), span: span(3, 1) },
    filter: 'known',
    bos: 'none',
    choices: defaultChoices,
    params: { model: 'm.onnx' },
    experiments: [{
      name: 'heatmap',
      sweeps: [
        { kind: 'layers', variable: 'l', values: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], span: span(6, 3) },
        {
          kind: 'positions',
          variable: 't',
          values: [-8, -7, -6, -5, -4, -3, -2, -1].map((i) => ({ label: `[${i}]`, set: { kind: 'indices', indices: [i] } as const })),
          span: span(7, 3),
        },
      ],
      interventions: [{
        kind: 'block',
        source: { kind: 'var', name: 't' },
        target: { kind: 'named', name: 'last' },
        layers: { kind: 'window', center: { kind: 'var', name: 'l' }, size: { kind: 'int', value: 10 } },
        heads: 'all',
        span: span(8, 3),
      }],
      measures: ['probability'],
      probes: [],
      summaries: [],
      span: span(5, 1),
      source: heatmap.split('\n').slice(4, 10).join('\n'),
    }],
  };
  t.deepEqual(r.program, expected);
});

/** The values of the position sweep in `for t in positions <items>`. */
function sweepOf(items: string) {
  const r = run(`${header}\nexperiment e {\n  for t in positions ${items}\n  block t -> last at layers 0\n  measure rank\n}\n`);
  const s = r.program?.experiments[0]?.sweeps[0];
  return { diagnostics: brief(r.diagnostics), values: s?.kind === 'positions' ? s.values : undefined };
}

test('each with non-negative, mixed-sign and one-element ranges', (t) => {
  t.deepEqual(sweepOf('each 0..2'), {
    diagnostics: [],
    values: [0, 1, 2].map((i) => ({ label: `[${i}]`, set: { kind: 'indices', indices: [i] } })),
  });
  t.deepEqual(sweepOf('each -2..1').values?.map((v) => v.label), ['[-2]', '[-1]', '[0]', '[1]']);
  t.deepEqual(sweepOf('each 3..3').values, [{ label: '[3]', set: { kind: 'indices', indices: [3] } }]);
});

test('each ranges mix with position sets in one sweep, in order', (t) => {
  t.deepEqual(sweepOf('subject, each -2..-1, [0] + last'), {
    diagnostics: [],
    values: [
      { label: 'subject', set: { kind: 'named', name: 'subject' } },
      { label: '[-2]', set: { kind: 'indices', indices: [-2] } },
      { label: '[-1]', set: { kind: 'indices', indices: [-1] } },
      { label: '[0] + last', set: { kind: 'union', left: { kind: 'indices', indices: [0] }, right: { kind: 'named', name: 'last' } } },
    ],
  });
});

test('each a..b with a > b is an error at a', (t) => {
  t.deepEqual(sweepOf('each -1..-3').diagnostics, ['5:27 empty position range -1..-3']);
  t.deepEqual(sweepOf('each 2..-2').diagnostics, ['5:27 empty position range 2..-2']);
  t.deepEqual(sweepOf('subject, each  5..1').diagnostics, ['5:37 empty position range 5..1']);
  const r = run(`${header}\nexperiment e {\n  for t in positions each -1..-3\n  block t -> last at layers 0\n  measure rank\n}\n`);
  t.is(r.diagnostics[0]!.hint, 'each a..b gives one row per index from a up to b; write the smaller index first, e.g. each -10..-1');
});

test('each with a huge literal, or more indices than the rows a fact may have', (t) => {
  t.deepEqual(sweepOf('each 0..99999999999999999999').diagnostics, ['5:30 integer 99999999999999999999 is too large']);
  t.deepEqual(sweepOf(`each 0..${'9'.repeat(400)}`).diagnostics, ['5:30 integer 99999999999999999999… (400 digits) is too large']);
  t.deepEqual(sweepOf('each 0..100000').diagnostics, ["4:12 experiment 'e' gives 100,001 rows per fact, more than the limit of 100,000"]);
  t.deepEqual(sweepOf('each 0..99999').diagnostics, []);
});

test('each is still a name: a position set called each', (t) => {
  const r = run(`${header}\npositions each = last\nexperiment e {\n  for t in positions each, each - last\n  block t -> last at layers 0\n  measure rank\n}\n`);
  t.deepEqual(brief(r.diagnostics), []);
  const s = r.program!.experiments[0]!.sweeps[0]!;
  t.deepEqual(s.kind === 'positions' && s.values, [
    { label: 'each', set: { kind: 'named', name: 'last' } },
    { label: 'each - last', set: { kind: 'difference', left: { kind: 'named', name: 'last' }, right: { kind: 'named', name: 'last' } } },
  ]);
});

test('each parses to its AST with signed bounds', (t) => {
  const r = parseDissect('experiment e {\n  for t in positions each -10..-1, subject\n  measure rank\n}\n', FILE);
  t.deepEqual(r.diagnostics, []);
  const f = (r.ast!.statements[0] as { items: readonly ForStmt[] }).items[0]!;
  t.true(f.domain.kind === 'positions');
  const items = f.domain.kind === 'positions' ? f.domain.items : [];
  t.deepEqual(items.map((i) => [i.kind, i.text]), [['each', 'each -10..-1'], ['set', 'subject']]);
  const each = items[0]!;
  t.deepEqual(each.kind === 'each' && [each.from.value, each.from.text, each.from.span.column, each.to.value, each.to.span.column],
    [-10, '-10', 27, -1, 32]);
});

test('each syntax errors', (t) => {
  t.deepEqual(syntaxProblems('experiment e {\n  for t in positions each -3..\n}\n'),
    ['2:31 expected an integer, found the end of the line']);
  t.deepEqual(syntaxProblems('experiment e {\n  for t in positions each 3 5\n}\n'), ["2:29 expected '..', found '5'"]);
  t.is(parseDissect('experiment e {\n  for t in positions each -3..\n}\n', FILE).diagnostics[0]!.hint,
    'a position sweep value: a position set, or each <a>..<b> (the sets [a], ..., [b]; negative indices count from the end)');
});
