// The information-flow experiment equals an independent implementation: PyTorch with the
// attention wrapped per prompt, one prompt at a time, as the paper's code does it
// (scripts/make_expected.py → generated/tiny-gpt2/expected/).

import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Results } from '../../src/report/schema.js';
import { closeRel, informationFlowSource, runSource, tinyGpt2 } from './helpers.js';

interface ExpectedSet { p_new: number[]; rel: number[]; rank?: number[] }
interface ExpectedFact {
  case_id: number;
  subject_range: [number, number];
  top1: number;
  p0: number;
  [window: `k${number}`]: Record<'subject' | 'nonsubject' | 'last', ExpectedSet>;
}
interface KnownFact { case_id: number; input_ids: number[]; subject_range: [number, number]; top1: number; p0: number; known: boolean }

const expected = JSON.parse(readFileSync(join(tinyGpt2, 'expected/knockout.json'), 'utf8')) as {
  layers: number; windows: number[]; facts: ExpectedFact[];
};
const known = JSON.parse(readFileSync(join(tinyGpt2, 'expected/known.json'), 'utf8')) as { facts: KnownFact[] };

function valueOf(results: Results, id: string, l: number, set: string, measure: 'probability' | 'probability_change' | 'rank'): number {
  const row = results.experiments[0]!.values.find((v) => String(v.example) === id && v.key['l'] === l && v.key['blocked'] === set);
  if (!row) throw new Error(`no value for example ${id}, l=${l}, ${set}`);
  return row.values[measure]!;
}

for (const window of [3, 9]) {
  test.serial(`knockout with window ${window} equals PyTorch with hooks, fact by fact`, async (t) => {
    const { results } = await runSource({ source: informationFlowSource(window) });
    // The same known set: same ids, same n.
    const ids = results.examples.map((e) => String(e.id));
    t.deepEqual(ids, expected.facts.map((f) => String(f.case_id)));
    t.is(results.data.kept, expected.facts.length);
    t.is(results.data.dropped['not_known'] ?? 0, known.facts.filter((f) => !f.known).length);

    let compared = 0;
    let worstRel = 0;
    let worstPp = 0;
    for (const f of expected.facts) {
      const id = String(f.case_id);
      const ex = results.examples.find((e) => String(e.id) === id)!;
      t.deepEqual(ex.subjectRange, f.subject_range, `subject range of ${id}`);
      t.is(ex.cleanTop1.id, f.top1);
      t.true(closeRel(ex.cleanTop1.prob, f.p0, 1e-5), `p0 of ${id}: ${ex.cleanTop1.prob} vs ${f.p0}`);
      const sets = f[`k${window}`];
      for (const set of ['subject', 'nonsubject', 'last'] as const) {
        for (let l = 0; l < expected.layers; l++) {
          const p = valueOf(results, id, l, set, 'probability');
          const pp = valueOf(results, id, l, set, 'probability_change');
          worstRel = Math.max(worstRel, Math.abs(p - sets[set].p_new[l]!) / Math.max(sets[set].p_new[l]!, 1e-30));
          worstPp = Math.max(worstPp, Math.abs(pp - sets[set].rel[l]!));
          if (sets[set].rank) t.is(valueOf(results, id, l, set, 'rank'), sets[set].rank![l]!, `rank ${id} l=${l} ${set}`);
          compared++;
        }
      }
    }
    t.log(`${compared} values compared; worst relative probability error ${worstRel.toExponential(2)}, worst change error ${worstPp.toExponential(2)} pp`);
    t.true(worstRel <= 1e-5, `probabilities within 1e-5 relative (worst ${worstRel})`);
    t.true(worstPp <= 0.01, `changes within 0.01 percentage points (worst ${worstPp})`);
    t.is(compared, expected.facts.length * 3 * expected.layers);
  });
}

test.serial('token ids and subject ranges equal the independent tokenization', async (t) => {
  const { results } = await runSource({ source: informationFlowSource(3).replace('filter known', 'filter none'), limit: 40 });
  const byId = new Map(known.facts.map((f) => [String(f.case_id), f]));
  t.is(results.examples.length, 40);
  for (const ex of results.examples) {
    const f = byId.get(String(ex.id))!;
    t.deepEqual(ex.subjectRange, f.subject_range);
    t.is(ex.tokens.length, f.input_ids.length);
    t.is(ex.cleanTop1.id, f.top1);
  }
});
