// fp16 models: a knockout sweep on the fp16 conversion of a fixture gives the fp32 numbers
// within the documented tolerance (spec.md, "Compiled variants": 2e-3 absolute on
// probabilities), with the same top-1 and the same blocked-weight semantics; the real fp16
// exports compile to variants that compute in fp16.

import test from 'ava';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildVariant, VariantNames } from '../../src/onnx/index.js';
import { lastPositionUnsupported } from '../../src/onnx/passes/last-position.js';
import { DataType, decodeModel } from '../../src/onnx/proto.js';
import { readSourceModel } from '../../src/onnx/source.js';
import { buildFeeds, cleanCache, type BatchRow } from '../../src/run/batch.js';
import { orThrow } from '../../src/run/errors.js';
import { buildKnockoutMask } from '../../src/run/knockout-mask.js';
import { createSession } from '../../src/run/session.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../generated/fixtures/${name}`, import.meta.url));

test('knockout on fp16 equals fp32 within 2e-3 in probability, same top-1', async (t) => {
  const prompts = [[5, 9, 17, 33, 2, 41, 7], [12, 3, 60, 8, 19]];
  const probs: Record<string, { top1: number[]; target: number[] }> = {};
  for (const name of ['gpt2-opset14.onnx', 'gpt2-fp16.onnx']) {
    const variant = buildVariant(fixture(name), { knockout: 'replace_half_min', logits: false });
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

test('fp16: rows as the last token against the clean cache equal whole-prompt rows within 2e-3', async (t) => {
  const variant = buildVariant(fixture('gpt2-fp16.onnx'), { knockout: 'replace_half_min', logits: false, lastPosition: true });
  const session = orThrow(await createSession(variant.bytes));
  const cache = variant.manifest.cache!.flatMap((c) => [c.key, c.value]);
  t.true(variant.manifest.inputs.filter((i) => cache.some((s) => s.input === i.name)).every((i) => i.dtype === 'float16'));
  const prompts = [[5, 9, 17, 33, 2, 41, 7], [12, 3, 60, 8, 19]];
  const L = variant.manifest.layers;
  const clean = await session.run(buildFeeds(variant.manifest, prompts.map((ids) => ({ ids, lastIndex: ids.length - 1, target: ids[0]! }))),
    cache.map((s) => s.output));
  const pasts = cleanCache(variant.manifest, [clean]);
  t.is(pasts.slots[0]!.type, 'float16');
  const whole: BatchRow[] = [];
  const last: BatchRow[] = [];
  prompts.forEach((ids, r) => {
    const n = ids.length;
    for (let layer = 0; layer < L; layer++) {
      const mask = buildKnockoutMask([{ layers: [layer], heads: 'all', source: { kind: 'named', name: 'nonsubject' }, target: { kind: 'named', name: 'last' } }],
        { n, subject: { start: 1, end: 3 } }, L, 1, n);
      whole.push({ ids, lastIndex: n - 1, target: ids[0]!, knockout: mask });
      last.push({
        ids: [ids[n - 1]!], lastIndex: 0, target: ids[0]!,
        knockout: { layers: L, heads: 1, seq: 1, data: mask.data.filter((_, i) => Math.floor(i / n) % n === n - 1) },
        past: { position: n - 1, cache: pasts, prompt: r },
      });
    }
  });
  const a = Array.from((await session.run(buildFeeds(variant.manifest, whole), [VariantNames.targetProb]))[VariantNames.targetProb]!.data as Float32Array);
  const b = Array.from((await session.run(buildFeeds(variant.manifest, last), [VariantNames.targetProb]))[VariantNames.targetProb]!.data as Float32Array);
  await session.release();
  const worst = Math.max(...a.map((p, i) => Math.abs(p - b[i]!)));
  t.true(worst <= 2e-3, `worst ${worst}`);
  t.true(a.some((p, i) => i > 0 && Math.abs(p - a[0]!) > 1e-3), 'the knockout moved the numbers');
});

// The fp16 exports of the real-exports zoo (transformers' GPT-2 and Llama, model.half(), TorchScript)
const ZOO = fileURLToPath(new URL('../../../generated/real/', import.meta.url));

for (const family of ['gpt2', 'llama']) {
  test(`real ${family} fp16 export: the variant computes in fp16; dissect casts to float32 only where it reads out`, async (t) => {
    const path = `${ZOO}${family}/ts-17-eager-fp16.onnx`;
    const lastPosition = !lastPositionUnsupported(readSourceModel(path).sites);
    const variant = buildVariant(path, {
      knockout: 'replace_half_min', logits: false, lastPosition, patch: true, hiddenStates: true, gates: { attention: 'zero_update', mlp: 'zero_update' },
      projections: [{ site: 'hidden', layers: [1], via: 'embedding', k: 3, vocabLimit: 128 }],
    });
    t.is(variant.manifest.dtype, 'float16');
    const activations = [
      ...variant.manifest.inputs.filter((i) => i.rule === 'past' || i.rule === 'patch_values'),
      ...variant.manifest.outputs.filter((o) => o.name === VariantNames.hiddenStates || o.name.startsWith(VariantNames.keyPrefix) || o.name.startsWith(VariantNames.valuePrefix)),
    ];
    t.is(activations.length, 2 + (lastPosition ? 4 * variant.manifest.layers : 0));
    t.deepEqual(activations.filter((a) => a.dtype !== 'float16').map((a) => a.name), []);
    const upcasts = (decodeModel(variant.bytes).graph!.node ?? []).filter((n) => n.opType === 'Cast' && n.name?.startsWith('dissect/')
      && n.attribute?.some((a) => a.name === 'to' && Number(a.i) === DataType.FLOAT));
    t.true(upcasts.length > 0);
    t.deepEqual(upcasts.filter((n) => !/^dissect\/(reduce|proj)\//.test(n.name!)).map((n) => n.name), [], 'only read-outs are cast to float32');
    // and it runs: the clean top-1 is transformers' fp16 top-1
    const expected = JSON.parse(readFileSync(`${ZOO}${family}/expected.json`, 'utf8')) as {
      prompts: { name: string; input_ids: number[]; last: number }[]; clean_fp16: { prompt: string; logits: number[][] }[];
    };
    const p = expected.prompts[0]!;
    const session = orThrow(await createSession(variant.bytes));
    const out = await session.run(buildFeeds(variant.manifest, [{ ids: p.input_ids.slice(0, p.last + 1), lastIndex: p.last, target: -1 }]), [VariantNames.top1]);
    const logits = expected.clean_fp16.find((c) => c.prompt === p.name)!.logits[p.last]!;
    t.is(Number(out[VariantNames.top1]!.data[0]), logits.indexOf(Math.max(...logits)));
    await session.release();
  });
}
