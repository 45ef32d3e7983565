// `patch … with corrupted hidden` over clean/corrupted pairs equals PyTorch with hooks
// (scripts/make_expected_probes.py (i) → generated/tiny-gpt2/expected/pairs.jsonl and
// facts[i].patch_corrupted of probes.json): block l's input at the subject positions replaced
// by hidden 0 of the corrupted prompt's clean run.

import test from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Results } from '../../src/measure/schema.js';
import { runSource, tempDir, tinyGpt2 } from './helpers.js';

interface Fact {
  case_id: number;
  t: number;
  patch_corrupted: { corrupted_prompt: string; event: number[]; p: number[] } | null;
}
const expected = JSON.parse(readFileSync(join(tinyGpt2, 'expected/probes.json'), 'utf8')) as { layers: number; facts: Fact[] };
const pairsFile = join(tinyGpt2, 'expected/pairs.jsonl');
interface Pair { prompt: string; subject: string; target: string; corrupted_prompt: string; case_id: number }
const pairs = readFileSync(pairsFile, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Pair);
const L = expected.layers;

function source(dataset: string, extra = ''): string {
  return [
    `model "${join(tinyGpt2, 'model.onnx')}" tokenizer "${join(tinyGpt2, 'tokenizer.json')}"`,
    `dataset jsonl "${dataset}" fields prompt = "prompt", subject = "subject", target = "target", corrupted = "corrupted_prompt"`,
    'filter known',
    extra,
    'experiment patched {',
    '  for l in layers all',
    '  patch hidden l at positions subject with corrupted hidden 0',
    '  measure extraction of attention l, probability',
    '}',
    '',
  ].join('\n');
}

function value(r: Results, example: string, l: number, measure: string): number | undefined {
  return r.experiments[0]!.values.find((v) => v.example === example && v.key['l'] === l)?.values[measure];
}

test.serial('every pair: p and the attention extraction event per layer', async (t) => {
  t.true(pairs.length > 0);
  const { results: r } = await runSource({ source: source(pairsFile) });
  t.is(r.examples.length, pairs.length, 'every pair is a known fact');
  pairs.forEach((pair, i) => {
    const f = expected.facts.find((x) => x.case_id === pair.case_id)!;
    const pc = f.patch_corrupted!;
    t.is(pc.corrupted_prompt, pair.corrupted_prompt);
    const id = String(i + 1); // jsonl fact ids are record numbers (the records have no "id")
    t.is(r.examples.find((e) => e.id === id)!.cleanTop1.id, f.t, `${pair.case_id} target`);
    for (let l = 0; l < L; l++) {
      t.is(value(r, id, l, 'extraction of attention l'), pc.event[l], `${pair.case_id} event l${l}`);
      const got = value(r, id, l, 'probability')!;
      const want = pc.p[l]!;
      t.true(Math.abs(got - want) <= 1e-5 * Math.max(want, 1e-6) + 1e-7, `${pair.case_id} p l${l}: ${got} vs ${want}`);
    }
  });
});

test.serial('a corrupted prompt of another token count gives no value for that fact', async (t) => {
  const dir = tempDir('e2e');
  const file = join(dir, 'pairs.jsonl');
  const [a, b] = pairs;
  const longer = { ...b!, corrupted_prompt: `${b!.corrupted_prompt} again` };
  writeFileSync(file, [a, longer].map((x) => JSON.stringify(x)).join('\n') + '\n');
  const { results: r } = await runSource({ source: source(file) });
  t.is(r.examples.length, 2);
  const fa = expected.facts.find((x) => x.case_id === a!.case_id)!;
  for (let l = 0; l < L; l++) {
    t.is(value(r, '1', l, 'extraction of attention l'), fa.patch_corrupted!.event[l]);
    t.is(value(r, '2', l, 'probability'), undefined, `l${l}`);
  }
});

test.serial('the same with bos prepend: the corrupted prompt gets the BOS too', async (t) => {
  const { results: r } = await runSource({ source: source(pairsFile, 'bos prepend'), limit: 6 });
  t.true(r.examples.length > 0);
  for (const e of r.examples) {
    t.is(e.tokens.length, pairs[Number(e.id) - 1]!.prompt.split(' ').length + 1, 'the prompt gets a BOS');
    for (let l = 0; l < L; l++) t.not(value(r, String(e.id), l, 'probability'), undefined, `${e.id} l${l}`);
  }
});
