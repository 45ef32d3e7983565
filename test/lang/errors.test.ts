// Every kind of diagnostic, at its exact line:column, with its exact message.

import test from 'ava';
import { formatDiagnostics, frontEnd } from '../../src/lang/index.js';
import { FILE, header, problems, run, syntaxProblems } from './helpers.js';

/** Checks `body` placed after the 3-line header (so body line 1 is file line 4). */
function body(text: string, overrides?: Record<string, string>): string[] {
  return problems(`${header}\n${text}`, overrides ? { overrides } : {});
}

function hintOf(source: string, index = 0): string | undefined {
  return run(source).diagnostics[index]?.hint;
}

// ---- lexical and syntax errors ---------------------------------------------------------------

test('an unexpected character', (t) => {
  t.deepEqual(syntaxProblems('param x = 1 @\n'), ["1:13 unexpected character '@'"]);
  t.deepEqual(syntaxProblems('param x = 1 @@@\n'), ["1:13 unexpected characters '@@@'"]);
});

test('an unterminated string is one error, and parsing goes on as if it were closed', (t) => {
  t.deepEqual(syntaxProblems('param x = "abc\nparam y = 2\n'), ['1:11 unterminated string']);
});

test('a missing token names what was expected and what was found', (t) => {
  t.deepEqual(syntaxProblems('experiment e {\n  block subject last at layers 1\n}\n'), ["2:17 expected '->', found 'last'"]);
});

test('a line that ends early is reported just after its last token', (t) => {
  t.deepEqual(syntaxProblems('param x =\nparam y = 1\n'), ['1:10 expected a string or an integer, found the end of the line']);
  t.deepEqual(syntaxProblems('experiment e {\n  for l in layers 1..\n}\n'),
    ['2:22 expected an integer or a name, found the end of the line']);
});

test('a word that starts no statement is an unknown statement, skipped up to the next one', (t) => {
  t.deepEqual(syntaxProblems('param x = 1\nfoo bar\nparam y =\n'), ["2:1 unknown statement 'foo'", '3:10 expected a string or an integer, found the end of the file']);
  t.is(hintOf('param x = 1\nfoo bar\n'), 'a statement starts with param, model, dataset, attributes, filter, bos, choose, positions, head_mappings, site or experiment');
  t.deepEqual(syntaxProblems('experiment e {\n  frobnicate subject\n  measure rank,\n}\n'),
    ["2:3 unknown statement 'frobnicate'", "3:16 expected 'attention_weight' or a name, found the end of the line"]);
});

test('misspelt statement keywords get the keyword, and every broken statement is reported in one pass', (t) => {
  const source = [
    'experimnt e {',                  // 1
    '  for l in layers all',
    '  blok subject -> last at layers l',
    '  mesure rank',                  // 4
    '  measure probability,',          // 5: a measure missing
    '}',
    'experiment f {',
    '  sumarize extraction',          // 8
    '}',
    'parm x = 1',                     // 10
  ].join('\n');
  t.deepEqual(syntaxProblems(source), [
    "1:1 unknown statement 'experimnt'",
    "3:3 unknown statement 'blok'",
    "4:3 unknown statement 'mesure'",
    "5:23 expected 'attention_weight' or a name, found the end of the line",
    "8:3 unknown statement 'sumarize'",
    "10:1 unknown statement 'parm'",
  ]);
  const hints = run(source).diagnostics.map((d) => d.hint);
  t.is(hints[0], "did you mean 'experiment'? (a statement starts with param, model, dataset, attributes, filter, bos, choose, positions, head_mappings, site or experiment)");
  t.is(hints[1], "did you mean 'block'? (inside an experiment, a statement starts with for, block, cancel, patch, measure or summarize)");
  t.is(hints[2], "did you mean 'measure'? (inside an experiment, a statement starts with for, block, cancel, patch, measure or summarize)");
  t.is(hints[4], "did you mean 'summarize'? (inside an experiment, a statement starts with for, block, cancel, patch, measure or summarize)");
  t.is(hints[5], "did you mean 'param'? (a statement starts with param, model, dataset, attributes, filter, bos, choose, positions, head_mappings, site or experiment)");
});

test('two neighbouring letters swapped are one typo: modle and mesaure get their suggestion', (t) => {
  const source = ['modle "m.onnx" tokenizer "t.json"', 'experiment e {', '  mesaure rank', '}'].join('\n');
  const hints = run(source).diagnostics.map((d) => d.hint);
  t.regex(hints[0]!, /^did you mean 'model'\?/);
  t.regex(hints[1]!, /^did you mean 'measure'\?/);
});

test('an unclosed experiment is reported at the end of the file', (t) => {
  t.deepEqual(syntaxProblems('experiment e {\n  measure rank\n'), ["2:15 expected '}', found the end of the file"]);
});

test('integers are non-negative outside index lists', (t) => {
  t.deepEqual(syntaxProblems('param x = -1\n'), ["1:11 expected a string or an integer, found '-'"]);
  t.deepEqual(syntaxProblems('experiment e {\n  block subject -> last at layers -1\n}\n'),
    ["2:35 expected 'all', 'window', an integer or a name, found '-'"]);
});

test('several syntax errors are reported in one pass', (t) => {
  const source = [
    'param a = ',                                 // 1: missing value
    'model "m.onnx" tokenizer "t.json" @',        // 2: bad character
    'experiment e {',
    '  block subject last at layers 1',           // 4: missing ->
    '  for l in layers 1..',                      // 5: missing upper bound
    '  measure rank',
    '}',
    'experiment f {',
    '  block (subject -> last at layers 2',       // 9: missing )
    '}',
  ].join('\n');
  t.deepEqual(syntaxProblems(source), [
    '1:10 expected a string or an integer, found the end of the line',
    "2:35 unexpected character '@'",
    "4:17 expected '->', found 'last'",
    '5:22 expected an integer or a name, found the end of the line',
    "9:18 expected ')', found '->'",
  ]);
});

test('syntax errors carry a hint with the syntax of the statement', (t) => {
  const d = frontEnd('experiment e {\n  block subject last at layers 1\n}\n', FILE, { shapeOf: () => ({ error: 'x' }) }).diagnostics;
  t.is(d[0]!.hint, 'syntax: block <positions> -> <positions> at layers <layers> [heads <n>, ...]');
});

// ---- file structure ---------------------------------------------------------------------------

test('missing model and dataset statements', (t) => {
  t.deepEqual(problems('experiment e { measure rank }\n'), [
    "1:1 missing 'model' statement",
    "1:1 missing 'dataset' statement",
  ]);
});

test('a model statement without a tokenizer', (t) => {
  t.deepEqual(problems('model "m.onnx"\ndataset known "k.json"\n'), ['1:1 the model statement has no tokenizer']);
});

test('a model that cannot be read is reported at its path', (t) => {
  const r = run(`param p = "x.onnx"\nmodel p tokenizer "t.json"\ndataset known "k.json"\n`, { shape: { error: 'no such file\nat open' } });
  t.deepEqual(r.diagnostics.map((d) => [d.span.line, d.span.column, d.message]), [
    [2, 7, 'cannot read the model /virtual/exp/x.onnx: no such file at open'],
  ]);
  t.is(r.program, undefined);
});

test('duplicate single statements', (t) => {
  t.deepEqual(body('filter known\nfilter none\nmodel "a.onnx" tokenizer "b"\n'), [
    "5:1 duplicate 'filter' statement",
    "6:1 duplicate 'model' statement",
  ]);
});

test('duplicate parameters and experiments', (t) => {
  t.deepEqual(body('param w = 1\nparam w = 2\nexperiment e { measure rank }\nexperiment e { measure rank }\n'), [
    "5:7 duplicate parameter 'w'",
    "7:12 duplicate experiment 'e'",
  ]);
});

// ---- parameters -------------------------------------------------------------------------------

test('an unknown parameter, with a suggestion', (t) => {
  const source = 'param tokenizer = "t.json"\nmodel "m.onnx" tokenizer tokeniser\ndataset known "k.json"\n';
  t.deepEqual(problems(source), ["2:26 unknown parameter 'tokeniser'"]);
  t.is(hintOf(source), "did you mean 'tokenizer'?");
});

test('parameters of the wrong type', (t) => {
  t.deepEqual(problems('param n = 3\nmodel n tokenizer "t"\ndataset known "k.json"\n'),
    ["2:7 parameter 'n' is an integer, but a path to an .onnx model is expected here"]);
  t.deepEqual(body('param s = "x"\nexperiment e {\n  block subject -> last at layers s\n  measure rank\n}\n'),
    ["6:35 parameter 's' is a string, but a layer is expected here"]);
});

test('a parameter used as a position set', (t) => {
  t.deepEqual(body('param w = 3\nexperiment e {\n  block w -> last at layers 1\n  measure rank\n}\n'),
    ["6:9 'w' is a parameter, not a position set"]);
});

test('an integer too large to represent', (t) => {
  t.deepEqual(body('param w = 99999999999999999999\n'), ['4:11 integer 99999999999999999999 is too large']);
});

// ---- dataset ----------------------------------------------------------------------------------

test('an unknown dataset format', (t) => {
  const source = 'model "m" tokenizer "t"\ndataset counterfac "d.json"\n';
  t.deepEqual(problems(source), ["2:9 unknown dataset format 'counterfac'"]);
  t.is(hintOf(source), "did you mean 'counterfact'? formats: counterfact, known, jsonl, csv");
});

test('fields are refused for counterfact and known, required for jsonl and csv', (t) => {
  t.deepEqual(problems('model "m" tokenizer "t"\ndataset known "d.json" fields prompt = "a", subject = "b", target = "c"\n'),
    ['2:24 a known dataset takes no fields clause']);
  t.deepEqual(problems('model "m" tokenizer "t"\ndataset jsonl "d.jsonl"\n'), ['2:1 a jsonl dataset needs a fields clause']);
});

test('unknown, repeated and missing fields', (t) => {
  t.deepEqual(problems('model "m" tokenizer "t"\ndataset csv "d.csv" fields promt = "a", subject = "b", subject = "c"\n'), [
    "2:21 missing fields 'prompt', 'target'",
    "2:28 unknown field 'promt'",
    "2:56 field 'subject' is given twice",
  ]);
});

// ---- filter, bos, choices ---------------------------------------------------------------------

test('unknown filter and bos values list the allowed ones', (t) => {
  const source = `${header}\nfilter knwn\nbos append\n`;
  t.deepEqual(problems(source), ["4:8 unknown filter value 'knwn'", "5:5 unknown bos value 'append'"]);
  t.is(hintOf(source, 0), "did you mean 'known'? allowed: known, none");
  t.is(hintOf(source, 1), 'allowed: none, prepend');
});

test('an unknown choice and an unknown choice value', (t) => {
  const source = `${header}\nchoose knockout_windw = centred_clipped\nchoose ci = percentile\n`;
  t.deepEqual(problems(source), ["4:8 unknown choice 'knockout_windw'", "5:13 unknown value 'percentile' for choice 'ci'"]);
  t.is(hintOf(source, 0),
    "did you mean 'knockout_window'? choices: knockout_window, knockout_value, ci, projection, cancel_mlp, cancel_attention, " +
    'head_mapping_side, mapping_subject_token, head_mapping_normalisation, recompute, attribution_target, attribution_reduction');
  t.is(hintOf(source, 1),
    'allowed: bootstrap_percentile (95% percentile bootstrap over examples, 1000 resamples with a fixed seed (as seaborn draws it)); ' +
    'none (no interval; means only)');
});

test('a choice made twice', (t) => {
  t.deepEqual(body('choose ci = none\nchoose ci = none\n'), ["5:1 choice 'ci' is chosen twice"]);
});

// ---- position sets ----------------------------------------------------------------------------

test('an unknown position set, with a suggestion', (t) => {
  const source = `${header}\npositions relation = nonsubjct - subject_next\n`;
  t.deepEqual(problems(source), ["4:22 unknown position set 'nonsubjct'"]);
  t.is(hintOf(source), "did you mean 'nonsubject'?");
});

test('position sets defined in terms of themselves', (t) => {
  t.deepEqual(body('positions a = b + last\npositions b = a - [0]\n'), ["5:15 position set 'a' is defined in terms of itself"]);
});

test('redefining a built-in set, a duplicate set, a set named like a parameter', (t) => {
  t.deepEqual(body('positions subject = last\npositions r = last\npositions r = [0]\npositions model = last\n'), [
    "4:11 'subject' is a built-in position set and cannot be redefined",
    "6:11 duplicate position set 'r'",
    "7:11 'model' is already a parameter",
  ]);
});

// ---- layers and heads -------------------------------------------------------------------------

test('a layer out of range, in every place a layer appears', (t) => {
  t.deepEqual(body([
    'param big = 40',
    'experiment e {',
    '  for l in layers 3..12',
    '  block subject -> last at layers 52',
    '  block subject -> last at layers 0..big',
    '  block subject -> last at layers window(12, 3)',
    '  measure rank',
    '}',
  ].join('\n')), [
    "6:7 warning: sweep variable 'l' is never used",
    '6:22 layer 12 is out of range: the model has 12 layers (0..11)',
    '7:35 layer 52 is out of range: the model has 12 layers (0..11)',
    '8:38 layer 40 is out of range: the model has 12 layers (0..11)',
    '9:42 layer 12 is out of range: the model has 12 layers (0..11)',
  ]);
});

test('a layer out of range that comes from a parameter says so in the hint', (t) => {
  const source = `${header}\nparam top = 30\nexperiment e {\n  block subject -> last at layers top\n  measure rank\n}\n`;
  t.deepEqual(problems(source), ['6:35 layer 30 is out of range: the model has 12 layers (0..11)']);
  t.is(hintOf(source), "parameter 'top' (line 4) is 30; layers are numbered from 0 (the first block)");
});

test('the out-of-range message for a 48-layer model', (t) => {
  const r = run(`${header}\nexperiment e {\n  block subject -> last at layers 52\n  measure rank\n}\n`,
    { shape: { layers: 48, heads: 25, vocab: 50257 } });
  t.deepEqual(r.diagnostics.map((d) => d.message), ['layer 52 is out of range: the model has 48 layers (0..47)']);
});

test('an empty layer range', (t) => {
  t.deepEqual(body('experiment e {\n  block subject -> last at layers 5..3\n  measure rank\n}\n'), ['5:35 empty layer range 5..3']);
});

test('a window smaller than one layer', (t) => {
  t.deepEqual(body('param w = 0\nexperiment e {\n  block subject -> last at layers window(3, 0)\n  block subject -> last at layers window(3, w)\n  measure rank\n}\n'), [
    '6:45 window size must be at least 1, got 0',
    '7:45 window size must be at least 1, got 0',
  ]);
  t.deepEqual(body('experiment e {\n  for k in layers 0..3\n  block subject -> last at layers window(5, k)\n  measure rank\n}\n'),
    ["6:45 window size must be at least 1, but sweep variable 'k' takes the value 0"]);
});

test('a window cannot be swept over', (t) => {
  t.deepEqual(body('experiment e {\n  for l in layers window(3, 3)\n  block subject -> last at layers l\n  measure rank\n}\n'),
    ['5:19 a layer sweep cannot use window(...)']);
});

test('heads out of range, and sweep variables as heads', (t) => {
  t.deepEqual(body('experiment e {\n  for l in layers all\n  block subject -> last at layers l heads 0, 4, l\n  measure rank\n}\n'), [
    '6:46 head 4 is out of range: the model has 4 heads per layer (0..3)',
    "6:49 sweep variable 'l' cannot select heads",
  ]);
});

// ---- sweeps -----------------------------------------------------------------------------------

test('a layer variable used as a position set, and the other way round', (t) => {
  const source = `${header}\nexperiment e {\n  for l in layers all\n  for p in positions subject, last\n  block l -> last at layers p\n  measure rank\n}\n`;
  t.deepEqual(problems(source), [
    "7:9 sweep variable 'l' ranges over layers, but a position set is expected here",
    "7:29 sweep variable 'p' ranges over position sets, but a layer is expected here",
  ]);
});

test('duplicate sweep variables, and variables named like parameters or sets', (t) => {
  t.deepEqual(body([
    'param w = 3',
    'positions rel = nonsubject',
    'experiment e {',
    '  for l in layers all',
    '  for l in layers 1',
    '  for w in layers 1',
    '  for subject in positions last',
    '  for rel in positions last',
    '  block last -> last at layers l',
    '  measure rank',
    '}',
  ].join('\n')), [
    "8:7 duplicate sweep variable 'l'",
    "9:7 sweep variable 'w' has the name of a parameter",
    "10:7 sweep variable 'subject' has the name of a built-in position set",
    "11:7 sweep variable 'rel' has the name of a position set",
  ]);
});

test("a sweep's values cannot use sweep variables", (t) => {
  t.deepEqual(body('experiment e {\n  for p in positions subject\n  for q in positions p + last\n  block q -> last at layers 1\n  measure rank\n}\n'),
    ["6:22 sweep variable 'p' cannot be used in a sweep's values"]);
});

test('an unknown name where a layer is expected', (t) => {
  const source = `${header}\nparam window = 3\nexperiment e {\n  for l in layers all\n  block subject -> last at layers window(l, windo)\n  measure rank\n}\n`;
  t.deepEqual(problems(source), ["7:45 unknown name 'windo'"]);
  t.is(hintOf(source), "did you mean 'window'?");
});

test('warnings: an unused sweep variable, a layer listed twice', (t) => {
  const r = run(`${header}\nexperiment e {\n  for l in layers 1, 0..2\n  measure rank\n}\n`);
  t.deepEqual(r.diagnostics.map((d) => `${d.span.line}:${d.span.column} ${d.severity}: ${d.message}`), [
    "5:3 warning: layer 1 appears more than once in the sweep over 'l'",
    "5:7 warning: sweep variable 'l' is never used",
  ]);
  t.truthy(r.program, 'warnings do not stop the program');
});

test('a warning: a block from the last token into the subject, which a causal model never attends', (t) => {
  const r = run(`${header}\nexperiment e {\n  block last -> subject_last at layers 0\n  block subject -> last at layers 0\n  measure rank\n}\n`);
  t.deepEqual(r.diagnostics.map((d) => `${d.span.line}:${d.span.column} ${d.severity}: ${d.message} (${d.hint})`), [
    '5:3 warning: block last -> subject_last acts only where the subject ends the prompt: an earlier position never reads the last token ' +
      '(to stop the last token reading the subject, write block subject_last -> last (block FROM -> TO: what TO reads from FROM))',
  ]);
  t.truthy(r.program, 'warnings do not stop the program');
});

// ---- measures ---------------------------------------------------------------------------------

test('an experiment without a measure', (t) => {
  const source = `${header}\nexperiment flow {\n  block subject -> last at layers 1\n}\n`;
  t.deepEqual(problems(source), ["4:12 experiment 'flow' has no measure statement"]);
  t.is(hintOf(source), 'add: measure probability_change, probability, rank');
});

test('unknown and repeated measures', (t) => {
  const source = `${header}\nexperiment e {\n  measure rnk, rank\n  measure rank\n}\n`;
  t.deepEqual(problems(source), ["5:11 unknown measure 'rnk'", "6:11 measure 'rank' is listed twice"]);
  t.is(hintOf(source),
    "did you mean 'rank'? measures: probability_change, probability, rank; probes: attributes_rate, extraction, target_rank, top_tokens, norm, attention_weight, attribution, integrated_gradients");
});

// ---- many errors, and the text format -----------------------------------------------------------

test('several semantic errors are reported in one pass, in source order', (t) => {
  t.deepEqual(body([
    'filter maybe',
    'experiment e {',
    '  for l in layers all',
    '  block subjekt -> last at layers window(l, 0)',
    '  measure rank',
    '}',
  ].join('\n')), [
    "4:8 unknown filter value 'maybe'",
    "7:9 unknown position set 'subjekt'",
    '7:45 window size must be at least 1, got 0',
  ]);
});

test('every diagnostic has a hint', (t) => {
  const sources = [
    'param a = \nfoo\n',
    `${header}\nfilter x\nexperiment e {\n for l in layers all\n block l -> q at layers 99 heads 9\n measure x\n}\n`,
  ];
  for (const s of sources) {
    for (const d of run(s).diagnostics) t.true((d.hint ?? '').length > 0, d.message);
  }
});

test('formatDiagnostics: location, message, source line with a caret, hint', (t) => {
  const source = `${header}\nexperiment e {\n\tblock subject -> last at layers 52\n  measure rank\n}\n`;
  const r = run(source);
  t.is(formatDiagnostics(r.diagnostics, source), [
    `${FILE}:5:34: error: layer 52 is out of range: the model has 12 layers (0..11)`,
    '  5 |     block subject -> last at layers 52',
    '    |                                     ^',
    '  hint: layers are numbered from 0 (the first block)',
    '',
  ].join('\n'));
});

test('formatDiagnostics: command-line errors have no source excerpt', (t) => {
  const source = `${header}\n`;
  const r = run(source, { overrides: { nope: '1' } });
  t.is(formatDiagnostics(r.diagnostics, source), [
    "<command line>:1:1: error: unknown parameter 'nope' in --set nope=1",
    '  hint: this file declares: model',
    '',
  ].join('\n'));
});
