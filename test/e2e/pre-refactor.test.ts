// `npm start`'s program on its first 10 facts gives exactly the numbers it gave before the
// structural refactor of issue 10 (test/e2e/fixtures/README.md says how they were written).
// The fixture is format dissect-results/1, whose measures were labels; the labels of
// paper.dissect are mapped to measure descriptors once, here, and every value, series point
// and top-token list is compared keyed by descriptor. Experiments added since (gradient
// attribution) have no values in the fixture: they are checked against an expectation of their
// own, computed here without the code that produced them.

import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { measureIdentity, type MeasureDescriptor } from '../../src/measure/descriptor.js';
import type { Results } from '../../src/measure/schema.js';
import { buildVariant } from '../../src/onnx/compile.js';
import { VariantNames } from '../../src/onnx/variant.js';
import { loadProgram, runProgram, type RunOutcome } from '../../src/pipeline/index.js';
import { buildFeeds, type BatchRow } from '../../src/run/batch.js';
import { orThrow } from '../../src/run/errors.js';
import { createSession } from '../../src/run/session.js';
import { tempDir } from './helpers.js';

const fixture = fileURLToPath(new URL('../../../test/e2e/fixtures/paper-limit10.results.json', import.meta.url));
const paper = fileURLToPath(new URL('../../../examples/paper.dissect', import.meta.url));

type What = Omit<MeasureDescriptor, 'id' | 'label'>;
const layer = (constant: number, variables: Record<string, number> = {}) => ({ constant, variables });
const output = (probe: 'probability_change' | 'probability' | 'rank'): What => ({ probe, site: 'logits', layer: null, positions: 'last' });

/** Every measure label of paper.dissect in format 1, as the descriptor it now is. */
const LABELS: Readonly<Record<string, What>> = {
  probability_change: output('probability_change'),
  probability: output('probability'),
  rank: output('rank'),
  'attributes_rate of hidden h at p': { probe: 'attributes_rate', site: 'hidden', layer: layer(0, { h: 1 }), positions: 'p' },
  'attributes_rate of subject_embeddings': { probe: 'attributes_rate', site: 'subject_embeddings', layer: null, positions: 'subject' },
  'attributes_rate of hidden measured at subject_last': { probe: 'attributes_rate', site: 'hidden', layer: layer(7), positions: 'subject_last' },
  'extraction of attention l': { probe: 'extraction', site: 'attention', layer: layer(0, { l: 1 }), positions: 'last' },
  'extraction of mlp l': { probe: 'extraction', site: 'mlp', layer: layer(0, { l: 1 }), positions: 'last' },
  ...Object.fromEntries([0, 1, 2, 3].map((head) => [
    `extraction of heads l [head ${head}]`, { probe: 'extraction', site: 'heads', layer: layer(0, { l: 1 }), head, positions: 'last' },
  ])),
  'target_rank of hidden l + 1 at subject_last': { probe: 'target_rank', site: 'hidden', layer: layer(1, { l: 1 }), positions: 'subject_last' },
  'target_rank of attention l at last': { probe: 'target_rank', site: 'attention', layer: layer(0, { l: 1 }), positions: 'last' },
  'attention_weight subject -> last at layer l': { probe: 'attention_weight', site: 'attention_probs', layer: layer(0, { l: 1 }), positions: 'last', keys: 'subject' },
  'extraction of attention l without removed': { probe: 'extraction', site: 'recomputed', layer: layer(0, { l: 1 }), positions: 'last', without: 'removed' },
  'top_tokens 5 of hidden h at last': { probe: 'top_tokens', site: 'hidden', layer: layer(0, { h: 1 }), positions: 'last', k: 5 },
};

/** Format 1: the descriptor of a label. */
function oldMeasure(label: string): string {
  const what = LABELS[label];
  if (!what) throw new Error(`no descriptor for the format-1 label "${label}"`);
  return measureIdentity({ id: label, label, ...what });
}

interface Keyed { readonly values: Map<string, unknown>; readonly rest: Map<string, unknown> }

/** Every leaf of a JSON value, keyed by its path. */
function leaves(value: unknown, path: string, out: Map<string, unknown>): void {
  if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) leaves(v, `${path}/${k}`, out);
  } else out.set(path, value);
}

/**
 * The measured numbers keyed by (experiment, example, binding, descriptor), and every other
 * leaf except where and when the results were written and in which format.
 */
/** paper.dissect's experiments newer than the fixture, each checked by a test of its own below. */
const NEWER_THAN_FIXTURE = new Set(['attribution']);

function keyed(results: Record<string, any>, measureOf: (experiment: Record<string, any>, id: string) => string): Keyed {
  const values = new Map<string, unknown>();
  const rest = new Map<string, unknown>();
  const { createdAt: _c, command: _m, provenance: _p, fingerprint: _f, format: _v, experiments, ...run } = results;
  leaves(run, '', rest);
  rest.delete('/headMappings/normalisation'); // new in format 2: the choice, formerly read from choices
  // choices added since the fixture was written (gradient attribution), recorded with their defaults
  for (const choice of ['attribution_target', 'attribution_reduction']) for (const field of ['choices', 'choiceMeanings']) rest.delete(`/${field}/${choice}`);
  for (const x of experiments as Record<string, any>[]) {
    if (NEWER_THAN_FIXTURE.has(x.name)) continue;
    const key = (...parts: unknown[]) => JSON.stringify([x.name, ...parts]);
    for (const row of x.values) for (const [id, v] of Object.entries(row.values)) values.set(key(row.example, row.key, measureOf(x, id)), v);
    for (const p of x.series) values.set(key('series', p.key, measureOf(x, p.measure)), [p.mean, p.ci, p.n]);
    for (const t of x.tokens ?? []) values.set(key(t.example, t.key, measureOf(x, t.measure ?? t.label), t.position), t.tokens);
    // interventionText is new since the fixture (the report's subtitles).
    const { values: _vs, series: _s, tokens: _t, measures: _ms, interventions: _i, interventionText: _it, sweeps, ...other } = x;
    leaves({ ...other, sweeps: sweeps.map(({ singleTokens: _one, ...axis }: Record<string, unknown>) => axis) }, `/${x.name}`, rest);
  }
  return { values, rest };
}

/**
 * Equal, numbers within float32 rounding of a kernel order: the fixture predates the model
 * canonicalisation (no-op Casts removed), which lets onnxruntime fuse differently. Probabilities
 * move by ~1e-7, so a probability change in percent, which divides by a small p, by up to ~1e-3
 * points; a value mixed up with another's moves far more.
 * Integers (ranks, token ids, counts) and everything else must be equal.
 */
function close(got: unknown, want: unknown): boolean {
  if (typeof got === 'number' && typeof want === 'number' && !(Number.isInteger(want) && Number.isInteger(got))) {
    return Math.abs(got - want) <= 1e-3 + 1e-5 * Math.abs(want);
  }
  if (Array.isArray(got) && Array.isArray(want)) return got.length === want.length && got.every((g, i) => close(g, want[i]));
  return JSON.stringify(got) === JSON.stringify(want);
}

const loaded = loadProgram(paper);
let run: Promise<RunOutcome> | undefined;
/** paper.dissect on its first 10 facts, run once for the tests of this file. */
const paperRun = (): Promise<RunOutcome> => (run ??= runProgram(loaded, {
  out: join(tempDir('e2e'), 'out'), selection: { limit: 10 }, batch: 32, device: 'cpu', command: ['test'],
}));

test('paper.dissect on 10 facts gives the pre-refactor numbers, keyed by measure descriptor', async (t) => {
  const want = keyed(JSON.parse(readFileSync(fixture, 'utf8')), (_, label) => oldMeasure(label));
  const { results } = await paperRun();
  const byId = (x: Record<string, any>, id: string): string => measureIdentity((x.measures as MeasureDescriptor[]).find((d) => d.id === id)!);
  const got = keyed(results as Results as Record<string, any>, byId);
  for (const part of ['values', 'rest'] as const) {
    t.deepEqual([...got[part].keys()].sort(), [...want[part].keys()].sort(), part);
    const differing = [...want[part]].filter(([k, v]) => !close(got[part].get(k), v));
    t.deepEqual(differing.map(([k, v]) => `${k}: ${JSON.stringify(got[part].get(k))} vs ${JSON.stringify(v)}`), [], part);
  }
  t.is(results.headMappings?.normalisation, 'none');
  t.true(want.values.size > 4000, `every value is compared (${want.values.size})`);
});

/** Facts whose attributions are differentiated numerically (every hidden state and position of each). */
const NUMERIC_FACTS = 3;
/** The relative scaling of a hidden state for the central differences. */
const EPSILON = 1e-2;

test('paper.dissect\'s attribution: gradient × hidden state equals the derivative of y as each hidden state is scaled at each position, by central differences', async (t) => {
  const { results } = await paperRun();
  const x = results.experiments.find((e) => e.name === 'attribution')!;
  // Σ_d h_d · ∂y/∂h_d at (l, p) is d/dε y((1 + ε) h_{l,p}) at ε = 0: forward runs only, the
  // hidden state scaled through the patch inputs, y = log p(clean top-1) (attribution_target).
  const variant = buildVariant(loaded.source, { knockout: false, logits: false, patch: true, hiddenStates: true });
  const session = orThrow(await createSession(variant.bytes));
  const { layers: L, dModel: d } = variant.manifest;
  try {
    let largest = 0;
    let error = 0;
    for (const ex of results.examples.slice(0, NUMERIC_FACTS)) {
      const ids = ex.tokens.map((token) => loaded.tokenizer.tokenId(token)!);
      const n = ids.length;
      const row: BatchRow = { ids, lastIndex: n - 1, target: ex.cleanTop1.id };
      const clean = await session.run(buildFeeds(variant.manifest, [row]), [VariantNames.hiddenStates]);
      const hidden = clean[VariantNames.hiddenStates]!.data as Float32Array;
      const scaled: BatchRow[] = [];
      for (let l = 0; l <= L; l++) {
        for (let p = 0; p < n; p++) {
          for (const sign of [1, -1]) {
            const values = hidden.slice(l * n * d, (l + 1) * n * d);
            for (let k = p * d; k < (p + 1) * d; k++) values[k]! *= 1 + sign * EPSILON;
            scaled.push({ ...row, patch: { layer: l, mask: Uint8Array.from({ length: n }, (_, q) => (q === p ? 1 : 0)), values } });
          }
        }
      }
      const out = await session.run(buildFeeds(variant.manifest, scaled), [VariantNames.targetProb]);
      const y = Array.from(out[VariantNames.targetProb]!.data as Float32Array, Math.log);
      for (let l = 0; l <= L; l++) {
        const got = x.positionValues!.find((v) => v.example === ex.id && v.key['h'] === l)!;
        t.deepEqual(got.positions, [...Array(n).keys()]);
        for (let p = 0; p < n; p++) {
          const at = 2 * (l * n + p);
          const numeric = (y[at]! - y[at + 1]!) / (2 * EPSILON);
          largest = Math.max(largest, Math.abs(numeric));
          error = Math.max(error, Math.abs(got.values[p]! - numeric));
        }
      }
    }
    t.true(largest > 0.1, `the attributions are not all near 0 (largest ${largest})`);
    t.true(error <= 2e-3 * largest, `max |attribution − central difference| ${error} of the largest ${largest}`);
  } finally {
    await session.release();
  }
});
