// The clean stream in the graph (CUDA's default plan), end to end on the CPU: every experiment
// of the start-layer suite (last-position rows from their first block, whole-prompt rows that
// block, cancel and patch, projections) on the default GPT-2 and GPT-J gives the host plan's
// numbers; and the runner's passes feed no activation and fetch no keys, values or hidden
// states: what crosses to the device is ids, masks and knockouts, what comes back read-outs.

import test from 'ava';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import type * as ort from 'onnxruntime-node';
import { buildVariant } from '../../src/onnx/compile.js';
import { CLEAN_STREAM_PREFIX, VariantNames } from '../../src/onnx/variant.js';
import type { ExampleRecord } from '../../src/measure/record.js';
import { cleanStreamFor, loadProgram, selectedFacts } from '../../src/pipeline/index.js';
import { orThrow } from '../../src/run/errors.js';
import { executeExamples } from '../../src/run/execute.js';
import { Journal, runFingerprint } from '../../src/run/journal.js';
import { createVariantSession, type RunSession, variantSessionConfig } from '../../src/run/session.js';
import { informationFlowSource, runSource, sameNumbers, START_LAYER_EXPERIMENTS, tempDir, tinyGpt2, tinyGptj } from './helpers.js';

for (const [name, model] of [['tiny-gpt2', tinyGpt2], ['tiny-gptj (rotary)', tinyGptj]] as const) {
  test.serial(`${name}: the clean stream in the graph gives the host plan's numbers`, async (t) => {
    const source = `${informationFlowSource(3, '', model)}\n${START_LAYER_EXPERIMENTS}\n`;
    const [inGraph, host] = [await runSource({ source, limit: 12, batch: 16, cleanStream: 'in-graph' }), await runSource({ source, limit: 12, batch: 16 })];
    t.like(inGraph.results.provenance.rows, { mode: 'last_position', cleanStream: 'in-graph', startLayer: { used: true } });
    t.like(host.results.provenance.rows, { mode: 'last_position', cleanStream: 'host' });
    t.is(inGraph.results.provenance.rows?.lastPositionRows, host.results.provenance.rows?.lastPositionRows);
    t.true(inGraph.results.data.kept > 0);
    t.true(sameNumbers(t, inGraph.results, host.results) > 1000);
    // the recomputed clean runs count, and going prompt by prompt keeps them near one a prompt
    t.is(host.cost.recomputedCleanRuns, 0);
    t.true(inGraph.cost.recomputedCleanRuns >= 1 && inGraph.cost.recomputedCleanRuns < 2.5, `${inGraph.cost.recomputedCleanRuns} clean runs recomputed a prompt`);
    t.true(inGraph.cost.cleanForwardEquivalents >= host.cost.cleanForwardEquivalents + 1, `${inGraph.cost.cleanForwardEquivalents} vs ${host.cost.cleanForwardEquivalents}`);
  });
}

test.serial('the recomputed clean runs are the prompts each batch of last-position rows reads, counted by hand', async (t) => {
  // the information flow alone: 24 last-position rows a fact (3 position sets × 8 layers), no
  // projections, so the rows go fact by fact in batches of batch.lastPosition; plus the
  // cross-check's batch of one row
  const { results, batch, cost } = await runSource({ source: informationFlowSource(3), limit: 12, batch: 16, cleanStream: 'in-graph' });
  const kept = results.data.kept;
  const perFact = 24;
  t.is(results.provenance.rows?.lastPositionRows, perFact * kept);
  const B = batch.lastPosition!;
  let spans = 1;
  for (let j = 0; j < kept; j++) spans += Math.floor((perFact * j + perFact - 1) / B) - Math.floor((perFact * j) / B) + 1;
  t.is(cost.recomputedCleanRuns, spans / kept);
});

test.serial('with the clean stream in the graph no pass feeds an activation or fetches keys, values or hidden states', async (t) => {
  const dir = tempDir('clean-stream');
  const file = join(dir, 'flow.dissect');
  writeFileSync(file, informationFlowSource(3));
  const loaded = loadProgram(file);
  const { selected } = selectedFacts(loaded, { limit: 6 });
  const variant = buildVariant(loaded.program.model.onnx, { ...loaded.plan.variant, startLayer: true, hiddenStates: true, cleanStream: 'in-graph' });
  const passes: { fetches: readonly string[]; floats: number; rows: number }[] = [];
  const inner = orThrow(await createVariantSession(variant));
  const session: RunSession = {
    ...inner,
    run: (feeds: Record<string, ort.Tensor>, fetches?: readonly string[]) => {
      const floats = Object.values(feeds).filter((f) => f.type === 'float32' || f.type === 'float16').reduce((s, f) => s + f.size, 0);
      passes.push({ fetches: fetches ?? [], floats, rows: feeds[VariantNames.lastIndex]!.dims[0]! });
      return inner.run(feeds, fetches);
    },
  };
  const fingerprint = runFingerprint({ sourceText: 'flow', params: {}, choices: {}, modelSha256: 'm', tokenizerSha256: 't', datasetSha256: 'd', selection: {} });
  const journal = Journal.open<ExampleRecord>(join(dir, 'out'), fingerprint, { fresh: true });
  const counts = await executeExamples({
    program: loaded.program, plan: loaded.plan, variant, session, tokenizer: loaded.tokenizer, facts: selected, journal, batch: 4,
    lastPosition: true, startLayer: true, shareClean: true,
  });
  journal.close();
  await session.release();
  t.true(counts.lastPosition > 0);
  t.is(counts.disagreement, undefined);
  t.true(passes.length > 2);
  const kept = (name: string): boolean => /^dissect_(key|value)_\d+$|^dissect_hidden_states$/.test(name.replace(CLEAN_STREAM_PREFIX, ''));
  t.deepEqual(passes.flatMap((p) => p.fetches.filter(kept)), []);
  t.deepEqual(passes.map((p) => p.floats), passes.map(() => 0));
});

test('the clean stream in the graph runs unpacked on the CPU (the copy would pack every weight again), as packed as ever on CUDA', (t) => {
  const weights = { layout: 'external-source-folder' as const, files: [], sessionConfig: { 'session.model_external_initializers_file_folder_path': '/m' } };
  t.deepEqual(variantSessionConfig({ weights, cleanStream: 'in-graph' }, 'cpu'), { ...weights.sessionConfig, 'session.disable_prepacking': '1' });
  t.deepEqual(variantSessionConfig({ weights, cleanStream: 'in-graph' }, 'cuda:0'), weights.sessionConfig);
  t.deepEqual(variantSessionConfig({ weights }, 'cpu'), weights.sessionConfig);
});

test('the clean stream is in the graph on CUDA unless told otherwise, on the host elsewhere', (t) => {
  t.deepEqual(['cuda', 'cuda:1', 'cpu'].map((device) => cleanStreamFor({ device })), ['in-graph', 'in-graph', 'host']);
  t.is(cleanStreamFor({ device: 'cuda', cleanStream: 'host' }), 'host');
  t.is(cleanStreamFor({ device: 'cpu', cleanStream: 'in-graph' }), 'in-graph');
});

test.serial('a run with the clean stream in the graph and one on the host do not share a journal', async (t) => {
  const out = join(tempDir('clean-stream-resume'), 'out');
  const source = informationFlowSource(3);
  await runSource({ source, limit: 2, out, cleanStream: 'in-graph' });
  await t.throwsAsync(runSource({ source, limit: 2, out }), { message: /journal\.jsonl belongs to a different run \(changed: extra\)/ });
});
