// Parsing: every construct, the shape of the AST, and keywords used as names.

import test from 'ava';
import type { ExperimentStmt, ForStmt, PositionsStmt } from '../../src/lang/ast.js';
import { parseDissect } from '../../src/lang/index.js';
import { keywords, tokenize } from '../../src/lang/lexer.js';
import type { PositionSet } from '../../src/lang/program.js';
import { blocks, FILE, header, run } from './helpers.js';

function positionsOf(expr: string): PositionSet | undefined {
  const r = run(`${header}\npositions p = last\nexperiment e {\n  block ${expr} -> last at layers 0\n  measure rank\n}\n`);
  return blocks(r.program?.experiments[0]?.interventions)[0]?.source;
}

test('comments run to the end of the line and are ignored', (t) => {
  const r = parseDissect('# only a comment\nparam x = 1 # trailing\n#\n', FILE);
  t.deepEqual(r.diagnostics, []);
  t.is(r.ast!.statements.length, 1);
});

test('an empty file parses to no statements', (t) => {
  t.deepEqual(parseDissect('', FILE).ast?.statements, []);
});

test('the lexer knows exactly these keywords', (t) => {
  t.deepEqual([...keywords], [
    'param', 'model', 'tokenizer', 'dataset', 'fields', 'filter', 'bos', 'choose', 'positions', 'experiment',
    'for', 'in', 'layers', 'block', 'at', 'heads', 'measure', 'all', 'window',
    'attributes', 'hidden', 'within', 'cancel', 'patch', 'with', 'mean', 'of', 'layer', 'attention_weight', 'summarize',
    'head_mappings', 'top', 'each', 'without', 'corrupted', 'site',
  ]);
});

test('a keyword followed by letters is a name', (t) => {
  t.deepEqual(tokenize('models windows all_ in2').tokens.map((tok) => tok.tokenType.name), ['Identifier', 'Identifier', 'Identifier', 'Identifier']);
});

test('string escapes: \\" and \\\\ only; other backslashes stay', (t) => {
  const r = run('param p = "a\\"b\\\\c\\d"\nmodel "m" tokenizer "t"\ndataset known "k"\n');
  t.is(r.program!.params.p, 'a"b\\c\\d');
});

test('param defaults are strings or integers', (t) => {
  const r = parseDissect('param a = "x"\nparam b = 42\n', FILE);
  t.deepEqual(r.ast!.statements.map((s) => s.kind === 'param' && [s.name.name, s.value.kind, s.value.value]), [
    ['a', 'string', 'x'],
    ['b', 'int', 42],
  ]);
});

test('keywords can be parameter names, as in the documented header', (t) => {
  const source = [
    'param model = "m.onnx"', 'param tokenizer = "t.json"', 'param dataset = "d.json"', 'param window = 9',
    'model model tokenizer tokenizer', 'dataset counterfact dataset',
    'experiment e {', '  for l in layers all', '  block subject -> last at layers window(l, window)', '  measure rank', '}',
  ].join('\n');
  const r = run(source);
  t.deepEqual(r.diagnostics, []);
  t.deepEqual(blocks(r.program!.experiments[0]!.interventions)[0]!.layers,
    { kind: 'window', center: { kind: 'var', name: 'l' }, size: { kind: 'int', value: 9 } });
});

test('union and difference are left-associative at one precedence level', (t) => {
  t.deepEqual(positionsOf('subject - last + [0]'), {
    kind: 'union',
    left: { kind: 'difference', left: { kind: 'named', name: 'subject' }, right: { kind: 'named', name: 'last' } },
    right: { kind: 'indices', indices: [0] },
  });
  t.deepEqual(positionsOf('subject - (last + [0])'), {
    kind: 'difference',
    left: { kind: 'named', name: 'subject' },
    right: { kind: 'union', left: { kind: 'named', name: 'last' }, right: { kind: 'indices', indices: [0] } },
  });
});

test('every named position set, explicit indices and a positions name', (t) => {
  for (const name of ['subject', 'nonsubject', 'last', 'subject_first', 'subject_last', 'subject_next'] as const) {
    t.deepEqual(positionsOf(name), { kind: 'named', name });
  }
  t.deepEqual(positionsOf('[0, 2, -1]'), { kind: 'indices', indices: [0, 2, -1] });
  t.deepEqual(positionsOf('p'), { kind: 'named', name: 'last' });
});

test('positions names are inlined, in any order of definition', (t) => {
  const r = run(`${header}\nexperiment e {\n  block b -> last at layers 0\n  measure rank\n}\npositions b = a + [1]\npositions a = subject\n`);
  t.deepEqual(blocks(r.program!.experiments[0]!.interventions)[0]!.source,
    { kind: 'union', left: { kind: 'named', name: 'subject' }, right: { kind: 'indices', indices: [1] } });
});

test('layer sets: all, n, a..b, window(c, k) with literals, params and sweep variables', (t) => {
  const r = run(`${header}\nparam k = 5\nparam top = 11\nexperiment e {\n  for l in layers 1..3\n` +
    '  block last -> last at layers all\n  block last -> last at layers k\n  block last -> last at layers l..top\n' +
    '  block last -> last at layers window(l, k)\n  block last -> last at layers window(0, l)\n  measure rank\n}\n');
  t.deepEqual(r.diagnostics, []);
  t.deepEqual(blocks(r.program!.experiments[0]!.interventions).map((i) => i.layers), [
    { kind: 'all' },
    { kind: 'single', layer: { kind: 'int', value: 5 } },
    { kind: 'range', from: { kind: 'var', name: 'l' }, to: { kind: 'int', value: 11 } },
    { kind: 'window', center: { kind: 'var', name: 'l' }, size: { kind: 'int', value: 5 } },
    { kind: 'window', center: { kind: 'int', value: 0 }, size: { kind: 'var', name: 'l' } },
  ]);
});

test('heads: absent or all means every head; a list may use integer parameters', (t) => {
  const r = run(`${header}\nparam h = 2\nexperiment e {\n  block last -> last at layers 0\n` +
    '  block last -> last at layers 0 heads all\n  block last -> last at layers 0 heads 3, h, 0\n  measure rank\n}\n');
  t.deepEqual(blocks(r.program!.experiments[0]!.interventions).map((i) => i.heads), ['all', 'all', [3, 2, 0]]);
});

test('layer sweeps: all, single layers, ranges and lists of them', (t) => {
  const r = run(`${header}\nparam a = 4\nexperiment e {\n  for l in layers a, 0..2, 9\n  block last -> last at layers l\n  measure rank\n}\n`);
  t.deepEqual(r.program!.experiments[0]!.sweeps[0], {
    kind: 'layers', variable: 'l', values: [4, 0, 1, 2, 9], span: { file: FILE, line: 6, column: 3 },
  });
});

test('position sweep labels are the source text of each item, whitespace collapsed', (t) => {
  const r = parseDissect('experiment e {\n  for b in positions subject,last-[0] ,  ( subject\n   + last )\n}\n', FILE);
  const x = r.ast!.statements[0] as ExperimentStmt;
  const f = x.items[0] as ForStmt;
  t.is(f.domain.kind, 'positions');
  t.deepEqual(f.domain.kind === 'positions' && f.domain.items.map((i) => i.text), ['subject', 'last-[0]', '( subject + last )']);
});

test('sweeps are recorded outermost first, several blocks per experiment, several experiments per file', (t) => {
  const r = run(`${header}\nexperiment a {\n  for p in positions subject, last\n  for l in layers 0..1\n` +
    '  block p -> last at layers l\n  block subject -> p at layers 0\n  measure probability\n}\n' +
    'experiment b {\n  measure probability_change\n}\n');
  const [a, b] = r.program!.experiments;
  t.deepEqual(a!.sweeps.map((s) => s.variable), ['p', 'l']);
  t.is(a!.interventions.length, 2);
  t.deepEqual(a!.measures, ['probability']);
  t.is(b!.name, 'b');
  t.deepEqual(b!.measures, ['probability_change']);
});

test('AST spans are 1-based and point at the statement start', (t) => {
  const r = parseDissect('\n  positions rel = nonsubject - subject_next\n', FILE);
  const p = r.ast!.statements[0] as PositionsStmt;
  t.deepEqual([p.span.line, p.span.column, p.name.span.line, p.name.span.column], [2, 3, 2, 13]);
  t.is(p.expr.kind, 'binary');
});

test('parseDissect returns no AST when there are errors', (t) => {
  const r = parseDissect('param = 3\n', FILE);
  t.is(r.ast, undefined);
  t.is(r.diagnostics.length, 1);
});

test('a statement may span lines; statements need no separators', (t) => {
  const r = run('model "m.onnx"\n  tokenizer "t.json" dataset jsonl "q.jsonl"\n  fields prompt = "q",\n         subject = "s", target = "a"\n');
  t.deepEqual(r.diagnostics, []);
  t.is(r.program!.dataset.format, 'jsonl');
});

test('CRLF line endings and a byte-order mark change no line or column', (t) => {
  const source = `\uFEFF${header}\nexperiment e {\n  block subject -> last at layers 52\n  measure rank\n}\n`.replace(/\n/g, '\r\n');
  const r = run(source);
  t.deepEqual(r.diagnostics.map((d) => [d.span.line, d.span.column]), [[5, 35]]);
  const ok = run(source.replace('52', '5'));
  t.is(ok.program!.experiments[0]!.source, 'experiment e {\n  block subject -> last at layers 5\n  measure rank\n}');
});

test('a statement keyword at the start of a line is never read as a name', (t) => {
  // Without the rule, `1..` would take `measure` as its upper bound.
  t.deepEqual(parseDissect('experiment e {\n  for l in layers 1..\n  measure rank\n}\n', FILE).diagnostics.map((d) => d.message),
    ['expected an integer or a name, found the end of the line']);
  // On the same line a keyword is still a name.
  const r = run('param measure = 2\nmodel "m" tokenizer "t"\ndataset known "k"\nexperiment e {\n  for l in layers 1..measure\n  block last -> last at layers l\n  measure rank\n}\n');
  t.deepEqual(r.diagnostics, []);
  t.deepEqual(r.program!.experiments[0]!.sweeps[0]!.kind === 'layers' && r.program!.experiments[0]!.sweeps[0]!.values, [1, 2]);
});
