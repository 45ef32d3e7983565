// Numerics at real width, not only on 32- and 128-wide toys: a GPT-2-small-size graph
// (d 768, 12 heads of 64, MLP 3072, the 50257-token vocabulary; two blocks to keep CI fast)
// with random weights, written by the benchmark's generator into a temporary folder (never
// committed). A variant reproduces the logits, knockout cuts exactly, and the final-norm
// projection of the last hidden state ranks the vocabulary as the logits do.

import test from 'ava';
import { rmSync } from 'node:fs';
import { buildVariant } from '../../src/onnx/compile.js';
import { VariantNames } from '../../src/onnx/variant.js';
import { writeSkeleton } from '../../bench/skeleton.js';
import { bool, int64, maxAbs, maxAbsDiff, numbers, session, tempDir } from './helpers.js';

const GPT2_SMALL_WIDTH = { layers: 2, heads: 12, dModel: 768, vocab: 50257, positions: 64, dMlp: 3072 };

test.serial('GPT-2-small width: logits reproduced, knockout exact, projection ranks like the logits', async (t) => {
  const dir = tempDir('full-width');
  try {
    const path = writeSkeleton(dir, GPT2_SMALL_WIDTH, { lazy: false, seed: 5 });
    const ids = [464, 3290, 318, 6898, 416, 50256, 13, 1101];
    const n = ids.length;
    const feeds = {
      input_ids: int64(ids, [1, n]), attention_mask: int64(new Array(n).fill(1), [1, n]), position_ids: int64(ids.map((_, i) => i), [1, n]),
    };
    const original = await session(path);
    const base = numbers((await original.run(feeds)).logits!);
    await original.release();
    const V = GPT2_SMALL_WIDTH.vocab;
    const last = base.slice((n - 1) * V, n * V);
    const order = last.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]).map(([, i]) => i);

    const built = buildVariant(path, {
      knockout: 'replace_half_min', logits: true, attentionProbs: true,
      projections: [{ site: 'hidden', layers: [GPT2_SMALL_WIDTH.layers], via: 'final_norm_unembedding', k: 5, vocabLimit: V }],
    });
    const v = await session(built.bytes, built.manifest.weights.sessionConfig);
    const L = GPT2_SMALL_WIDTH.layers;
    const mask = new Uint8Array(L * n * n);
    mask[1 * n * n + (n - 1) * n + 2] = 1; // layer 1: last ↛ position 2
    const out = await v.run({
      ...feeds,
      [VariantNames.knockout]: bool(new Uint8Array(L * n * n), [1, L, 1, n, n]),
      [VariantNames.lastIndex]: int64([n - 1], [1]),
      [VariantNames.target]: int64([order[0]!], [1]),
      [VariantNames.projPositions]: int64([n - 1], [1, 1]),
    });
    t.true(maxAbsDiff(numbers(out.logits!), base) <= 1e-5 * maxAbs(base), 'no intervention: the original logits');
    t.deepEqual(numbers(out[`${VariantNames.projPrefix}hidden_ids`]!), order.slice(0, 5), 'final norm + LM head of hidden L ranks like the logits');
    t.deepEqual(numbers(out[`${VariantNames.projPrefix}hidden_target_rank`]!), [0]);

    const cut = await v.run({
      ...feeds,
      [VariantNames.knockout]: bool(mask, [1, L, 1, n, n]),
      [VariantNames.lastIndex]: int64([n - 1], [1]),
      [VariantNames.target]: int64([order[0]!], [1]),
      [VariantNames.projPositions]: int64([n - 1], [1, 1]),
    });
    const probs = numbers(cut[`${VariantNames.attnProbsPrefix}1`]!);
    for (let h = 0; h < GPT2_SMALL_WIDTH.heads; h++) {
      const row = probs.slice((h * n + n - 1) * n, (h * n + n) * n);
      t.is(row[2], 0, `head ${h}: the blocked weight is exactly 0`);
      t.true(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-6, `head ${h}: the row still sums to 1`);
    }
    await v.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
