// A model with inline weights is read without them: its large initializers become references to
// their bytes in the .onnx file itself, which onnxruntime reads, and `dissect compile` puts back.

import test from 'ava';
import { closeSync, openSync, readFileSync, readSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildSkeleton, writeSkeleton } from '../../bench/skeleton.js';
import { UserError } from '../../src/errors.js';
import { buildVariant, compileVariant } from '../../src/onnx/compile.js';
import { externalRefs } from '../../src/onnx/external.js';
import { readModel, writeModel, type TensorProto } from '../../src/onnx/proto.js';
import { LEFT_ON_DISK_BYTES, readModelGraph, readSourceModel } from '../../src/onnx/source.js';
import { OutputFolder } from '../../src/output/folder.js';
import { int64, numbers, session, tempDir } from './helpers.js';

// the embedding and the LM head (2100 × 64 floats = 537,600 bytes) are over the on-disk threshold; nothing else is
const SHAPE = { layers: 1, heads: 2, dModel: 64, vocab: 2100, positions: 16, dMlp: 128 };
const LARGE = ['wte.weight', 'lm_head.weight'];

function inlineModel(): string {
  const path = join(tempDir('source'), 'model.onnx');
  writeModel(path, buildSkeleton(SHAPE, { lazy: false, seed: 3 }));
  return path;
}

function bytesAt(path: string, offset: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  const fd = openSync(path, 'r');
  readSync(fd, out, 0, length, offset);
  closeSync(fd);
  return out;
}

const byName = (tensors: readonly TensorProto[] | undefined, name: string): TensorProto => tensors!.find((t) => t.name === name)!;

test('the large inline initializers are left in the .onnx file, referenced where their bytes lie; the rest is read as decoded', (t) => {
  const path = inlineModel();
  const whole = readModel(path);
  const lean = readModelGraph(path);
  t.true(LARGE.every((n) => byName(whole.graph!.initializer, n).rawData!.length > LEFT_ON_DISK_BYTES));
  const refs = externalRefs(lean);
  t.deepEqual(refs.map((r) => r.tensor).sort(), [...LARGE].sort());
  for (const ref of refs) {
    t.is(ref.location, 'model.onnx');
    t.deepEqual(bytesAt(path, ref.offset, ref.length!), Buffer.from(byName(whole.graph!.initializer, ref.tensor).rawData!), ref.tensor);
  }
  for (const w of whole.graph!.initializer!) {
    if (LARGE.includes(w.name!)) continue;
    t.deepEqual(Buffer.from(byName(lean.graph!.initializer, w.name!).rawData ?? []), Buffer.from(w.rawData ?? []), w.name);
  }
  t.deepEqual(lean.graph!.node, whole.graph!.node);
  t.deepEqual(lean.graph!.input, whole.graph!.input);
  t.is(lean.producerName, whole.producerName);
});

test.serial('the in-memory variant holds no weights and onnxruntime reads them from the .onnx file: the logits are the source\'s', async (t) => {
  const path = inlineModel();
  const built = buildVariant(path, { knockout: false, logits: true });
  t.is(built.manifest.weights.layout, 'external-source-folder');
  t.deepEqual(built.manifest.weights.files, ['model.onnx']);
  t.true(built.bytes.length < statSync(path).size - 2 * LEFT_ON_DISK_BYTES);
  const ids = [5, 17, 2090, 3, 400];
  const feeds = { input_ids: int64(ids, [1, 5]), attention_mask: int64([1, 1, 1, 1, 1], [1, 5]), position_ids: int64([0, 1, 2, 3, 4], [1, 5]) };
  const original = await session(path);
  const expected = numbers((await original.run(feeds)).logits!);
  const variant = await session(built.bytes, built.manifest.weights.sessionConfig);
  const got = numbers((await variant.run({ ...feeds, dissect_last_index: int64([4], [1]), dissect_target: int64([0], [1]) }, ['logits'])).logits!);
  t.deepEqual(got, expected);
  await original.release();
  await variant.release();
});

test('dissect compile puts the inline weights back: the written variant is whole without the source', (t) => {
  const path = inlineModel();
  const out = OutputFolder.open(join(tempDir('source-out'), 'variant'));
  const compiled = compileVariant(readSourceModel(path), { knockout: 'replace_half_min', logits: false }, out);
  t.is(compiled.manifest.weights.layout, 'embedded');
  t.deepEqual(compiled.manifest.weights.files, []);
  const written = readModel(compiled.modelPath);
  t.deepEqual(externalRefs(written), []);
  for (const name of LARGE) t.deepEqual(Buffer.from(byName(written.graph!.initializer, name).rawData!), Buffer.from(byName(readModel(path).graph!.initializer, name).rawData!));
});

test('a model with external weights keeps its own references; its graph file holds none', (t) => {
  const dir = tempDir('source-external');
  const path = writeSkeleton(dir, SHAPE, { lazy: false, seed: 3 });
  const source = readSourceModel(path);
  t.deepEqual(source.files, ['weights.bin']);
  t.deepEqual(externalRefs(source.model).map((r) => r.location), externalRefs(readModel(path)).map((r) => r.location));
});

test('a truncated model is a user error naming the file', (t) => {
  const path = inlineModel();
  const cut = join(tempDir('source-cut'), 'cut.onnx');
  writeFileSync(cut, readFileSync(path).subarray(0, 1000));
  const e = t.throws(() => readModelGraph(cut), { instanceOf: UserError });
  t.regex(e.message, /cut\.onnx: not a readable ONNX model \(the file ends inside a field/);
});
