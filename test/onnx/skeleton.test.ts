import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { buildVariant } from '../../src/onnx/compile.js';
import { DataLocation, readModel } from '../../src/onnx/proto.js';
import { detectSites } from '../../src/onnx/sites/index.js';
import { buildSkeleton, writeSkeleton } from '../../bench/skeleton.js';
import { bool, int64, maxAbs, maxAbsDiff, numbers, session, tempDir } from './helpers.js';

// The benchmark's synthetic graph, small and with random weights: MatMul + Add linears,
// fused LayerNormalization, 0-dim Reshapes, position_ids input, external data.
const SHAPE = { layers: 3, heads: 2, dModel: 16, vocab: 40, positions: 16, dMlp: 64 };

test.serial('a MatMul-linear GPT-2 with external data is detected and its variant reproduces the logits', async (t) => {
  const dir = tempDir('skeleton');
  const path = writeSkeleton(dir, SHAPE, { lazy: false, seed: 3 });
  const s = detectSites(readModel(path), path);
  t.like(s, { layers: 3, heads: 2, dHead: 8, dModel: 16, dMlp: 64, vocab: 40 });
  t.is(s.unembedding.op, 'MatMul');
  t.is(s.inputs.positionIds, 'position_ids');
  t.is(s.perLayer[0]!.kLayout, 'bhds');

  const ids = [3, 1, 4, 1, 5, 9];
  const n = ids.length;
  const feeds = {
    input_ids: int64(ids, [1, n]), attention_mask: int64(new Array(n).fill(1), [1, n]), position_ids: int64(ids.map((_, i) => i), [1, n]),
  };
  const base = numbers((await (await session(path)).run(feeds)).logits!);
  const built = buildVariant(path, { knockout: 'replace_half_min', logits: true, attentionProbs: true });
  const v = await session(built.bytes, built.manifest.weights.sessionConfig);
  const run = (blocked: boolean) => v.run({
    ...feeds,
    dissect_knockout: bool(new Uint8Array(SHAPE.layers * n * n).fill(blocked ? 1 : 0), [1, SHAPE.layers, 1, n, n]),
    dissect_last_index: int64([n - 1], [1]),
    dissect_target: int64([0], [1]),
  });
  const clean = await run(false);
  t.true(maxAbsDiff(numbers(clean.logits!), base) <= 1e-5 * maxAbs(base));
  const all = numbers((await run(true)).dissect_attn_probs_2!);
  for (let q = 0; q < n; q++) t.true(all.slice(q * n, q * n + n).every((p, k) => Math.abs(p - (k <= q ? 1 / (q + 1) : 0)) < 1e-6));
});

test('writeSkeleton streams the weights buildSkeleton makes: the same bytes, the large ones external at 4096-byte boundaries', (t) => {
  const dir = tempDir('skeleton-streamed');
  const written = readModel(writeSkeleton(dir, SHAPE, { lazy: false, seed: 3 })).graph!.initializer!;
  const built = new Map(buildSkeleton(SHAPE, { lazy: false, seed: 3 }).graph!.initializer!.map((x) => [x.name, x]));
  const file = readFileSync(join(dir, 'weights.bin'));
  let external = 0;
  for (const w of written) {
    const entry = (key: string) => Number(w.externalData?.find((e) => e.key === key)?.value);
    const bytes = w.dataLocation === DataLocation.EXTERNAL ? file.subarray(entry('offset'), entry('offset') + entry('length')) : w.rawData!;
    if (w.dataLocation === DataLocation.EXTERNAL) {
      external++;
      t.is(entry('offset') % 4096, 0);
    }
    t.deepEqual(Buffer.from(bytes), Buffer.from(built.get(w.name)!.rawData!), w.name!);
  }
  t.is(written.length, built.size);
  t.true(external >= 3 * 4); // every layer's linear weights at least
});
