// The XL bench's prompts (its clean-forward count is src/plan/cost.ts's, tested in test/plan/cost.test.ts).
import test from 'ava';
import { encode } from 'gpt-3-encoder';
import { benchFacts } from '../../bench/prompts.js';

test('the bench facts: 20 distinct prompts of 10–15 GPT-2 tokens, 12.5 on average, each holding its subject', (t) => {
  const facts = benchFacts(20);
  const lengths = facts.map((f) => encode(f.prompt).length);
  t.deepEqual(lengths.slice(0, 6), [10, 15, 11, 14, 12, 13]);
  t.true(lengths.every((n) => n >= 10 && n <= 15));
  t.is(lengths.reduce((a, b) => a + b, 0) / 20, 12.5);
  t.is(lengths.slice(0, 2).reduce((a, b) => a + b, 0) / 2, 12.5); // the paper method's sample
  t.is(new Set(facts.map((f) => f.prompt)).size, 20);
  t.true(facts.every((f) => f.prompt.includes(f.subject)));
});
