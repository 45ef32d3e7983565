import test from 'ava';
import { attributeSet, attributesRate } from '../../src/measure/attributes.js';
import { englishStopwords } from '../../src/measure/stopwords.js';

const paper = { minLength: 3, stopwords: 'english' } as const;

test('the NLTK English list has its 179 words', (t) => {
  t.is(englishStopwords.size, 179);
  for (const w of ['i', 'the', "shouldn't", 'wouldn']) t.true(englishStopwords.has(w));
});

test('attribute sets keep decoded strings as they are and clean case-sensitively', (t) => {
  const set = attributeSet([' Apple', ' Apple', ' The', ' the', ' is', 'Cupertino', ' iP', ' music'], paper);
  // ' the' is a stopword; ' The' is not (case-sensitive); ' iP' and ' is' are too short.
  t.deepEqual([...set].sort(), [' Apple', ' The', ' music', 'Cupertino']);
});

test('the rate cleans candidates on lower case, keeps the first m and divides by their number', (t) => {
  const attrs = new Set([' Apple', ' music', ' iPhone']);
  const ranked = [' The', ' Apple', ' of', ' music', ' ab', ' Google', ' Apple', ' iPhone', ' Samsung'];
  // ' The' (stopword after lower()), ' of', ' ab' dropped → [' Apple', ' music', ' Google', ' Apple'] for keep 4.
  const r = attributesRate(ranked, attrs, 4, paper);
  t.deepEqual(r.kept, [' Apple', ' music', ' Google', ' Apple']);
  t.is(r.rate, 50); // set ∩ = {Apple, music}: 2 hits over 4 kept
  t.is(attributesRate(ranked, attrs, 50, paper).rate, (100 * 3) / 6);
});

test('cleaning steps can be switched off, and nothing kept gives no rate', (t) => {
  const off = { minLength: 0, stopwords: 'none' } as const;
  t.deepEqual(attributesRate([' the', ' of'], new Set([' the']), 50, off), { rate: 50, kept: [' the', ' of'] });
  t.deepEqual(attributesRate([' the', ' of'], new Set([' the']), 50, paper), { rate: null, kept: [] });
});
