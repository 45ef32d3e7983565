// The limits found in each graph are the ones onnxruntime enforces: a prompt of as many tokens
// as the position table has rows runs, one more fails; likewise for token ids and the


import test from 'ava';
import { join } from 'node:path';
import { buildVariant } from '../../src/onnx/compile.js';
import { detectSites, modelLimits, readModel } from '../../src/onnx/index.js';
import { buildFeeds } from '../../src/run/batch.js';
import { orThrow } from '../../src/run/errors.js';
import { createVariantSession } from '../../src/run/session.js';
import { FIXTURE_DIR, REPO } from './helpers.js';

const models: [string, { rows: number; positions?: number; table?: RegExp }][] = [
  ['gpt2-opset14.onnx', { rows: 64, positions: 32, table: /wpe/ }],
  ['gpt2-optimum.onnx', { rows: 64, positions: 32, table: /wpe/ }],
  ['gpt2-ort-fused.onnx', { rows: 64, positions: 32, table: /wpe/ }],
  ['gptj-optimum.onnx', { rows: 64, positions: 32, table: /./ }], // sin/cos looked up by position_ids
  ['llama-opset14.onnx', { rows: 64, positions: 32, table: /rotary_emb/ }], // sin/cos cut to the sequence length
  ['llama-optimum.onnx', { rows: 64, positions: 32, table: /./ }],
  [join(REPO, 'generated/tiny-gpt2/model.onnx'), { rows: 264, positions: 64, table: /wpe/ }],
  [join(REPO, 'generated/tiny-gptj/model.onnx'), { rows: 272, positions: 64, table: /attn/ }], // embed_positions
  // real exports: GPT-J's table repeated over the batch and read by GatherElements; Llama computes its sin/cos
  [join(REPO, 'generated/real/gptj/ts-17-eager-fp32.onnx'), { rows: 128, positions: 64, table: /attn/ }],
  [join(REPO, 'generated/real/gptj/dynamo-18-eager-fp32.onnx'), { rows: 128, positions: 64, table: /./ }],
  [join(REPO, 'generated/real/llama/ts-17-eager-fp32.onnx'), { rows: 128 }],
];

for (const [name, expected] of models) {
  const positions = expected.positions === undefined ? 'no position limit' : `${expected.positions} positions`;
  test(`${name.split('/').slice(-2).join('/')}: ${positions}, as onnxruntime enforces, and ${expected.rows} embedding rows`, async (t) => {
    const path = name.startsWith('/') ? name : join(FIXTURE_DIR, name);
    const model = readModel(path);
    const limits = modelLimits(model, detectSites(model, path));
    t.is(limits.embeddingRows, expected.rows);
    t.is(limits.positions?.count, expected.positions);
    if (expected.table) t.regex(limits.positions!.table, expected.table);
    const variant = buildVariant(path, { knockout: false, logits: false });
    const session = orThrow(await createVariantSession(variant));
    const run = (n: number) => session.run(buildFeeds(variant.manifest, [{ ids: new Array<number>(n).fill(expected.rows - 1), lastIndex: n - 1, target: 0 }]));
    if (expected.positions === undefined) {
      await t.notThrowsAsync(run(200));
    } else {
      await t.notThrowsAsync(run(expected.positions));
      await t.throwsAsync(run(expected.positions + 1), { message: /out of|bounds|invalid|broadcast/i });
    }
    await session.release();
  });
}
