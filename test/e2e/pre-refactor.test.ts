// `npm start`'s program on its first 10 facts gives exactly the numbers it gave before the
// structural refactor of issue 10 (test/e2e/fixtures/README.md says how they were written).
// The fixture is format dissect-results/1, whose measures were labels; the labels of
// paper.dissect are mapped to measure descriptors once, here, and every value, series point
// and top-token list is compared keyed by descriptor.

import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { measureIdentity, type MeasureDescriptor } from '../../src/measure/descriptor.js';
import type { Results } from '../../src/measure/schema.js';
import { loadProgram, runProgram } from '../../src/pipeline.js';
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
function keyed(results: Record<string, any>, measureOf: (experiment: Record<string, any>, id: string) => string): Keyed {
  const values = new Map<string, unknown>();
  const rest = new Map<string, unknown>();
  const { createdAt: _c, command: _m, provenance: _p, fingerprint: _f, format: _v, experiments, ...run } = results;
  leaves(run, '', rest);
  rest.delete('/headMappings/normalisation'); // new in format 2: the choice, formerly read from choices
  // choices added since the fixture was written (gradient attribution), recorded with their defaults
  for (const choice of ['attribution_target', 'attribution_reduction']) for (const field of ['choices', 'choiceMeanings']) rest.delete(`/${field}/${choice}`);
  for (const x of experiments as Record<string, any>[]) {
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

test('paper.dissect on 10 facts gives the pre-refactor numbers, keyed by measure descriptor', async (t) => {
  const want = keyed(JSON.parse(readFileSync(fixture, 'utf8')), (_, label) => oldMeasure(label));
  const { results } = await runProgram(loadProgram(paper), {
    out: join(tempDir('e2e'), 'out'), selection: { limit: 10 }, batch: 32, device: 'cpu', command: ['test'],
  });
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
