// The start-layer pass: a variant whose blocks can be skipped gives, at start 0, the logits of
// the variant without it, and at start s, fed the hidden state entering block s, the numbers
// of a run of every block, with blocks of edges at s and above; on the default GPT-2 and real
// GPT-J and Llama exports (rotary positions; Optimum's cache layout, with and without the
// cache inputs of last-position rows; external weights). An
// export with a block tensor of no known shape is left as it was, and the manifest says why.

import test from 'ava';
import ort from 'onnxruntime-node';
import { join } from 'node:path';
import { buildVariant, type BuiltVariant } from '../../src/onnx/compile.js';
import { VariantNames, type VariantRequest } from '../../src/onnx/variant.js';
import { buildFeeds, cleanCache, type BatchRow } from '../../src/run/batch.js';
import { REPO, numbers, session } from './helpers.js';

const MODELS = [
  join(REPO, 'generated', 'tiny-gpt2', 'model.onnx'),
  ...['gptj/ts-17-eager-fp32', 'llama/dynamo-20-eager-fp32', 'llama/ts-17-eager-fp32-optimum'].map((f) => join(REPO, 'generated', 'real', `${f}.onnx`)),
];
const PROMPTS = [[5, 17, 42, 3, 60, 9], [7, 28, 51, 2, 19, 33]];
const TARGETS = [11, 40];
const REQUEST: VariantRequest = { knockout: 'replace_half_min', logits: true, hiddenStates: true };

async function open(v: BuiltVariant): Promise<ort.InferenceSession> {
  return session(v.bytes, v.manifest.weights.sessionConfig);
}

/** Rows blocking, in every block from `from` on, the edges from positions 0 and 1 into every later position. */
function rows(layers: number, from: number): BatchRow[] {
  return PROMPTS.map((ids, r) => {
    const n = ids.length;
    const data = new Uint8Array(layers * n * n);
    for (let l = from; l < layers; l++) for (let q = 2; q < n; q++) data.set([1, 1], (l * n + q) * n);
    return { ids, lastIndex: n - 1, target: TARGETS[r]!, knockout: { layers, heads: 1, seq: n, data } };
  });
}

function maxDifference(a: ort.Tensor, b: ort.Tensor): number {
  const x = numbers(a);
  const y = numbers(b);
  if (x.length !== y.length) return Infinity;
  return x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i]!)), 0);
}

// Optimum's exports also with the cache a last-position run adds (their own past inputs; the
// keys and values of the run's tokens as outputs, whose stand-in shape the pass must know)
const CASES = [
  ...MODELS.map((path) => ({ path, request: REQUEST })),
  ...['gpt2/ts-17-eager-fp32-optimum', 'llama/ts-17-eager-fp32-optimum'].map((f) => ({
    path: join(REPO, 'generated', 'real', `${f}.onnx`), request: { ...REQUEST, lastPosition: true },
  })),
];

for (const { path, request } of CASES) {
  test(`${path.slice(REPO.length)}${request.lastPosition ? ' (with a cache)' : ''}: start 0 gives the source's logits, start s the numbers of every block run`, async (t) => {
    const plain = buildVariant(path, request);
    const skipping = buildVariant(path, { ...request, startLayer: true });
    t.true(skipping.manifest.inputs.some((i) => i.name === VariantNames.startLayer));
    t.regex(skipping.manifest.choices['startLayer']!, /^each block is an If/);
    const [a, b] = [await open(plain), await open(skipping)];
    const { layers: L, dModel: d } = plain.manifest;
    const unblocked = await a.run(buildFeeds(plain.manifest, rows(L, L)));
    for (const s of [...new Set([0, 1, L - 1, L])]) {
      const batch = rows(L, s);
      const full = await a.run(buildFeeds(plain.manifest, batch));
      if (s < L) t.true(maxDifference(full[VariantNames.targetProb]!, unblocked[VariantNames.targetProb]!) > 1e-6, `start ${s}: the blocks change the numbers`);
      // the hidden state entering block s, from the run of every block (blocks below s change nothing)
      const hidden = numbers(full[VariantNames.hiddenStates]!);
      const n = PROMPTS[0]!.length;
      const started = batch.map((row, r): BatchRow => (s === 0 ? row : {
        ...row, start: { layer: s, hidden: Float32Array.from(hidden.slice(((r * (L + 1) + s) * n) * d, ((r * (L + 1) + s) * n + n) * d)) },
      }));
      const fast = await b.run(buildFeeds(skipping.manifest, started));
      const logits = maxDifference(full['logits']!, fast['logits']!);
      if (s === 0) t.is(logits, 0, 'start 0: every block runs as in the source graph');
      else t.true(logits <= 1e-5, `start ${s}: logits differ by ${logits}`);
      t.true(maxDifference(full[VariantNames.targetProb]!, fast[VariantNames.targetProb]!) <= 1e-6, `start ${s}: target probability`);
      t.deepEqual(numbers(fast[VariantNames.targetRank]!), numbers(full[VariantNames.targetRank]!), `start ${s}: target rank`);
    }
    await Promise.all([a.release(), b.release()]);
  });
}

test('last-position rows from a high block: a skipped block returns its token\'s keys and values in their own shape, not the past\'s', async (t) => {
  // onnxruntime keeps every graph output to the end of a pass: a stand-in of the past's length
  // per skipped block held a pass of rows starting near the top of XL's shape 0.4 GB over its need
  const path = join(REPO, 'generated', 'tiny-gpt2', 'model.onnx');
  const v = buildVariant(path, { ...REQUEST, logits: false, lastPosition: true, startLayer: true });
  const s = await open(v);
  const { layers: L, dModel: d, heads: H } = v.manifest;
  const clean = await s.run(buildFeeds(v.manifest, PROMPTS.map((ids, r) => ({ ids, lastIndex: ids.length - 1, target: TARGETS[r]! }))));
  const decoded = Object.fromEntries(Object.entries(clean).map(([k, x]) => [k, { dims: x.dims, data: x.data }]));
  const cache = cleanCache(v.manifest, [decoded]);
  const hidden = numbers(clean[VariantNames.hiddenStates]!);
  const n = PROMPTS[0]!.length;
  const start = L - 1;
  const last = PROMPTS.map((ids, r): BatchRow => ({
    ids: [ids[n - 1]!], lastIndex: 0, target: TARGETS[r]!, past: { position: n - 1, cache, prompt: r },
    start: { layer: start, hidden: Float32Array.from(hidden.slice(((r * (L + 1) + start) * n + n - 1) * d, ((r * (L + 1) + start) * n + n) * d)) },
  }));
  const out = await s.run(buildFeeds(v.manifest, last));
  t.is(v.manifest.cache!.length, L);
  for (const { layer, key, value } of v.manifest.cache!) {
    for (const slot of [key, value]) {
      const own = [2, ...slot.dims];
      own[slot.seqAxis] = 1;
      t.is(own.reduce((a, b) => a * b, 1), 2 * d, `${slot.output}: one token's, [2, ${H} heads, d_head ${d / H}] in some order`);
      t.deepEqual(out[slot.output]!.dims, own, `${slot.output} (${layer < start ? 'skipped' : 'run'})`);
    }
  }
  await s.release();
});

test('an export with a block tensor of no known shape keeps every block, and the manifest says why', (t) => {
  // onnxruntime's fused rotary, expanded: the positions, computed in block 0 from its queries' shape, serve every block
  const built = buildVariant(join(REPO, 'generated', 'real', 'llama', 'ts-17-eager-fp32-gqa.onnx'), { ...REQUEST, startLayer: true });
  t.false(built.manifest.inputs.some((i) => i.name === VariantNames.startLayer || i.name === VariantNames.startHidden));
  t.is(built.manifest.choices['startLayer'], 'unavailable (block 0\'s tensor \'/model/layers.0/self_attn/q_rotary/RotaryEmbedding/positions\' is read outside ' +
    'the block and its shape is not known): every row runs from block 0, without the start-layer inputs');
});
