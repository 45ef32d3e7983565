// The attributes rate's embedding baseline (`... of subject_embeddings`) equals the
// independent PyTorch computation: the mean of the subject tokens' wte rows, projected with
// Eᵀ (scripts/make_expected_probes.py (h) → probes.json `facts[i].attributes_rate_embedding`,
// `facts[i].embedding_baseline.{top5,target_rank}`). On the tiny model every rate is 0, so the
// top tokens and the target's rank carry the comparison of the vector itself.

import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runSource, tinyGpt2 } from './helpers.js';

const vocab = JSON.parse(readFileSync(join(tinyGpt2, 'tokenizer.json'), 'utf8')).model.vocab as Record<string, number>;

const expected = JSON.parse(readFileSync(join(tinyGpt2, 'expected/probes.json'), 'utf8')) as {
  n_facts: number;
  facts: { case_id: number; attributes_rate_embedding: number | null; embedding_baseline: { top5: number[]; target_rank: number } }[];
};

const source = [
  `model "${join(tinyGpt2, 'model.onnx')}" tokenizer "${join(tinyGpt2, 'tokenizer.json')}"`,
  `dataset counterfact "${join(tinyGpt2, 'facts.json')}"`,
  `attributes json "${join(tinyGpt2, 'attributes.json')}" candidates 100 keep 10 min_length 3 stopwords english`,
  'filter known',
  'experiment baseline {',
  '  measure attributes_rate of subject_embeddings, target_rank of subject_embeddings, top_tokens 5 of subject_embeddings',
  '}',
  'experiment both {',
  '  measure attributes_rate of subject_embeddings, attributes_rate of hidden 0 at subject_last',
  '}',
  '',
].join('\n');

test('attributes rate of the subject embeddings per fact', async (t) => {
  const r = (await runSource({ source, limit: expected.n_facts })).results;
  t.deepEqual(r.examples.map((e) => Number(e.id)), expected.facts.map((f) => f.case_id));
  for (const e of [0, 1]) {
    for (const f of expected.facts) {
      const row = r.experiments[e]!.values.find((v) => v.example === String(f.case_id));
      const got = row?.values['attributes_rate of subject_embeddings'];
      if (f.attributes_rate_embedding === null) { t.is(got, undefined, `${f.case_id}`); continue; }
      t.true(got !== undefined && Math.abs(got - f.attributes_rate_embedding) <= 0.01, `${f.case_id}: ${got} vs ${f.attributes_rate_embedding}`);
    }
  }
  for (const f of expected.facts) {
    const row = r.experiments[0]!.values.find((v) => v.example === String(f.case_id))!;
    t.is(row.values['target_rank of subject_embeddings'], f.embedding_baseline.target_rank, `${f.case_id} rank`);
    const got = r.experiments[0]!.tokens!.find((x) => x.example === String(f.case_id))!;
    t.deepEqual(got.tokens.map((s) => vocab[s]), f.embedding_baseline.top5, `${f.case_id} top 5`);
  }
});
