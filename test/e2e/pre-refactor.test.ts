// `npm start`'s program on its first 10 facts gives exactly the numbers it gave before the
// structural refactor of issue 10 (test/e2e/fixtures/README.md says how they were written).

import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadProgram, runProgram } from '../../src/pipeline.js';
import { tempDir } from './helpers.js';

const fixture = fileURLToPath(new URL('../../../test/e2e/fixtures/paper-limit10.results.json', import.meta.url));
const paper = fileURLToPath(new URL('../../../examples/paper.dissect', import.meta.url));

/** Every leaf of the results except where and when they were written, keyed by its path. */
function leaves(value: unknown, path = '', out = new Map<string, unknown>()): Map<string, unknown> {
  if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) leaves(v, `${path}/${k}`, out);
  } else out.set(path, value);
  return out;
}

function measured(results: object): Map<string, unknown> {
  const { createdAt: _c, command: _m, provenance: _p, fingerprint: _f, ...rest } = results as Record<string, unknown>;
  return leaves(rest);
}

test('paper.dissect on 10 facts gives the pre-refactor numbers', async (t) => {
  const want = measured(JSON.parse(readFileSync(fixture, 'utf8')) as object);
  const { results } = await runProgram(loadProgram(paper), {
    out: join(tempDir(), 'out'), selection: { limit: 10 }, batch: 32, device: 'cpu', command: ['test'],
  });
  const got = measured(results);
  t.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
  const differing = [...want].filter(([k, v]) => got.get(k) !== v).map(([k, v]) => `${k}: ${String(got.get(k))} vs ${String(v)}`);
  t.deepEqual(differing, []);
});
