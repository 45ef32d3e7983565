import test from 'ava';
import { encode as gptEncode } from 'gpt-3-encoder';
import type { Fact } from '../../src/run/dataset.js';
import { isRunError, orThrow, type RunError } from '../../src/run/errors.js';
import { prepareExample, type Example } from '../../src/run/example.js';
import { resolvePositions } from '../../src/run/positions.js';
import { loadTokenizer, type Tokenizer } from '../../src/run/tokenizer.js';
import { writeGpt2Tokenizer, writeWordLevelTokenizer } from './_tokenizers.js';

const gpt2 = orThrow(loadTokenizer(writeGpt2Tokenizer()));
const words = orThrow(loadTokenizer(writeWordLevelTokenizer('[BOS]')));
const wordsNoBos = orThrow(loadTokenizer(writeWordLevelTokenizer()));

const beats: Fact = { id: '1', prompt: 'Beats Music is owned by', subject: 'Beats Music', target: 'Apple', record: 2 };

type Positions = Parameters<typeof prepareExample>[3];

function ok(fact: Fact, tk: Tokenizer, bos: 'none' | 'prepend', positions?: Positions): Example {
  const e = prepareExample(fact, tk, bos, positions);
  if (isRunError(e)) throw new Error(e.message);
  return e;
}
function err(fact: Fact, tk: Tokenizer, bos: 'none' | 'prepend', positions?: Positions): RunError {
  const e = prepareExample(fact, tk, bos, positions);
  if (!isRunError(e)) throw new Error('expected an error');
  return e;
}

test('GPT-2, no BOS: the paper\'s setting', (t) => {
  const e = ok(beats, gpt2, 'none');
  t.deepEqual(e.ids, [3856, 1381, 7849, 318, 6898, 416]);
  t.deepEqual(e.subject, { start: 0, end: 3 });
  t.is(e.n, 6);
  t.is(e.lastIndex, 5);
  t.false(e.bos);
  t.true(e.subjectAtZero);
  t.is(e.targetFirstToken, gptEncode(' Apple')[0]!);
  t.is(e.targetFirstToken, 4196);
  t.deepEqual(e.targetIds, [4196]);
  t.deepEqual(resolvePositions({ kind: 'named', name: 'nonsubject' }, e), [3, 4]);
});

test('GPT-2, BOS prepended: ids and subject shift by one', (t) => {
  const e = ok(beats, gpt2, 'prepend');
  t.deepEqual(e.ids, [50256, 3856, 1381, 7849, 318, 6898, 416]);
  t.deepEqual(e.offsets[0], [0, 0]);
  t.deepEqual(e.offsets[1], [0, 2]);
  t.deepEqual(e.subject, { start: 1, end: 4 });
  t.is(e.n, 7);
  t.true(e.bos);
  t.false(e.subjectAtZero);
  t.deepEqual(resolvePositions({ kind: 'named', name: 'nonsubject' }, e), [0, 4, 5]);
});

test('GPT-2: multi-token target, first token; a target that already has its space', (t) => {
  const f: Fact = { id: '0', prompt: 'The mother tongue of Danielle Darrieux is', subject: 'Danielle Darrieux', target: 'Serbo-Croatian', record: 1 };
  const e = ok(f, gpt2, 'none');
  t.deepEqual(e.targetIds, gptEncode(' Serbo-Croatian'));
  t.is(e.targetFirstToken, gptEncode(' Serbo-Croatian')[0]!);
  t.deepEqual(e.subject, { start: 4, end: 8 });
  t.false(e.subjectAtZero);
  t.is(ok({ ...f, target: ' French' }, gpt2, 'none').targetFirstToken, gptEncode(' French')[0]!);
});

test('word-level: target tokenized as is; BOS from tokenizer_config', (t) => {
  const f: Fact = { id: 'x', prompt: 'The Eiffel Tower is in', subject: 'Eiffel Tower', target: 'Paris', record: 3 };
  const e = ok(f, words, 'none');
  t.deepEqual(e.ids, [8, 9, 10, 4, 11]);
  t.deepEqual(e.subject, { start: 1, end: 3 });
  t.is(e.targetFirstToken, 12);
  const p = ok(f, words, 'prepend');
  t.deepEqual(p.ids, [1, 8, 9, 10, 4, 11]);
  t.deepEqual(p.subject, { start: 2, end: 4 });
});

test('errors: subject not found, no BOS to prepend, empty prompt', (t) => {
  const missing = err({ ...beats, subject: 'Beats Electronics' }, gpt2, 'none');
  t.is(missing.code, 'subject-not-found');
  t.is(missing.record, 2);
  t.is(missing.message, 'fact 1 (record 2): subject "Beats Electronics" does not occur in prompt "Beats Music is owned by"');

  const f: Fact = { id: 'x', prompt: 'The Eiffel Tower is in', subject: 'Eiffel Tower', target: 'Paris', record: 3 };
  const noBos = err(f, wordsNoBos, 'prepend');
  t.is(noBos.code, 'example');
  t.regex(noBos.message, /has no <\|endoftext\|>, bos_token or eos_token/);

  t.is(err({ ...beats, prompt: '' }, gpt2, 'none').code, 'example');
  t.regex(err({ ...beats, prompt: '   ', subject: ' ' }, words, 'none').message, /has no tokens/);
});

test('a prompt with more tokens than the model has positions is an error value; as many is fine', (t) => {
  const f: Fact = { id: 'x', prompt: 'The Eiffel Tower is in', subject: 'Eiffel Tower', target: 'Paris', record: 3 };
  const table = { count: 5, table: 'wpe' };
  t.is(ok(f, words, 'none', table).n, 5);
  const long = err(f, words, 'prepend', table);
  t.is(long.code, 'prompt-too-long');
  t.is(long.record, 3);
  t.is(long.message, 'fact x (record 3): the prompt has 6 tokens (BOS included), but the model takes at most 5 (its position table wpe has 5 rows)');
  t.is(ok(f, words, 'prepend', { count: 6, table: 'wpe' }).n, 6);
});
