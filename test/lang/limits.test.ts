// Bounds that keep a typo from becoming unbounded work: rows per fact, counted before any
// sweep is listed, and the nesting of expressions (parentheses, long unions and sums,
// chains of definitions), each refused with a position instead of an abort or a hang.

import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../src/lang/grammar-export.js';
import { frontEnd, maxNesting, totalRowsError } from '../../src/lang/index.js';
import type { ModelShape } from '../../src/lang/program.js';
import { planProgram } from '../../src/plan/plan.js';
import { brief, FILE, header, run, syntaxProblems } from './helpers.js';

const eightLayers: ModelShape = { layers: 8, heads: 4, vocab: 264 };
const gpt2xl: ModelShape = { layers: 48, heads: 25, vocab: 50257 };

/** An experiment `e` with these lines, on the 8-layer shape. */
function experiment(...lines: string[]) {
  return run(`${header}\nexperiment e {\n${lines.map((l) => `  ${l}`).join('\n')}\n}\n`, { shape: eightLayers });
}

test('a range far outside the model is one error, and nothing of its size is built', (t) => {
  const started = Date.now();
  const r = experiment('for h in hidden 0..999999999', 'measure target_rank of hidden h');
  t.deepEqual(brief(r.diagnostics), ['5:22 hidden 999999999 is out of range: hidden states are 0..8 (0 = the embedding output)']);
  t.true(Date.now() - started < 2000);
});

test('the rows of an experiment are counted before its sweeps are listed, and refused over the limit', (t) => {
  const r = experiment('for l in layers all', 'for t in positions each -100000..-1', 'block t -> last at layers l', 'measure probability');
  t.deepEqual(brief(r.diagnostics), ["4:12 experiment 'e' gives 800,000 rows per fact, more than the limit of 100,000"]);
  t.is(r.diagnostics[0]!.hint, 'its sweeps give 8 (l) × 100,000 (t); narrow one, or if you mean it, raise the limit: --max-rows 800000');
  const twice = experiment('for s in positions each -100000..-1', 'for t in positions each -100000..-1', 'block s + t -> last at layers 0', 'measure probability');
  t.deepEqual(brief(twice.diagnostics), ["4:12 experiment 'e' gives 10,000,000,000 rows per fact, more than the limit of 100,000"]);
});

test('a sweep listing its values many times is counted too, and warned about once it fits', (t) => {
  const many = experiment(`for l in layers ${Array(20_000).fill('all').join(', ')}`, 'block last -> last at layers l', 'measure rank');
  t.deepEqual(brief(many.diagnostics), ["4:12 experiment 'e' gives 160,000 rows per fact, more than the limit of 100,000"]);
  const twice = experiment('for l in layers all, 3', 'block last -> last at layers l', 'measure rank');
  t.deepEqual(brief(twice.diagnostics), ["5:3 warning: layer 3 appears more than once in the sweep over 'l'"]);
});

test('experiments within the limit each but over it together: the one that crosses it is reported, with every count', (t) => {
  const r = run(`${header}\n${['a', 'b', 'c'].map((name) => `experiment ${name} {\n  for t in positions each -60000..-1\n  block t -> last at layers 0\n  measure rank\n}`).join('\n')}\n`,
    { shape: eightLayers });
  t.deepEqual(brief(r.diagnostics), ["9:12 the experiments up to 'b' give 120,000 rows per fact, more than the limit of 100,000"]);
  t.is(r.diagnostics[0]!.hint,
    'rows per fact: a 60,000, b 60,000; narrow a sweep, or if you mean it, raise the limit: --max-rows 180000 (the experiments from here on are checked once they fit)');
});

test('raised limits let the same program through, and it plans to that many rows', (t) => {
  const source = `${header}\nexperiment e {\n  for l in layers all\n  for t in positions each -20000..-1\n  block t -> last at layers l\n  measure probability\n}\n`;
  const r = frontEnd(source, FILE, { shapeOf: () => eightLayers, rowLimits: { perFact: 160_000, total: 1e9 } });
  t.deepEqual(brief(r.diagnostics), []);
  t.is(planProgram(r.program!, eightLayers).passesPerExample, 1 + 160_000);
});

test('the total: rows per fact × facts, at the dataset statement, with the flag that lets it through', (t) => {
  const dataset = { file: FILE, line: 3, column: 1 };
  const limits = { perFact: 100_000, total: 100_000_000 };
  t.is(totalRowsError(dataset, 1_000, 100_000, limits), undefined);
  const over = totalRowsError(dataset, 1_000, 100_001, limits)!;
  t.deepEqual(brief([over]), ['3:1 100,001 facts × 1,000 rows per fact make 100,001,000 rows, more than the limit of 100,000,000']);
  t.is(over.hint, 'run fewer facts (run --limit N or --sample N) or, if you mean it, raise the limit: --max-rows 100000/100001000');
});

test('the paper on GPT-2 XL (its preset) is far inside the limits', (t) => {
  const file = join(repoRoot, 'examples/paper.dissect');
  const preset = JSON.parse(readFileSync(join(repoRoot, 'examples/presets/gpt2-xl.json'), 'utf8')) as Record<string, number>;
  const overrides = Object.fromEntries(Object.entries(preset).map(([k, v]) => [k, String(v)]));
  const r = frontEnd(readFileSync(file, 'utf8'), file, { overrides, shapeOf: () => gpt2xl });
  t.deepEqual(brief(r.diagnostics), []);
  const rows = planProgram(r.program!, gpt2xl).passesPerExample - 1;
  // flow 48×3, heatmap 48×8, enrichment 49×4 + 1, cancel 40 + 40 + 1, extraction 48, control A 48×5 and 48×11, control B 48×3, lens 49, attribution 49
  t.is(rows, 144 + 384 + 196 + 1 + 81 + 48 + 240 + 528 + 144 + 49 + 49);
  // CounterFact has 21,919 facts: the whole of it fits the total too
  t.is(totalRowsError(r.program!.dataset.span, rows, 21_919, { perFact: 100_000, total: 100_000_000 }), undefined);
});

test('an index checked over every binding in one pass names the binding at the bound it breaks', (t) => {
  const r = experiment('for l in layers all', 'for h in hidden all', 'block last -> last at layers l - h', 'measure rank');
  t.deepEqual(brief(r.diagnostics), ['7:32 layer -8 is out of range when l = 0, h = 8: the model has 8 layers (0..7)']);
  const wide = experiment('for l in layers 0..3', 'for k in layers 4..7', 'block last -> last at layers window(l, k - l - 3)', 'measure rank');
  t.deepEqual(brief(wide.diagnostics), ['7:42 window size must be at least 1, got -2 when l = 3, k = 4']);
});

test('a layer range under within may reach far past the model: it is cut to the model before it is listed', (t) => {
  const r = experiment('for s in layers all', 'cancel mlp at layers s..s + 999999999 within 2..5', 'measure rank');
  t.deepEqual(brief(r.diagnostics), ['6:24 warning: layer set s..s + 999999999 within 2..5 is empty when s = 6']);
  const rows = planProgram(r.program!, eightLayers).experiments[0]!.rows;
  t.deepEqual(rows.map((row) => row.gates[0]!.layers), [[2, 3, 4, 5], [2, 3, 4, 5], [2, 3, 4, 5], [3, 4, 5], [4, 5], [5], [], []]);
});

test('a site override range is bounded before the model is read', (t) => {
  const r = run(`${header}\nsite mlp_act at layers 0..999999999 = "x{layer}"\n`, { shape: eightLayers });
  t.deepEqual(brief(r.diagnostics), ['4:24 layer 999999999 is out of range: a site override names layers 0..9999']);
});

const deep = maxNesting + 1;

test('parentheses nested deeper than the limit are refused before parsing, at the first one too deep', (t) => {
  const at = (n: number) => brief(run(`${header}\npositions p = ${'('.repeat(n)}subject${')'.repeat(n)}\n`).diagnostics);
  t.deepEqual(at(maxNesting), []);
  t.deepEqual(at(deep), [`4:${15 + maxNesting} too deeply nested: more than ${maxNesting} parentheses open here`]);
  t.deepEqual(at(1_000), [`4:${15 + maxNesting} too deeply nested: more than ${maxNesting} parentheses open here`]);
});

test('unions of thousands of terms are refused at the expression', (t) => {
  const union = (n: number) => brief(run(`${header}\npositions p = ${Array(n).fill('subject').join(' + ')}\n`).diagnostics);
  t.deepEqual(union(maxNesting + 1), []);
  t.deepEqual(union(5_000), [`4:15 position set nested too deeply: more than ${maxNesting} levels`]);
});

test('integer expressions of thousands of terms are refused at the expression', (t) => {
  const sum = (n: number) => brief(experiment(`block last -> last at layers 1${' + 0'.repeat(n)}`, 'measure rank').diagnostics);
  t.deepEqual(sum(maxNesting), []);
  t.deepEqual(sum(10_000), [`5:32 integer expression nested too deeply: 10,000 operators, more than ${maxNesting}`]);
});

test('long chains of positions definitions are refused, in either order, at the definition that goes too deep', (t) => {
  const n = 1_000;
  const forward = Array.from({ length: n }, (_, i) => `positions p${i} = ${i === 0 ? 'subject' : `p${i - 1} + [${i}]`}`);
  t.deepEqual(brief(run(`${header}\n${forward.join('\n')}\n`).diagnostics), [`${5 + maxNesting}:${15 + String(maxNesting + 1).length} position set nested too deeply: more than ${maxNesting} levels`]);
  const backward = Array.from({ length: n }, (_, i) => `positions p${i} = ${i === n - 1 ? 'subject' : `p${i + 1} + [${i}]`}`);
  // resolved from p0 down: the chain is cut where it gets too deep, and again below that
  const errors = brief(run(`${header}\n${backward.join('\n')}\n`).diagnostics);
  t.deepEqual(errors, [260, 517, 774].map((line) => `${line}:18 position set nested too deeply: more than ${maxNesting} levels`));
});

test('names too long for a suggestion get the plain hint, without comparing them letter by letter', (t) => {
  const long = 'x'.repeat(50_000);
  const started = Date.now();
  const r = run(`${header}\nparam ${long} = 1\nexperiment e {\n  block last -> last at layers ${long}y\n  measure rank\n}\n`, { shape: eightLayers });
  t.deepEqual(r.diagnostics.map((d) => d.hint), ['expected a layer: an integer, an integer parameter or a layer or hidden sweep variable']);
  t.true(Date.now() - started < 2000);
  const near = run(`${header}\nparam firsts = 1\nexperiment e {\n  block last -> last at layers firts\n  measure rank\n}\n`, { shape: eightLayers });
  t.deepEqual(near.diagnostics.map((d) => d.hint), ["did you mean 'firsts'?"]);
});

test('after 100 syntax errors the parser stops, and says so at the last one', (t) => {
  const started = Date.now();
  const errors = syntaxProblems(`experiment e {\n${'  for l in layers all + last\n'.repeat(5_000)}}\n`);
  t.is(errors.length, 101);
  t.is(errors[99], "101:23 expected '}', found '+'");
  t.is(errors[100], '101:23 too many syntax errors: the first 100 are reported');
  t.true(Date.now() - started < 5000);
});

test('a file over a million characters is refused at the line where it crosses the limit', (t) => {
  const line = 'param x = 1\n'; // 12 characters
  t.deepEqual(syntaxProblems(line.repeat(83_333)), []);
  t.deepEqual(syntaxProblems(line.repeat(83_334)), ['83334:1 the file is too long: 1,000,008 characters, more than 1,000,000']);
});
