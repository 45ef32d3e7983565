// fp16 models: a knockout sweep on the fp16 conversion of a fixture gives the fp32 numbers
// within the documented tolerance (spec.md, "Compiled variants": 2e-3 absolute on
// probabilities), with the same top-1 and the same blocked-weight semantics.

import test from 'ava';
import { fileURLToPath } from 'node:url';
import { buildVariant, VariantNames } from '../../src/onnx/index.js';
import { buildFeeds, type BatchRow } from '../../src/run/batch.js';
import { orThrow } from '../../src/run/errors.js';
import { buildKnockoutMask } from '../../src/run/knockout-mask.js';
import { createSession } from '../../src/run/session.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../generated/fixtures/${name}`, import.meta.url));

test('knockout on fp16 equals fp32 within 2e-3 in probability, same top-1', async (t) => {
  const prompts = [[5, 9, 17, 33, 2, 41, 7], [12, 3, 60, 8, 19]];
  const probs: Record<string, { top1: number[]; target: number[] }> = {};
  for (const name of ['gpt2-opset14.onnx', 'gpt2-fp16.onnx']) {
    const variant = buildVariant(fixture(name), { knockout: true, logits: false });
    const session = orThrow(await createSession(variant.bytes));
    const rows: BatchRow[] = [];
    for (const ids of prompts) {
      const n = ids.length;
      const ex = { n, subject: { start: 1, end: 3 } };
      for (let layer = 0; layer < variant.manifest.layers; layer++) {
        for (const source of ['subject', 'nonsubject', 'all'] as const) {
          const knockout = buildKnockoutMask([{ layers: [layer], heads: 'all', source: { kind: 'named', name: source }, target: { kind: 'named', name: 'last' } }],
            ex, variant.manifest.layers, 1, n);
          rows.push({ ids, lastIndex: n - 1, target: ids[0]!, knockout });
        }
      }
    }
    const out = await session.run(buildFeeds(variant.manifest, rows));
    probs[name] = {
      top1: Array.from(out[VariantNames.top1]!.data as BigInt64Array, Number),
      target: Array.from(out[VariantNames.targetProb]!.data as Float32Array),
    };
    await session.release();
  }
  const fp32 = probs['gpt2-opset14.onnx']!;
  const fp16 = probs['gpt2-fp16.onnx']!;
  t.deepEqual(fp16.top1, fp32.top1);
  const worst = Math.max(...fp32.target.map((p, i) => Math.abs(p - fp16.target[i]!)));
  t.log(`worst |p16 - p32| = ${worst.toExponential(2)} over ${fp32.target.length} rows`);
  t.true(worst <= 2e-3, `worst ${worst}`);
  t.true(fp16.target.every((p) => Number.isFinite(p)), 'no NaN, also in the fully blocked rows');
});
