// The run-time cross-check of last-position rows: the first such row also runs over its whole
// prompt. Through a session that corrupts the cache it is fed (standing in for a model whose
// masks do not follow a past), the two disagree: the run falls back to whole prompts, says
// why, and its numbers are the whole-prompt ones.

import test from 'ava';
import ort from 'onnxruntime-node';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VariantNames } from '../../src/onnx/variant.js';
import { loadProgram, runProgram } from '../../src/pipeline/index.js';
import { buildVariant } from '../../src/onnx/compile.js';
import type { ExampleRecord } from '../../src/measure/record.js';
import { executeExamples } from '../../src/run/execute.js';
import { Journal, runFingerprint } from '../../src/run/journal.js';
import { orThrow } from '../../src/run/errors.js';
import { createSession, type RunSession } from '../../src/run/session.js';
import { selectedFacts } from '../../src/pipeline/index.js';
import { tempDir } from '../temp.js';

const tiny = fileURLToPath(new URL('../../../generated/tiny-gpt2/', import.meta.url));
const source = [
  `model "${join(tiny, 'model.onnx')}" tokenizer "${join(tiny, 'tokenizer.json')}"`,
  `dataset counterfact "${join(tiny, 'facts.json')}"`,
  'experiment flow {',
  '  for l in layers 1, 5',
  '  block subject -> last at layers l',
  '  measure probability',
  '}',
  '',
].join('\n');

/** A session that scales every past key it is fed: last-position rows then go wrong. */
function corrupting(s: RunSession): RunSession {
  return {
    ...s,
    run: (feeds, fetches) => s.run(Object.fromEntries(Object.entries(feeds).map(([k, v]) =>
      [k, k.startsWith(VariantNames.pastKeyPrefix) && v.dims.includes(0) === false
        ? new ort.Tensor('float32', (v.data as Float32Array).map((x) => 3 * x), v.dims) : v])), fetches),
  };
}

test('a disagreeing cross-check makes the run fall back to whole prompts, and the numbers are theirs', async (t) => {
  const dir = tempDir('cross-check');
  const file = join(dir, 'flow.dissect');
  writeFileSync(file, source);
  const loaded = loadProgram(file);
  t.true(loaded.plan.variant.lastPosition);
  const { selected } = selectedFacts(loaded, { limit: 6 });
  const variant = buildVariant(loaded.program.model.onnx, loaded.plan.variant);
  const session = corrupting(orThrow(await createSession(variant.bytes)));
  const fingerprint = runFingerprint({ sourceText: source, params: {}, choices: {}, modelSha256: 'm', tokenizerSha256: 't', datasetSha256: 'd', selection: {} });
  const journal = Journal.open<ExampleRecord>(join(dir, 'out'), fingerprint, { fresh: true });
  const counts = await executeExamples({
    program: loaded.program, plan: loaded.plan, variant, session, tokenizer: loaded.tokenizer, facts: selected, journal, batch: 4, lastPosition: true,
  });
  journal.close();
  await session.release();
  t.regex(counts.disagreement ?? '', /^fact \S+, flow row 0: p [\d.e-]+ as the last token, [\d.e-]+ over the whole prompt$/);
  t.is(counts.lastPosition, 0);
  t.true(counts.full > 0);

  // the journaled numbers are those of an honest whole-prompt run
  const honest = await runProgram(loaded, { out: join(dir, 'honest'), selection: { limit: 6 }, batch: 4, device: 'cpu', command: ['test'], fullRows: true });
  const kept = selected.map((f) => journal.get(f.id)!).filter((r): r is Extract<ExampleRecord, { status: 'kept' }> => r.status === 'kept');
  t.is(kept.length, honest.results.examples.length);
  const fromJournal = kept.flatMap((r) => r.rows[0]!.map((row) => row!.pNew));
  const fromHonest = honest.results.experiments[0]!.values.map((v) => v.values['probability']!);
  fromJournal.forEach((p, i) => t.true(Math.abs(p - fromHonest[i]!) <= 1e-6, `${p} vs ${fromHonest[i]}`));
});
