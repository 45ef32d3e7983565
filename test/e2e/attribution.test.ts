// `measure attribution` and `measure integrated_gradients` through the whole pipeline on the
// default model: the runner's per-position values are the attribution variant's own numbers for
// the fact's tokens, the per-group means are means of those values over the subject's parts, a
// cancelled attention leaves no gradient at any position but the last, and integrated gradients
// with the mean baseline are complete (their gap within 1% of y(h) − y(b) at 64 steps).

import test from 'ava';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import type { Results } from '../../src/measure/schema.js';
import { buildVariant } from '../../src/onnx/compile.js';
import { VariantNames } from '../../src/onnx/variant.js';
import { loadTokenizer } from '../../src/run/tokenizer.js';
import { runSource, tinyGpt2, tinyGpt2Program } from './helpers.js';

const LIMIT = 3;
const int64 = (xs: readonly number[], dims: number[]) => new ort.Tensor('int64', BigInt64Array.from(xs.map(BigInt)), dims);
const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

function perPosition(r: Results, e: number, example: string, h: number, label: string) {
  return r.experiments[e]!.positionValues!.find((v) => v.example === example && v.key['h'] === h && v.measure === label)!;
}

test.serial('attribution of every hidden state: the variant\'s numbers per position, their means per group of positions', async (t) => {
  const { results: r } = await runSource({
    limit: LIMIT,
    source: tinyGpt2Program('choose attribution_target = probability', 'experiment grads {', '  for h in hidden all', '  measure attribution of hidden h, probability', '}', ''),
  });
  t.is(r.examples.length, LIMIT);
  const x = r.experiments[0]!;
  t.deepEqual(x.measures.filter((d) => d.probe === 'attribution').map((d) => [d.id, d.part, d.positions]), [
    'subject_first', 'subject_last', 'subject_other', 'nonsubject', 'last',
  ].map((part) => [`attribution of hidden h [${part}]`, part, 'all']));
  const variant = buildVariant(join(tinyGpt2, 'model.onnx'), { knockout: false, logits: false, attribution: { target: 'probability', reduction: 'sum' } });
  const session = await ort.InferenceSession.create(variant.bytes, { intraOpNumThreads: 1 });
  const tokenizer = loadTokenizer(join(tinyGpt2, 'tokenizer.json'));
  if ('code' in tokenizer) throw new Error(tokenizer.message);
  const L = variant.manifest.layers;
  for (const ex of r.examples) {
    const ids = ex.tokens.map((s) => tokenizer.tokenId(s)!);
    const n = ids.length;
    const out = await session.run({
      input_ids: int64(ids, [1, n]), attention_mask: int64(ids.map(() => 1), [1, n]),
      [VariantNames.lastIndex]: int64([n - 1], [1]), [VariantNames.target]: int64([ex.cleanTop1.id], [1]),
    });
    const direct = out[VariantNames.attribution]!.data as Float32Array;
    const [s, e] = ex.subjectRange;
    for (let h = 0; h <= L; h++) {
      const got = perPosition(r, 0, String(ex.id), h, 'attribution of hidden h');
      t.deepEqual(got.positions, [...Array(n).keys()]);
      got.values.forEach((v, p) => t.true(Math.abs(v - direct[h * n + p]!) <= 1e-6 + 1e-5 * Math.abs(v), `fact ${ex.id} h${h} p${p}: ${v} vs ${direct[h * n + p]}`));
      const row = x.values.find((v) => v.example === ex.id && v.key['h'] === h)!.values;
      t.true(Math.abs(row['attribution of hidden h [subject_first]']! - got.values[s]!) < 1e-9);
      t.true(Math.abs(row['attribution of hidden h [subject_last]']! - got.values[e - 1]!) < 1e-9);
      t.true(Math.abs(row['attribution of hidden h [last]']! - got.values[n - 1]!) < 1e-9);
      const nonsubject = [...Array(n - 1).keys()].filter((p) => p < s || p >= e);
      if (nonsubject.length) t.true(Math.abs(row['attribution of hidden h [nonsubject]']! - mean(nonsubject.map((p) => got.values[p]!))) < 1e-9);
      if (e - s > 2) t.true(Math.abs(row['attribution of hidden h [subject_other]']! - mean(got.values.slice(s + 1, e - 1))) < 1e-9);
      else t.false('attribution of hidden h [subject_other]' in row, 'a subject of two tokens or fewer has no other tokens');
    }
  }
  t.true(x.series.some((p) => p.measure === 'attribution of hidden h [last]' && p.n === LIMIT && p.mean !== null && p.mean !== 0));
});

test.serial('with every attention update cancelled, only the last position has a gradient', async (t) => {
  const { results: r } = await runSource({
    limit: LIMIT,
    source: tinyGpt2Program('choose cancel_attention = zero_update', 'experiment cut {', '  for h in hidden all',
      '  cancel attention at layers all', '  measure attribution of hidden h at subject + last', '}', ''),
  });
  for (const v of r.experiments[0]!.positionValues!) {
    const ex = r.examples.find((x) => x.id === v.example)!;
    const last = ex.tokens.length - 1;
    t.deepEqual(v.positions, [...Array(ex.subjectRange[1] - ex.subjectRange[0]).keys()].map((i) => i + ex.subjectRange[0]).concat(ex.subjectRange[1] <= last ? [last] : []));
    v.positions.forEach((p, i) => (p === last ? t.not(v.values[i], 0) : t.is(v.values[i], 0)));
  }
});

test.serial('integrated gradients with the mean baseline are complete within 1% at 64 steps', async (t) => {
  const { results: r } = await runSource({
    limit: LIMIT,
    source: tinyGpt2Program('experiment ig {', '  for h in hidden 1, 4, 8', '  measure integrated_gradients of hidden h steps 64', '}', ''),
  });
  const x = r.experiments[0]!;
  t.is(x.forwardPasses, LIMIT * 3 * 66, 'every row runs its 64 steps and both ends');
  for (const row of x.values) {
    const h = row.key['h'] as number;
    const values = perPosition(r, 0, String(row.example), h, 'integrated_gradients of hidden h steps 64').values;
    const gap = row.values['integrated_gradients of hidden h steps 64 [completeness_gap]']!;
    const total = values.reduce((a, b) => a + b, 0);
    const difference = total - gap; // y(h) − y(b)
    t.true(Math.abs(difference) > 0.1, `fact ${row.example} h${h}: the baseline changes y (${difference})`);
    t.true(Math.abs(gap) <= 0.01 * Math.abs(difference), `fact ${row.example} h${h}: gap ${gap} of y(h) − y(b) = ${difference}`);
  }
});

test.serial('integrated gradients under a cancel below the integrated hidden state integrate along the cancelled run, complete within 1%', async (t) => {
  const cancel = '  cancel attention at layers 0..2';
  const { results: r } = await runSource({
    limit: LIMIT,
    source: tinyGpt2Program('experiment cancelled {', cancel, '  measure probability', '}',
      'experiment ig {', cancel, '  measure probability, integrated_gradients of hidden 4 steps 64', '}', ''),
  });
  const [cancelled, ig] = r.experiments;
  for (const ex of r.examples) {
    const p = (x: typeof ig) => x!.values.find((v) => v.example === ex.id)!.values['probability']!;
    // at α = 1 the row is the cancelled run itself, not the clean one
    t.true(Math.abs(p(ig) - p(cancelled)) <= 1e-5, `fact ${ex.id}: p ${p(ig)} at α = 1, ${p(cancelled)} cancelled`);
    t.true(Math.abs(p(cancelled) - ex.cleanTop1.prob) > 0.01, `fact ${ex.id}: the cancel moves p (${p(cancelled)} vs clean ${ex.cleanTop1.prob})`);
    const values = ig!.positionValues!.find((v) => v.example === ex.id)!.values;
    const gap = ig!.values.find((v) => v.example === ex.id)!.values['integrated_gradients of hidden 4 steps 64 [completeness_gap]']!;
    const difference = values.reduce((a, b) => a + b, 0) - gap; // y(h) − y(b), h the cancelled run's
    t.true(Math.abs(gap) <= 0.01 * Math.abs(difference), `fact ${ex.id}: gap ${gap} of y(h) − y(b) = ${difference}`);
  }
});
