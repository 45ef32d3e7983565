// One backward pass gives every hidden state's attribution, so the rows of a fact that differ
// only in the hidden state they read share one run in the attribution variant; rows whose
// interventions differ still run apart. Counted through the rows fed to that session.

import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExampleRecord } from '../../src/measure/record.js';
import { buildVariant } from '../../src/onnx/compile.js';
import { loadProgram, selectedFacts } from '../../src/pipeline/index.js';
import { orThrow } from '../../src/run/errors.js';
import { executeExamples } from '../../src/run/execute.js';
import { Journal, runFingerprint } from '../../src/run/journal.js';
import { createSession, type RunSession } from '../../src/run/session.js';
import { tinyGpt2Program } from '../e2e/helpers.js';
import { tempDir } from '../temp.js';

const FACTS = 4;

test('attribution rows that differ only in the hidden state read run once per fact; other interventions run apart', async (t) => {
  const dir = tempDir('attribution-runs');
  const file = join(dir, 'grads.dissect');
  const source = tinyGpt2Program(
    'experiment every_state {', '  for h in hidden all', '  measure attribution of hidden h', '}',
    'experiment cancelled {', '  for l in layers 0, 2', '  for h in hidden 3, 5', '  cancel attention at layers l', '  measure attribution of hidden h', '}', '',
  );
  writeFileSync(file, source);
  const loaded = loadProgram(file);
  const { selected } = selectedFacts(loaded, { limit: FACTS });
  const open = async (request: typeof loaded.plan.variant) => {
    const variant = buildVariant(loaded.source, request);
    return { variant, session: orThrow(await createSession(variant.bytes)) };
  };
  const main = await open(loaded.plan.variant);
  const attribution = await open(loaded.plan.attributionVariant!);
  let fed = 0;
  const counting: RunSession = { ...attribution.session, run: (feeds, fetches) => { fed += feeds['input_ids']!.dims[0]!; return attribution.session.run(feeds, fetches); } };
  const fingerprint = runFingerprint({ sourceText: source, params: {}, choices: {}, modelSha256: 'm', tokenizerSha256: 't', datasetSha256: 'd', selection: {} });
  const journal = Journal.open<ExampleRecord>(join(dir, 'out'), fingerprint, { fresh: true });
  try {
    await executeExamples({
      program: loaded.program, plan: loaded.plan, ...main, tokenizer: loaded.tokenizer, facts: selected, journal, batch: 64,
      attribution: { variant: attribution.variant, session: counting },
    });
    const kept = selected.map((f) => journal.get(f.id)!).filter((r): r is Extract<ExampleRecord, { status: 'kept' }> => r.status === 'kept');
    t.true(kept.length > 0);
    // every_state: 9 rows, one run; cancelled: 4 rows, one run per cancelled layer
    t.is(fed, kept.length * (1 + 2));
    for (const record of kept) {
      const [every, cancelled] = record.rows;
      // each row still reads its own hidden state: the rows' values differ
      const firstValues = every!.map((row) => row!.probes['attribution of hidden h [last]']);
      t.is(new Set(firstValues).size, firstValues.length);
      t.not(cancelled![0]!.probes['attribution of hidden h [last]'], cancelled![2]!.probes['attribution of hidden h [last]']);
    }
  } finally {
    journal.close();
    await main.session.release();
    await attribution.session.release();
  }
});
