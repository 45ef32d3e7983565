// The clean stream in the graph (the CUDA plan; src/onnx/passes/clean-stream.ts), run on the
// CPU against the host plan on the same exports: a pass of whole prompts (run in the graph's
// clean copy) gives the host variant's numbers, and last-position rows, from block 0 and from a
// later block, give the numbers of rows fed the clean pass's keys, values and hidden state.
// What crosses to the host is checked too: no past or hidden state is fed, none is fetched.

import test from 'ava';
import { join } from 'node:path';
import { buildVariant } from '../../src/onnx/compile.js';
import { CLEAN_STREAM_PREFIX, VariantNames, type VariantRequest } from '../../src/onnx/variant.js';
import { cleanCache, type BatchRow, type CleanCache } from '../../src/run/batch.js';
import { orThrow } from '../../src/run/errors.js';
import { passIO } from '../../src/run/io-plan.js';
import { createVariantSession, type DecodedTensor } from '../../src/run/session.js';
import { buildKnockoutMask } from '../../src/run/knockout-mask.js';
import { REPO, fixturePath } from './helpers.js';

const MODELS = [
  { name: 'tiny-gpt2 (keys kept transposed)', path: join(REPO, 'generated', 'tiny-gpt2', 'model.onnx') },
  { name: 'gpt2-opset14', path: fixturePath('gpt2-opset14.onnx') },
  { name: 'gpt2-optimum', path: fixturePath('gpt2-optimum.onnx') },
  { name: 'gpt2-ort-fused (onnxruntime\'s fused attention, expanded)', path: fixturePath('gpt2-ort-fused.onnx') },
  { name: 'gpt2-fp16 (the start block\'s hidden state cast to the model\'s dtype)', path: fixturePath('gpt2-fp16.onnx') },
  { name: 'llama-optimum', path: fixturePath('llama-optimum.onnx') },
  { name: 'gptj-optimum', path: fixturePath('gptj-optimum.onnx') },
  // rotary positions one row for the batch: its prompts are of one length
  { name: 'tiny-gptj', path: join(REPO, 'generated', 'tiny-gptj', 'model.onnx'), equalLengths: true },
  { name: 'real gpt2 (Optimum)', path: join(REPO, 'generated', 'real', 'gpt2', 'ts-17-eager-fp32-optimum.onnx') },
];
const REQUEST: VariantRequest = { knockout: 'replace_half_min', logits: false, lastPosition: true, startLayer: true, hiddenStates: true };
const numbers = (t: DecodedTensor | undefined): number[] => Array.from(t!.data as ArrayLike<number | bigint>, Number);
/** Bytes of activations (float feeds) a pass sends to the device. */
const floatBytes = (feeds: Record<string, { readonly type: string; readonly data: unknown }>): number => Object.values(feeds)
  .filter((t) => t.type === 'float32' || t.type === 'float16').reduce((s, t) => s + (t.data as ArrayBufferView).byteLength, 0);

for (const m of MODELS) {
  test(`${m.name}: the clean stream in the graph gives the host plan's numbers, and nothing of the clean run crosses to the host`, async (t) => {
    const host = buildVariant(m.path, REQUEST);
    const inGraph = buildVariant(m.path, { ...REQUEST, cleanStream: 'in-graph' });
    const { layers: L, dModel: d } = host.manifest;
    const start = host.manifest.inputs.some((i) => i.name === VariantNames.startLayer) ? L - 2 : 0;
    // the rows' part takes no past and no hidden state: its clean copy's are computed where they are read
    const rowsPart = inGraph.manifest.inputs.filter((i) => !i.name.startsWith(CLEAN_STREAM_PREFIX));
    t.deepEqual(rowsPart.filter((i) => i.rule === 'past' || i.rule === 'start_hidden').map((i) => i.name), []);
    t.true(rowsPart.some((i) => i.rule === 'past_length'));
    t.is(inGraph.manifest.cleanStream, 'in-graph');
    const [a, b] = [orThrow(await createVariantSession(host)), orThrow(await createVariantSession(inGraph))];

    const prompts = m.equalLengths ? [[5, 17, 42, 3, 60, 9], [7, 28, 51, 2, 19, 33]] : [[5, 17, 42, 3, 60, 9], [7, 28, 51, 2]];
    const whole: BatchRow[] = prompts.map((ids) => ({ ids, lastIndex: ids.length - 1, target: -1 }));
    const cleanHost = passIO({ kind: 'clean', probes: [], hidden: true, cache: true }, host.manifest, whole);
    const cleanInGraph = passIO({ kind: 'clean', probes: [], cache: false }, inGraph.manifest, whole);
    // a clean pass of whole prompts runs in the copy and fetches its read-outs alone
    t.deepEqual(cleanInGraph.fetches, [VariantNames.top1, VariantNames.top1Prob].map((f) => CLEAN_STREAM_PREFIX + f));
    const [x, y] = [await cleanHost.run(a), await cleanInGraph.run(b)];
    t.deepEqual(numbers(y[VariantNames.top1]), numbers(x[VariantNames.top1]));
    // the copy is the variant itself; onnxruntime may fuse the larger fp16 graph's kernels otherwise
    const tolerance = host.manifest.dtype === 'float16' ? 2e-3 : 1e-6;
    const within = (p: DecodedTensor | undefined, q: DecodedTensor | undefined): number => {
      const b = numbers(q);
      return Math.max(...numbers(p).map((v, i) => Math.abs(v - b[i]!)));
    };
    t.true(within(x[VariantNames.top1Prob], y[VariantNames.top1Prob]) <= tolerance, 'the clean pass in the copy');

    const hidden = x[VariantNames.hiddenStates]!.data as Float32Array;
    const S = Math.max(...prompts.map((p) => p.length));
    const tensors = cleanCache(host.manifest, [x]);
    const recomputed: CleanCache = { kind: 'prompts', rows: whole.map((r) => ({ ...r, target: 0 })), prompts: whole.length, seq: S };
    for (const from of [...new Set([0, start])]) {
      // each prompt: its last token with the edges from its first two positions blocked, from block `from` on
      const rows = (cache: CleanCache, withHidden: boolean): BatchRow[] => prompts.flatMap((ids, p) => [0, 1].map((r): BatchRow => {
        const n = ids.length;
        const mask = buildKnockoutMask([{ layers: Array.from({ length: L - from }, (_, i) => from + i), heads: 'all',
          source: { kind: 'indices', indices: r ? [0, 1] : [1] }, target: { kind: 'named', name: 'last' } }], { n, subject: { start: 1, end: 2 } }, L, 1, n);
        const last = mask.data.filter((_, i) => Math.floor(i / n) % n === n - 1);
        const h = hidden.subarray((((p * (L + 1)) + from) * S + n - 1) * d, (((p * (L + 1)) + from) * S + n) * d);
        return {
          ids: [ids[n - 1]!], lastIndex: 0, target: 11 + r, knockout: { layers: L, heads: 1, seq: 1, data: last },
          past: { position: n - 1, cache, prompt: p },
          ...(from ? { start: { layer: from, ...(withHidden ? { hidden: Float32Array.from(h) } : {}) } } : {}),
        };
      }));
      const onHost = passIO({ kind: 'rows', probes: [] }, host.manifest, rows(tensors, true));
      const onDevice = passIO({ kind: 'rows', probes: [] }, inGraph.manifest, rows(recomputed, false));
      t.deepEqual(onDevice.fetches, [VariantNames.targetProb, VariantNames.targetRank]);
      // the host plan feeds every prompt's keys and values of every layer (and the start block's hidden state); the graph's, no activation
      t.is(floatBytes(onDevice.feeds), 0);
      t.true(floatBytes(onHost.feeds) >= 2 * L * prompts.length * 3 * 4, `host feeds: ${floatBytes(onHost.feeds)} bytes of activations`);
      const [p, q] = [await onHost.run(a), await onDevice.run(b)];
      const worst = within(p[VariantNames.targetProb], q[VariantNames.targetProb]);
      t.true(worst <= tolerance, `from block ${from}: target probabilities differ by ${worst}`);
      t.deepEqual(numbers(q[VariantNames.targetRank]), numbers(p[VariantNames.targetRank]), `from block ${from}: ranks`);
    }
    await Promise.all([a.release(), b.release()]);
  });
}
