// Hostile tokenizers: checked against the model when loading, with a message naming the
// tokenizer file, its ids and the model's embedding rows. Fewer ids than rows is normal
// (GPT-J: 50,257 tokens, 50,400 rows) and passes.

import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Results } from '../../src/measure/schema.js';
import { noStack, program, Sandbox, tinyGpt2 } from './sandbox.js';

const tinyGptj = join(tinyGpt2, '../tiny-gptj/');

interface TokenizerJson { model: { vocab: Record<string, number>; unk_token?: string }; added_tokens: { id: number; content: string }[] }

const tokenizer = (): TokenizerJson => JSON.parse(readFileSync(join(tinyGpt2, 'tokenizer.json'), 'utf8')) as TokenizerJson;

function refusedAtCheck(t: import('ava').ExecutionContext, s: Sandbox, json: TokenizerJson, lines: string[], message: RegExp): void {
  const file = s.write('tok/tokenizer.json', json);
  const r = s.dissect('check', s.write('x.dissect', program({ tokenizer: file }, ...lines)));
  t.is(r.code, 1, r.stdout);
  t.regex(r.stderr, message);
  t.true(noStack(r.stderr), r.stderr);
  t.deepEqual(r.touched, []);
}

test('more ids than the model has embedding rows, or one huge id, is refused naming the file, the count and the rows', (t) => {
  const s = new Sandbox();
  const larger = tokenizer();
  for (let i = 0; i < 10; i++) larger.model.vocab[`Zorb${i}`] = 264 + i;
  refusedAtCheck(t, s, larger, [],
    /^dissect: error: the tokenizer .*tok\/tokenizer\.json has ids up to 273 \("Zorb9", 274 ids\), but the model .*tiny-gpt2\/model\.onnx has 264 token embedding rows \(ids 0\.\.263\)\n  hint: use the tokenizer the model was trained with/);
  const huge = tokenizer();
  huge.added_tokens.push({ id: 1_000_000, content: '<|huge|>' });
  refusedAtCheck(t, s, huge, [], /has ids up to 1000000 \("<\|huge\|>", 1000001 ids\), but the model .* has 264 token embedding rows/);
});

test('a missing unk_token, and a missing BOS with `bos prepend`, are refused when loading', (t) => {
  const s = new Sandbox();
  const noUnk = tokenizer();
  delete noUnk.model.vocab['[UNK]'];
  noUnk.added_tokens = noUnk.added_tokens.filter((a) => a.content !== '[UNK]');
  refusedAtCheck(t, s, noUnk, [], /tokenizer\.json declares the unknown-token "\[UNK\]" \(unk_token\), but its vocabulary has no such token/);
  const noBos = tokenizer();
  delete noBos.model.vocab['<|endoftext|>'];
  noBos.added_tokens = noBos.added_tokens.filter((a) => a.content !== '<|endoftext|>');
  refusedAtCheck(t, s, noBos, ['bos prepend'], /bos prepend: tokenizer .*tokenizer\.json has no <\|endoftext\|>, bos_token or eos_token/);
});

test('fewer tokenizer ids than embedding rows (as GPT-J) passes: the tiny GPT-J has 272 rows for 264 tokens', (t) => {
  const s = new Sandbox();
  const source = program({ model: join(tinyGptj, 'model.onnx'), tokenizer: join(tinyGptj, 'tokenizer.json'), dataset: join(tinyGptj, 'facts.json') });
  const r = s.dissect('run', s.write('x.dissect', source), '--out', s.out, '--limit', '2');
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^examples: 2 of 2 kept$/m);
  t.deepEqual(r.touched, []);
});

test('a top-1 beyond a smaller tokenizer\'s ids is recorded with an empty token, not a crash', (t) => {
  const s = new Sandbox();
  const smaller = tokenizer();
  smaller.model.vocab = Object.fromEntries(Object.entries(smaller.model.vocab).filter(([, id]) => id < 200));
  const file = s.write('tok/tokenizer.json', smaller);
  const check = s.dissect('check', s.write('x.dissect', program({ tokenizer: file }, 'filter none')));
  t.regex(check.stdout, /^inputs: tokenizer ids 0\.\.199 for 264 embedding rows;/m);
  const r = s.dissect('run', s.path('x.dissect'), '--out', s.out, '--limit', '20');
  t.is(r.code, 0, r.stderr);
  const results = JSON.parse(readFileSync(join(s.out, 'results.json'), 'utf8')) as Results;
  const beyond = results.examples.filter((e) => e.cleanTop1.id >= 200);
  t.true(beyond.length > 0);
  t.true(beyond.every((e) => e.cleanTop1.token === ''));
  t.true(results.examples.filter((e) => e.cleanTop1.id < 200).every((e) => e.cleanTop1.token !== ''));
  t.deepEqual(r.touched, []);
});
