// Head mappings equal a numpy computation of E·W_V^h·W_O^h·Eᵀ (scripts/make_expected_heads.py),
// and the flags name exactly the facts whose last subject token maps to their prediction.

import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { closeRel, informationFlowSource, runSource, tinyGpt2 } from './helpers.js';

const expected = JSON.parse(readFileSync(join(tinyGpt2, 'expected/heads.json'), 'utf8')) as {
  top: number; layers: number[]; heads: { layer: number; head: number; pairs: [number, number, number][] }[];
};

test.serial('each head\'s top token → token pairs equal numpy\'s, and the flags follow the data', async (t) => {
  const source = informationFlowSource(3).replace(/experiment flow \{[\s\S]*\}/,
    `head_mappings layers ${expected.layers[0]}..${expected.layers[expected.layers.length - 1]} top ${expected.top}\n`
    + 'experiment clean {\n  measure probability\n}');
  const { results } = await runSource({ source, limit: 60 });
  const got = results.headMappings!;
  t.is(got.side, 'unembedding');
  t.is(got.heads.length, expected.heads.length);
  for (const want of expected.heads) {
    const head = got.heads.find((h) => h.layer === want.layer && h.head === want.head)!;
    t.deepEqual(head.pairs.map((p) => [p.from, p.to]), want.pairs.map(([r, c]) => [r, c]), `layer ${want.layer} head ${want.head}`);
    head.pairs.forEach((p, i) => t.true(closeRel(p.score, want.pairs[i]![2], 1e-4), `${p.score} vs ${want.pairs[i]![2]}`));
    const pairs = new Set(want.pairs.map(([r, c]) => `${r}>${c}`));
    const vocab = JSON.parse(readFileSync(join(tinyGpt2, 'tokenizer.json'), 'utf8')).model.vocab as Record<string, number>;
    const flagged = results.examples.filter((e) => pairs.has(`${vocab[e.tokens[e.subjectRange[1] - 1]!]}>${e.cleanTop1.id}`)).map((e) => e.id);
    t.deepEqual([...head.subjectAttributeFacts].sort(), flagged.sort());
  }
});
