// The XL bench's parts that decide its numbers: the clean-forward count and the prompts.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { encode } from 'gpt-3-encoder';
import { benchFacts } from '../../bench/prompts.js';
import { cleanForwardEquivalents } from '../../bench/flops.js';
import { loadProgram } from '../../src/pipeline.js';
import { tempDir } from '../temp.js';

const tiny = fileURLToPath(new URL('../../../generated/tiny-gpt2/', import.meta.url));

test('clean-forward equivalents: a last-position row costs 1/n of a clean forward, a whole-prompt row 1, a row read from the clean pass 0', (t) => {
  const file = join(tempDir('bench-flops'), 'flow.dissect');
  writeFileSync(file, [
    `model "${join(tiny, 'model.onnx')}" tokenizer "${join(tiny, 'tokenizer.json')}"`,
    `dataset counterfact "${join(tiny, 'facts.json')}"`,
    'experiment flow {',
    '  for l in layers all',
    '  for blocked in positions subject, last',
    '  block blocked -> last at layers window(l, 3)',
    '  measure probability',
    '}',
    'experiment lens {',
    '  for h in hidden all',
    '  measure target_rank of hidden h at last',
    '}',
    'experiment cancelled {',
    '  cancel mlp at layers 0',
    '  measure probability',
    '}',
    '',
  ].join('\n'));
  const { plan, source } = loadProgram(file);
  const { layers } = source.sites;
  t.is(layers, 8);
  const flow = 2 * layers;
  const lens = layers + 1;
  // the clean pass, then per row: 1 token of 10 for the last-position rows, the whole prompt for the cancel
  t.true(Math.abs(cleanForwardEquivalents(plan, source.sites, 10, { lastPosition: true, shareClean: true }) - (1 + flow / 10 + 1)) < 1e-12);
  t.true(Math.abs(cleanForwardEquivalents(plan, source.sites, 10, { lastPosition: false, shareClean: true }) - (1 + flow + 1)) < 1e-12);
  t.true(Math.abs(cleanForwardEquivalents(plan, source.sites, 10, { lastPosition: false, shareClean: false }) - (1 + flow + lens + 1)) < 1e-12);
});

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
