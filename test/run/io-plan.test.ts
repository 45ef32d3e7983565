// The fetch plan of each kind of forward pass: what the host reads, and the outputs that come
// back as feeds, nothing else (with CUDA every fetched output is copied off the device).

import test from 'ava';
import { buildVariant } from '../../src/onnx/compile.js';
import { VariantNames } from '../../src/onnx/variant.js';
import type { ProbePlan } from '../../src/plan/plan.js';
import { buildFeeds, type BatchRow } from '../../src/run/batch.js';
import { InternalError } from '../../src/run/errors.js';
import { passIO } from '../../src/run/io-plan.js';
import { fixturePath } from '../onnx/helpers.js';

const { manifest } = buildVariant(fixturePath('gpt2-opset14.onnx'), {
  knockout: 'replace_half_min', logits: false, lastPosition: true, patch: true, hiddenStates: true,
  projections: [{ site: 'hidden', layers: [0, 1, 2], via: 'embedding', k: 3, vocabLimit: 64 }],
});
const rows: BatchRow[] = [{ ids: [5, 6, 7], lastIndex: 2, target: -1 }, { ids: [8, 9], lastIndex: 1, target: -1 }];
const extraction: ProbePlan = { kind: 'extraction', ids: ['x'], site: 'hidden', layer: 1, at: { kind: 'named', name: 'last' }, k: 3 };
const rank: ProbePlan = { kind: 'target_rank', ids: ['r'], site: 'hidden', layer: 2, at: { kind: 'named', name: 'last' }, k: 1 };

test('a clean pass fetches its top-1, its rows\' probes, and the keys, values and hidden states that come back as feeds', (t) => {
  const io = passIO({ kind: 'clean', probes: [extraction, rank, extraction], hidden: true, cache: true }, manifest, rows);
  t.deepEqual([...io.fetches], [
    VariantNames.top1, VariantNames.top1Prob, 'dissect_proj_hidden_ids', 'dissect_proj_hidden_scores', 'dissect_proj_hidden_target_rank',
    VariantNames.hiddenStates, 'dissect_key_0', 'dissect_value_0', 'dissect_key_1', 'dissect_value_1',
  ]);
  t.deepEqual(Object.keys(io.feeds), Object.keys(buildFeeds(manifest, rows)));
  t.deepEqual(io.feeds['input_ids']!.data, buildFeeds(manifest, rows)['input_ids']!.data);
});

test('rows fetch their read-outs and their probes\' outputs only; a corrupted prompt and an intervened integration row their hidden states only', (t) => {
  t.deepEqual([...passIO({ kind: 'rows', probes: [] }, manifest, rows).fetches], [VariantNames.targetProb, VariantNames.targetRank]);
  t.deepEqual([...passIO({ kind: 'rows', probes: [rank] }, manifest, rows).fetches],
    [VariantNames.targetProb, VariantNames.targetRank, 'dissect_proj_hidden_target_rank']);
  t.deepEqual([...passIO({ kind: 'corrupted', probes: [], hidden: true }, manifest, rows).fetches], [VariantNames.hiddenStates]);
  t.deepEqual([...passIO({ kind: 'integration', probes: [], hidden: true }, manifest, rows).fetches], [VariantNames.hiddenStates]);
  // the variant outputs far more than a row reads (keys, values, hidden states): none of it is fetched
  t.true(manifest.outputs.length > 10);
});

test('a fetch the variant does not output is a contract error', (t) => {
  const lean = buildVariant(fixturePath('gpt2-opset14.onnx'), { knockout: false, logits: false }).manifest;
  t.throws(() => passIO({ kind: 'clean', probes: [], hidden: true }, lean, rows),
    { instanceOf: InternalError, message: /a clean pass fetches dissect_hidden_states, which the variant does not output/ });
  t.throws(() => passIO({ kind: 'clean', probes: [], cache: true }, lean, rows), { instanceOf: InternalError, message: /without a cache/ });
});
