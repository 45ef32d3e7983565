// Last-position rows and rows read from the clean pass end to end: the paper's information
// flow, extraction under knockout (control A), the logit lens, enrichment and extraction on the
// default model, run with rows as the last token against the clean run's cache or read from the
// clean pass, and again each over its whole prompt (--full-rows), give the same numbers;
// results.json says which way rows ran and why.

import test from 'ava';
import { join } from 'node:path';
import { informationFlowSource, runSource, sameNumbers, tinyGpt2 } from './helpers.js';

async function run(source: string, fullRows: boolean) {
  return (await runSource({ source, limit: 20, batch: 16, fullRows })).results;
}

const experiments = [
  'experiment blocked {',
  '  for l in layers all',
  '  for blocked in positions subject, subject_last, nonsubject',
  '  block blocked -> last at layers l',
  '  measure extraction of attention l, extraction of heads l, target_rank of mlp l at last',
  '}',
  'experiment lens {',
  '  for h in hidden all',
  '  measure top_tokens 5 of hidden h at last, target_rank of hidden h at last',
  '}',
  'experiment enrichment_ranks {',
  '  for p in positions subject_last, last',
  '  measure target_rank of hidden 4 at p',
  '}',
].join('\n');

test.serial('last-position rows equal whole-prompt rows, probes included, and results say how rows ran', async (t) => {
  const source = `${informationFlowSource(3)}\n${experiments}\n`;
  const [fast, full] = await Promise.all([run(source, false), run(source, true)]);
  t.deepEqual(fast.provenance.rows?.mode, 'last_position');
  t.deepEqual(full.provenance.rows?.mode, 'full');
  t.deepEqual(full.provenance.rows?.reason, '--full-rows');
  // the rows that change nothing (the lens: 9, enrichment_ranks: 2) are read from the clean
  // pass; every other row runs as its last token
  const rows = fast.experiments.reduce((n, x) => n + x.forwardPasses, 0);
  t.is(fast.provenance.rows?.fullRows, 0);
  t.is(fast.provenance.rows?.cleanPassRows, 11 * fast.examples.length);
  t.is(fast.provenance.rows?.lastPositionRows, rows - 11 * fast.examples.length);
  t.like(full.provenance.rows, { lastPositionRows: 0, cleanPassRows: 0, fullRows: rows });
  t.true(sameNumbers(t, fast, full) > 1000);
});

test.serial('with a BOS token and per-head blocks, last-position rows still equal whole-prompt rows', async (t) => {
  const source = informationFlowSource(3, 'bos prepend').replace('block blocked -> last at layers window(l, window)',
    'block blocked -> last at layers window(l, window) heads 0, 2');
  const [fast, full] = await Promise.all([run(source, false), run(source, true)]);
  t.like(fast.provenance.rows, { mode: 'last_position', fullRows: 0 });
  t.true(fast.examples.every((x) => x.tokens.length > 0 && x.subjectRange[0] >= 1), 'the BOS token comes first');
  t.true(fast.data.kept > 0);
  t.is(sameNumbers(t, fast, full), fast.experiments[0]!.values.length * 3, 'three measures per row');
});

test.serial('rows that read attention weights run in full, and results say why', async (t) => {
  const weights = await runSource({ source: informationFlowSource(3).replace('measure probability_change, probability, rank', 'measure attention_weight subject -> last at layer l'), limit: 2 });
  t.like(weights.results.provenance.rows, {
    mode: 'full', reason: 'every row cancels, patches, recomputes, or reads attention weights, subject embeddings or positions before the last', lastPositionRows: 0,
  });
});

test.serial('rows that change nothing are read from the clean pass, with the numbers of rows of their own', async (t) => {
  // the paper's enrichment (attributes rate of every hidden state, its embedding baseline),
  // extraction of every layer (per head, target ranks, attention weights) and the logit lens
  const source = [
    `model "${join(tinyGpt2, 'model.onnx')}" tokenizer "${join(tinyGpt2, 'tokenizer.json')}"`,
    `dataset counterfact "${join(tinyGpt2, 'facts.json')}"`,
    `attributes json "${join(tinyGpt2, 'attributes.json')}" candidates 100 keep 10 min_length 3 stopwords english`,
    'filter known',
    'experiment enrichment {', '  for h in hidden all', '  for p in positions subject_last, subject_first, subject_next, last',
    '  measure attributes_rate of hidden h at p', '}',
    'experiment baseline {', '  measure attributes_rate of subject_embeddings', '}',
    'experiment extraction {', '  for l in layers all',
    '  measure extraction of attention l, extraction of mlp l, extraction of heads l',
    '  measure target_rank of hidden l + 1 at subject_last, target_rank of attention l at last',
    '  measure attention_weight subject -> last at layer l', '}',
    'experiment lens {', '  for h in hidden all', '  measure top_tokens 5 of hidden h at last', '}',
    'experiment far {', '  for k in positions [-8], [0]', '  measure target_rank of hidden 2 at k', '}',
    '',
  ].join('\n');
  const [shared, own] = await Promise.all([run(source, false), run(source, true)]);
  const rows = shared.experiments.reduce((n, x) => n + x.forwardPasses, 0);
  t.like(shared.provenance.rows, { cleanPassRows: rows, fullRows: 0, lastPositionRows: 0 });
  t.like(own.provenance.rows, { cleanPassRows: 0, fullRows: rows });
  // a prompt shorter than 8 tokens has no value at [-8], read from the clean pass or not
  const far = shared.experiments.find((x) => x.name === 'far')!;
  t.true(far.values.filter((v) => v.key['k'] === '[-8]').length < far.values.filter((v) => v.key['k'] === '[0]').length);
  t.true(sameNumbers(t, shared, own) > 2000);
});
