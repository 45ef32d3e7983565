// Head mappings equal a numpy computation of E·W_V^h·W_O^h·Eᵀ (scripts/make_expected_heads.py),
// plain and under the token-frequency normalisation, and the flags name exactly the facts whose
// last subject token maps to their prediction.

import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatSummary } from '../../src/report/summary.js';
import { closeRel, informationFlowSource, runSource, tinyGpt2 } from './helpers.js';

interface ExpectedHeads {
  top: number;
  layers: number[];
  heads: { layer: number; head: number; pairs: [number, number, number][] }[];
}

const vocab = JSON.parse(readFileSync(join(tinyGpt2, 'tokenizer.json'), 'utf8')).model.vocab as Record<string, number>;

for (const [normalisation, file] of [['none', 'heads.json'], ['token_frequency', 'heads-normalised.json']] as const) {
  const expected = JSON.parse(readFileSync(join(tinyGpt2, 'expected', file), 'utf8')) as ExpectedHeads;

  test.serial(`normalisation ${normalisation}: each head's top token → token pairs equal numpy's (${file}), and the flags follow the data`, async (t) => {
    const source = informationFlowSource(3, normalisation === 'none' ? '' : `choose head_mapping_normalisation = ${normalisation}`)
      .replace(/experiment flow \{[\s\S]*\}/,
        `head_mappings layers ${expected.layers[0]}..${expected.layers[expected.layers.length - 1]} top ${expected.top}\n`
        + 'experiment clean {\n  measure probability\n}');
    const { results, written } = await runSource({ source, limit: 60 });
    const recorded = JSON.parse(readFileSync(written.json, 'utf8')) as { choices: Record<string, string>; choiceMeanings: Record<string, string> };
    t.is(recorded.choices['head_mapping_normalisation'], normalisation);
    t.truthy(recorded.choiceMeanings['head_mapping_normalisation']);
    t.is(formatSummary(results).includes('token-frequency normalised'), normalisation === 'token_frequency');
    const got = results.headMappings!;
    t.is(got.side, 'unembedding');
    t.is(got.heads.length, expected.heads.length);
    for (const want of expected.heads) {
      const head = got.heads.find((h) => h.layer === want.layer && h.head === want.head)!;
      t.deepEqual(head.pairs.map((p) => [p.from, p.to]), want.pairs.map(([r, c]) => [r, c]), `layer ${want.layer} head ${want.head}`);
      head.pairs.forEach((p, i) => t.true(closeRel(p.score, want.pairs[i]![2], 1e-4), `${p.score} vs ${want.pairs[i]![2]}`));
      const pairs = new Set(want.pairs.map(([r, c]) => `${r}>${c}`));
      const flagged = results.examples.filter((e) => pairs.has(`${vocab[e.tokens[e.subjectRange[1] - 1]!]}>${e.cleanTop1.id}`)).map((e) => e.id);
      t.deepEqual(head.subjectAttributeFacts, flagged, 'in the order of the examples');
    }
  });
}
