// The limits found in each graph are the ones onnxruntime enforces: a prompt of as many tokens
// as the position table has rows runs, one more fails; likewise for token ids and the


import test from 'ava';
import { join } from 'node:path';
import { buildVariant } from '../../src/onnx/compile.js';
import { detectSites, modelLimits, readModel } from '../../src/onnx/index.js';
import { buildFeeds } from '../../src/run/batch.js';
import { orThrow } from '../../src/run/errors.js';
import { createSession } from '../../src/run/session.js';
import { FIXTURE_DIR, REPO } from './helpers.js';

const models: [string, { rows: number; positions: number; table: RegExp }][] = [
  ['gpt2-opset14.onnx', { rows: 64, positions: 32, table: /wpe/ }],
  ['gpt2-optimum.onnx', { rows: 64, positions: 32, table: /wpe/ }],
  ['gpt2-ort-fused.onnx', { rows: 64, positions: 32, table: /wpe/ }],
  ['gptj-optimum.onnx', { rows: 64, positions: 32, table: /./ }], // sin/cos looked up by position_ids
  ['llama-opset14.onnx', { rows: 64, positions: 32, table: /rotary_emb/ }], // sin/cos cut to the sequence length
  ['llama-optimum.onnx', { rows: 64, positions: 32, table: /./ }],
  [join(REPO, 'generated/tiny-gpt2/model.onnx'), { rows: 264, positions: 64, table: /wpe/ }],
  [join(REPO, 'generated/tiny-gptj/model.onnx'), { rows: 272, positions: 64, table: /attn/ }], // embed_positions
];

for (const [name, expected] of models) {
  test(`${name.split('/').slice(-2).join('/')}: ${expected.positions} positions, as onnxruntime enforces, and ${expected.rows} embedding rows`, async (t) => {
    const path = name.startsWith('/') ? name : join(FIXTURE_DIR, name);
    const model = readModel(path);
    const limits = modelLimits(model, detectSites(model, path));
    t.is(limits.embeddingRows, expected.rows);
    t.is(limits.positions?.count, expected.positions);
    t.regex(limits.positions?.table ?? '', expected.table);
    const variant = buildVariant(path, { knockout: false, logits: false });
    const session = orThrow(await createSession(variant.bytes));
    const run = (ids: number[]) => session.run(buildFeeds(variant.manifest, [{ ids, lastIndex: ids.length - 1, target: 0 }]));
    await t.notThrowsAsync(run(new Array<number>(expected.positions).fill(expected.rows - 1)));
    await t.throwsAsync(run(new Array<number>(expected.positions + 1).fill(1)), { message: /out of|bounds|invalid|broadcast/i });
    await session.release();
  });
}
