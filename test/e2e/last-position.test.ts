// Last-position rows end to end: the paper's information flow on the default model, run with
// rows as the last token against the clean run's cache and again over whole prompts
// (--full-rows), gives the same numbers; results.json says which way rows ran and why.

import test from 'ava';
import { join } from 'node:path';
import { informationFlowSource, runSource, tempDir, tinyGptj } from './helpers.js';
import { loadProgram, runProgram } from '../../src/pipeline.js';
import { writeFileSync } from 'node:fs';

async function run(source: string, fullRows: boolean) {
  const dir = tempDir();
  const file = join(dir, 'flow.dissect');
  writeFileSync(file, source);
  return (await runProgram(loadProgram(file), {
    out: join(dir, 'out'), selection: { limit: 20 }, batch: 16, device: 'cpu', command: ['test'], ...(fullRows ? { fullRows: true } : {}),
  })).results;
}

test.serial('information flow: last-position rows equal whole-prompt rows, and results say how rows ran', async (t) => {
  const source = informationFlowSource(3);
  const [fast, full] = await Promise.all([run(source, false), run(source, true)]);
  t.deepEqual(fast.provenance.rows?.mode, 'last_position');
  t.deepEqual(full.provenance.rows, { mode: 'full', reason: '--full-rows' });
  const a = fast.experiments[0]!.values;
  const b = full.experiments[0]!.values;
  t.is(a.length, b.length);
  t.true(a.length > 100);
  // probabilities within 1e-5 absolute, their change (in percent of p0) within 1e-3 points
  const tolerance: Record<string, number> = { probability: 1e-5, probability_change: 1e-3 };
  let worst = { by: 0, what: '' };
  a.forEach((row, i) => {
    t.deepEqual([row.example, row.key], [b[i]!.example, b[i]!.key]);
    for (const [k, v] of Object.entries(row.values)) {
      const w = b[i]!.values[k]!;
      if (k === 'rank') t.is(v, w, `${row.example} ${JSON.stringify(row.key)} rank`);
      const by = Math.abs((v ?? 0) - (w ?? 0)) / tolerance[k]!;
      if (k !== 'rank' && by > worst.by) worst = { by, what: `${row.example} ${JSON.stringify(row.key)} ${k}: ${v} vs ${w}` };
    }
  });
  t.true(worst.by <= 1, `worst: ${worst.what}`);
  t.deepEqual(fast.experiments[0]!.forwardPasses, full.experiments[0]!.forwardPasses);
});

test.serial('a GPT-J export without position ids runs every row in full and says why', async (t) => {
  const { results } = await runSource({ source: informationFlowSource(3, '', tinyGptj), limit: 3 });
  t.is(results.provenance.rows?.mode, 'full');
  t.regex(results.provenance.rows?.reason ?? '', /derives token positions .* no position_ids input/);
  const probes = await runSource({ source: informationFlowSource(3).replace('measure probability_change, probability, rank', 'measure probability, extraction of attention l'), limit: 2 });
  t.deepEqual(probes.results.provenance.rows, { mode: 'full', reason: 'no row only blocks attention edges' });
});
