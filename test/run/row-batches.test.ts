// Last-position rows of a chunk are batched by the block they start at across prompts of every
// length: each batch reads every weight of its blocks, so a start block's rows must not be
// split into a batch per prompt length. Counted through the forward passes fed to the session.

import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExampleRecord } from '../../src/measure/record.js';
import { buildVariant } from '../../src/onnx/compile.js';
import { VariantNames } from '../../src/onnx/variant.js';
import { loadProgram, selectedFacts } from '../../src/pipeline/index.js';
import { orThrow } from '../../src/run/errors.js';
import { executeExamples } from '../../src/run/execute.js';
import { Journal, runFingerprint } from '../../src/run/journal.js';
import { createSession, type RunSession } from '../../src/run/session.js';
import { informationFlowSource } from '../e2e/helpers.js';
import { tempDir } from '../temp.js';

test('last-position rows of one start block share batches across prompt lengths', async (t) => {
  const dir = tempDir('row-batches');
  const file = join(dir, 'flow.dissect');
  const source = informationFlowSource(3);
  writeFileSync(file, source);
  const loaded = loadProgram(file);
  const { selected } = selectedFacts(loaded, { limit: 12 });
  // as runProgram asks for rows from their first block (src/pipeline/run.ts)
  const plan = { ...loaded.plan, variant: { ...loaded.plan.variant, startLayer: true, hiddenStates: true } };
  const variant = buildVariant(loaded.source, plan.variant);
  const session = orThrow(await createSession(variant.bytes));
  // the start block of every forward pass of last-position rows (one token a row)
  const starts: number[] = [];
  const counting: RunSession = {
    ...session,
    run: (feeds, fetches) => {
      if (feeds['input_ids']!.dims[1] === 1) starts.push(Number(feeds[VariantNames.startLayer]!.data[0]));
      return session.run(feeds, fetches);
    },
  };
  const fingerprint = runFingerprint({ sourceText: source, params: {}, choices: {}, modelSha256: 'm', tokenizerSha256: 't', datasetSha256: 'd', selection: {} });
  const journal = Journal.open<ExampleRecord>(join(dir, 'out'), fingerprint, { fresh: true });
  try {
    await executeExamples({
      program: loaded.program, plan, variant, session: counting, tokenizer: loaded.tokenizer, facts: selected, journal,
      batch: 1000, lastPosition: true, shareClean: true, startLayer: true,
    });
    const kept = selected.map((f) => journal.get(f.id)!).filter((r): r is Extract<ExampleRecord, { status: 'kept' }> => r.status === 'kept');
    const lengths = new Set(kept.map((r) => r.example.tokens.length));
    t.true(lengths.size >= 3, `the facts kept have ${lengths.size} prompt lengths`);
    // the cross-check runs the first last-position row alone; then one batch per start block
    const [checked, ...batches] = starts;
    t.is(checked, 0);
    t.deepEqual(batches, [...new Set(batches)].sort((a, b) => a - b));
    t.deepEqual(batches, [0, 1, 2, 3, 4, 5, 6]);
  } finally {
    journal.close();
    await session.release();
  }
});
