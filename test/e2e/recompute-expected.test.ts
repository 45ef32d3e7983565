// Control A's local form (the paper's code): `... of attention l without S` equals PyTorch
// with hooks rebuilding c_proj(merge_heads(P'·V)) + b at one layer from the clean P and V,
// per fact, layer, removed set and mode (scripts/make_expected_probes.py → (g) of
// generated/tiny-gpt2/expected/probes.json, the first 40 known facts).

import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Results } from '../../src/measure/schema.js';
import { runSource, tinyGpt2, tinyGpt2Program, valueAt } from './helpers.js';

type Mode = 'renormalise' | 'paper_resoftmax';
interface PerLayer { event: number[]; target_rank: number[]; tie: boolean[] }
interface Fact {
  case_id: number;
  p0: number;
  control_a: Record<string, { event: number[]; target_rank: number[] }>;
  control_a_local: Record<Mode, Record<string, PerLayer>>;
}
const expected = JSON.parse(readFileSync(join(tinyGpt2, 'expected/probes.json'), 'utf8')) as {
  n_facts: number; layers: number; control_a_local_sets: string[]; control_a_local_modes: Mode[]; facts: Fact[];
};
const N = expected.n_facts;
const L = expected.layers;
const SETS = expected.control_a_local_sets;

async function run(body: string, extra = ''): Promise<Results> {
  return (await runSource({ source: `${tinyGpt2Program(extra)}\n${body}\n`, limit: N })).results;
}

test('the expected values cover the paper\'s removed sets and both modes', (t) => {
  t.deepEqual(SETS, ['subject', 'last', 'subject_last', 'subject_last + last', 'nonsubject + last', 'nonsubject',
    'all - [0]', 'all - last', 'all - subject_last', 'all - (subject_last + last)', 'all']);
  t.deepEqual(expected.control_a_local_modes, ['renormalise', 'paper_resoftmax']);
  t.is(expected.facts.length, N);
});

for (const mode of ['renormalise', 'paper_resoftmax'] as const) {
  test.serial(`control A, local recomputation (${mode}): event and target rank per fact, layer and removed set`, async (t) => {
    const r = await run(`experiment local {
  for l in layers all
  for s in positions ${SETS.join(', ')}
  measure extraction of attention l without s, target_rank of attention l without s, probability
}`, `choose recompute = ${mode}`);
    t.is(r.examples.length, N);
    // these rows run as the last token against the clean cache: the comparison covers that path
    t.is(r.provenance.rows?.fullRows, 0);
    t.is(r.provenance.rows?.lastPositionRows, r.experiments[0]!.forwardPasses);
    let compared = 0;
    let ties = 0;
    const mismatches: string[] = [];
    for (const f of expected.facts) {
      for (const set of SETS) {
        const want = f.control_a_local[mode][set]!;
        for (let l = 0; l < L; l++) {
          const key = { l, s: set };
          const event = valueAt(r, 0, f.case_id, key, 'extraction of attention l without s');
          const rank = valueAt(r, 0, f.case_id, key, 'target_rank of attention l without s');
          if (event !== want.event[l]) mismatches.push(`${f.case_id} ${set} l${l}: event ${event} vs ${want.event[l]}`);
          if (rank !== want.target_rank[l]) mismatches.push(`${f.case_id} ${set} l${l}: rank ${rank} vs ${want.target_rank[l]}`);
          // nothing is propagated: the output is the clean one (up to float32 rounding: the row runs
          // one token from block l, the clean pass every token from block 0)
          const p = valueAt(r, 0, f.case_id, key, 'probability')!;
          if (Math.abs(p - f.p0) > 1e-5 * Math.max(f.p0, 1e-6) + 1e-7) mismatches.push(`${f.case_id} ${set} l${l}: probability ${p} vs p0 ${f.p0}`);
          if (want.tie[l]) ties++;
          compared++;
        }
      }
    }
    t.deepEqual(mismatches, []);
    t.is(compared, N * SETS.length * L);
    t.is(r.experiments[0]!.ties ?? 0, ties);
    t.log(`${mode}: ${compared} (fact, set, layer) cells equal to PyTorch; ${ties} ties`);
  });
}

test.serial('a single removed set without a sweep, and the propagated form alongside', async (t) => {
  // the local form needs no sweep over sets; the renormalised local update at layer l equals
  // the propagated knockout's attention update at the same layer (the change only reaches later layers)
  const r = await run(`experiment local {
  for l in layers all
  measure extraction of attention l without subject_last + last, target_rank of attention l without subject_last + last at last
}
experiment propagated {
  for l in layers all
  block subject_last -> last at layers l
  measure target_rank of attention l
}`);
  for (const f of expected.facts) {
    const want = f.control_a_local.renormalise['subject_last + last']!;
    for (let l = 0; l < L; l++) {
      t.is(valueAt(r, 0, f.case_id, { l }, 'extraction of attention l without subject_last + last'), want.event[l], `${f.case_id} l${l}`);
      t.is(valueAt(r, 0, f.case_id, { l }, 'target_rank of attention l without subject_last + last at last'), want.target_rank[l], `${f.case_id} l${l}`);
      t.is(valueAt(r, 1, f.case_id, { l }, 'target_rank of attention l'), f.control_a_local.renormalise['subject_last']!.target_rank[l], `${f.case_id} l${l} propagated`);
    }
  }
});
