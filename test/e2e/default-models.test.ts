// The committed default models: each matches the SHA-256 on its card and answers at least
// 95% of its facts, read with plain onnxruntime and dissect's tokenizer and dataset loader.

import test from 'ava';
import * as ort from 'onnxruntime-node';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sha256File } from '../../src/onnx/index.js';
import { loadFacts } from '../../src/run/dataset.js';
import { orThrow } from '../../src/run/errors.js';
import { loadTokenizer } from '../../src/run/tokenizer.js';

const generated = fileURLToPath(new URL('../../../generated/', import.meta.url));

for (const name of ['tiny-gpt2', 'tiny-gptj']) {
  test.serial(`${name}: the card's SHA-256 and at least 95% of the facts answered at top-1`, async (t) => {
    const dir = join(generated, name);
    const card = JSON.parse(readFileSync(join(dir, 'card.json'), 'utf8')) as { sha256: string; fact_accuracy: number };
    t.is(sha256File(join(dir, 'model.onnx')), card.sha256);
    const tokenizer = orThrow(loadTokenizer(join(dir, 'tokenizer.json')));
    const facts = orThrow(loadFacts({ format: 'counterfact', path: join(dir, 'facts.json'), span: { file: 'test', line: 1, column: 1 }, pathSpan: { file: 'test', line: 1, column: 1 } })).facts;
    const session = await ort.InferenceSession.create(join(dir, 'model.onnx'), { intraOpNumThreads: 1, interOpNumThreads: 1 });
    let correct = 0;
    for (const f of facts) {
      const ids = tokenizer.encode(f.prompt).ids;
      const n = ids.length;
      const out = await session.run({
        input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, n]),
        attention_mask: new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]),
      });
      const logits = out['logits']!;
      const V = logits.dims[2]!;
      const last = (logits.data as Float32Array).subarray((n - 1) * V, n * V);
      let top = 0;
      for (let v = 1; v < V; v++) if (last[v]! > last[top]!) top = v;
      if (top === tokenizer.encode(f.target).ids[0]) correct++;
    }
    await session.release();
    const accuracy = correct / facts.length;
    t.log(`${correct}/${facts.length} facts answered`);
    t.true(accuracy >= 0.95, `accuracy ${accuracy}`);
    t.is(accuracy, card.fact_accuracy, 'the card states the accuracy measured here');
  });
}
