// Every limit `run` enforces that depends on the program and the model is found by `check`,
// from the same bound (the tokens a projection ranks: limits.ts's rankedTokens), defaults
// included, at the file:line:col of what exceeds it; `run` stops at the same place.

import test, { type ExecutionContext } from 'ava';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readModel, writeModel } from '../../src/onnx/proto.js';
import { buildVariants, DiagnosticsError, loadProgram, runProgram } from '../../src/pipeline/index.js';
import { tempDir } from '../temp.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const tiny = fileURLToPath(new URL('../../../generated/tiny-gpt2/', import.meta.url));

function dissect(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * A folder with the default model's tokenizer less its last token (263 tokens for the model's
 * 264 embedding rows, as GPT-J's tokenizer has fewer tokens than its embedding) and x.dissect.
 */
function program(lines: readonly string[], tokenizer: 'default' | 'one token short'): string {
  const dir = tempDir('check-limits');
  const tok = JSON.parse(readFileSync(join(tiny, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } };
  const last = Object.entries(tok.model.vocab).find(([, id]) => id === 263)![0];
  delete tok.model.vocab[last];
  writeFileSync(join(dir, 'short.json'), JSON.stringify(tok));
  const tokenizerPath = tokenizer === 'default' ? join(tiny, 'tokenizer.json') : join(dir, 'short.json');
  writeFileSync(join(dir, 'x.dissect'), [
    `model "${join(tiny, 'model.onnx')}" tokenizer "${tokenizerPath}"`,
    `dataset counterfact "${join(tiny, 'facts.json')}"`,
    ...lines,
    '',
  ].join('\n'));
  return dir;
}

/** `check` and `run` (the CLI) both refuse the program with `expected` (file:line:col: message) and a hint. */
function refusedAlike(t: ExecutionContext, dir: string, expected: string): void {
  const file = join(dir, 'x.dissect');
  const check = dissect('check', file);
  const run = dissect('run', file, '--out', join(dir, 'out'), '--limit', '1');
  for (const [what, r] of [['check', check], ['run', run]] as const) {
    t.is(r.code, 1, `${what}: ${r.stderr}`);
    t.true(r.stderr.startsWith(`${file}:${expected}\n`), `${what}: ${r.stderr}`);
    t.regex(r.stderr, /\n {2}hint: /, what);
  }
}

/** What `check` reports (the loader and the variants `check` and `run` share): the first diagnostic, as file:line:col: message. */
function checked(dir: string): string {
  try {
    buildVariants(loadProgram(join(dir, 'x.dissect')));
    return 'ok';
  } catch (e) {
    if (!(e instanceof DiagnosticsError)) throw e;
    const d = e.diagnostics[0]!;
    return `${d.span.line}:${d.span.column}: ${d.message}`;
  }
}

test('the default candidates (500) on the default model: check refuses them where run would', (t) => {
  const dir = program(['attributes json "attributes.json"', 'experiment e {', '  measure attributes_rate of hidden 1', '}'], 'default');
  refusedAlike(t, dir, '3:1: error: candidates 500 (the default) is larger than the vocabulary (264)');
});

test('a tokenizer with fewer tokens than the model bounds top_tokens, candidates and head_mappings top', (t) => {
  t.is(checked(program(['experiment e {', '  measure top_tokens 264 of hidden 1', '}'], 'one token short')),
    '4:22: top_tokens 264 is larger than the vocabulary (263)');
  t.is(checked(program(['attributes json "a.json" candidates 264', 'experiment e {', '  measure attributes_rate of hidden 1', '}'], 'one token short')),
    '3:37: candidates 264 is larger than the vocabulary (263)');
  t.is(checked(program(['head_mappings layers 0 top 264'], 'one token short')), '3:28: head_mappings top 264 is larger than the vocabulary (263)');
});

test('at the bound, check passes and the run compiles and runs', async (t) => {
  const dir = program(['experiment e {', '  measure top_tokens 263 of hidden 1', '}', 'head_mappings layers 0 top 263'], 'one token short');
  t.is(checked(dir), 'ok');
  const { results } = await runProgram(loadProgram(join(dir, 'x.dissect')), {
    out: join(dir, 'out'), selection: { limit: 1 }, batch: 8, device: 'cpu', command: ['test'],
  });
  t.is(results.experiments[0]!.tokens![0]!.tokens.length, 263);
  t.is(results.headMappings!.heads[0]!.pairs.length, 263);
});

test('a model the compiler cannot rewrite for the program is a check error at the model statement, as in run', async (t) => {
  // a tensor of the model takes the name of the input a knockout adds
  const dir = program(['experiment e {', '  block subject -> last at layers 0', '  measure probability', '}'], 'default');
  const model = readModel(join(tiny, 'model.onnx'));
  const node = model.graph!.node!.find((n) => n.opType === 'Softmax')!;
  const renamed = node.output![0]!;
  for (const n of model.graph!.node!) n.input = n.input!.map((i) => (i === renamed ? 'dissect_knockout' : i));
  node.output = ['dissect_knockout'];
  writeModel(join(dir, 'model.onnx'), model);
  writeFileSync(join(dir, 'x.dissect'), readFileSync(join(dir, 'x.dissect'), 'utf8').replace(join(tiny, 'model.onnx'), join(dir, 'model.onnx')));
  const expected = "1:1: the model cannot be compiled for this program: the model already has a tensor named 'dissect_knockout'; dissect reserves the dissect_ prefix";
  t.is(checked(dir), expected);
  const run = await t.throwsAsync(runProgram(loadProgram(join(dir, 'x.dissect')), {
    out: join(dir, 'out'), selection: { limit: 1 }, batch: 8, device: 'cpu', command: ['test'],
  }), { instanceOf: DiagnosticsError });
  const d = (run as DiagnosticsError).diagnostics[0]!;
  t.is(`${d.span.line}:${d.span.column}: ${d.message}`, expected);
});
