import test from 'ava';
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readFileSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../../src/errors.js';
import { buildVariant, compileVariant } from '../../src/onnx/compile.js';
import { externalizeInitializers } from '../../src/onnx/external.js';
import { inspectModel } from '../../src/onnx/inspect.js';
import { readModel, writeModel } from '../../src/onnx/proto.js';
import { bool, fixture, fixturePath, int64, maxAbs, maxAbsDiff, modelFeeds, numbers, session, tempDir } from './helpers.js';
import { OutputFolder } from '../../src/output/folder.js';

const NAME = 'gpt2-opset14.onnx';

/** The opset-14 fixture with every initializer of ≥ 1 KiB moved to `weights.bin`. */
function externalModel(dir: string, location = 'weights.bin'): { path: string; weights: Buffer } {
  const m = readModel(fixturePath(NAME));
  externalizeInitializers(m, dir, 'weights.bin', { threshold: 1024 });
  if (location !== 'weights.bin') {
    for (const t of m.graph!.initializer!) for (const e of t.externalData ?? []) if (e.key === 'location') e.value = location;
  }
  const path = join(dir, 'model.onnx');
  writeModel(path, m);
  return { path, weights: readFileSync(join(dir, 'weights.bin')) };
}

/** Replaces the weight file's contents by zeros of the same size, in place (same inode). */
function blankWeights(file: string): void {
  const size = statSync(file).size;
  const fd = openSync(file, 'r+');
  ftruncateSync(fd, 0);
  ftruncateSync(fd, size);
  closeSync(fd);
}

function restoreWeights(file: string, bytes: Buffer): void {
  const fd = openSync(file, 'r+');
  writeSync(fd, bytes, 0, bytes.length, 0);
  closeSync(fd);
}

async function expectedLogits(): Promise<{ feeds: ReturnType<typeof modelFeeds>; logits: number[]; n: number }> {
  const seq = fixture(NAME).sequences[1]!;
  const feeds = modelFeeds(NAME, [{ ids: seq.input_ids, mask: seq.attention_mask }]);
  const s = await session(fixturePath(NAME));
  return { feeds, logits: numbers((await s.run(feeds)).logits!), n: seq.input_ids.length };
}

test.serial('an external-data model compiles without its weights and the variant runs (hardlinked)', async (t) => {
  const src = tempDir('ext-src');
  const { path, weights } = externalModel(src);
  const graphSize = statSync(path).size;
  const file = join(src, 'weights.bin');
  blankWeights(file); // compiling must not need the weights' contents
  const out = join(tempDir('ext-out'), 'variant');
  const c = compileVariant(path, { knockout: 'replace_half_min', logits: true }, OutputFolder.open(out));
  t.is(c.manifest.weights.layout, 'hardlinked');
  t.deepEqual(c.manifest.weights.files, ['weights.bin']);
  t.is(c.modelPath, join(out, 'model.onnx'));
  t.is(statSync(join(out, 'weights.bin')).ino, statSync(file).ino, 'same file, not a copy');
  // the rewrite adds a few KiB of nodes; the ~120 KiB of external weights are not copied in
  t.true(statSync(c.modelPath).size < graphSize + 16 * 1024, `variant ${statSync(c.modelPath).size} B vs graph ${graphSize} B`);
  restoreWeights(file, weights); // visible through the hardlink
  const { feeds, logits, n } = await expectedLogits();
  const v = await session(c.modelPath);
  const r = await v.run({
    ...feeds,
    dissect_knockout: bool(new Uint8Array(2 * n * n), [1, 2, 1, n, n]),
    dissect_last_index: int64([n - 1], [1]),
    dissect_target: int64([0], [1]),
  });
  t.true(maxAbsDiff(numbers(r.logits!), logits) <= 1e-5 * maxAbs(logits));
});

test.serial('in memory, the variant reads external weights from the source folder', async (t) => {
  const src = tempDir('ext-mem');
  const { path } = externalModel(src);
  const built = buildVariant(path, { knockout: false, logits: true });
  t.is(built.manifest.weights.layout, 'external-source-folder');
  t.is(built.manifest.weights.folder, src);
  const { feeds, logits, n } = await expectedLogits();
  const v = await session(built.bytes, built.manifest.weights.sessionConfig);
  const r = await v.run({ ...feeds, dissect_last_index: int64([n - 1], [1]), dissect_target: int64([0], [1]) });
  t.true(maxAbsDiff(numbers(r.logits!), logits) <= 1e-5 * maxAbs(logits));
});

test.serial('without hardlinks the variant is written beside the source model', async (t) => {
  const src = tempDir('ext-beside');
  const { path } = externalModel(src);
  const out = tempDir('ext-beside-out');
  const c = compileVariant(path, { knockout: false, logits: true }, OutputFolder.open(out), { weights: 'beside-source' });
  t.is(c.manifest.weights.layout, 'external-beside-source');
  t.is(c.manifest.weights.folder, src);
  t.regex(c.modelPath, /model\.dissect-[0-9a-f]{12}\.onnx$/);
  t.true(c.modelPath.startsWith(src));
  t.is(join(out, c.manifest.model), c.modelPath, 'manifest.model is relative to the manifest');
  t.false(existsSync(join(out, 'weights.bin')));
  const { feeds, logits, n } = await expectedLogits();
  const r = await (await session(c.modelPath)).run({ ...feeds, dissect_last_index: int64([n - 1], [1]), dissect_target: int64([0], [1]) });
  t.true(maxAbsDiff(numbers(r.logits!), logits) <= 1e-5 * maxAbs(logits));
});

test.serial('a real cross-device hardlink failure falls back to beside-source', async (t) => {
  const shm = '/dev/shm';
  if (!existsSync(shm) || statSync(shm).dev === statSync(tempDir('dev')).dev) {
    t.pass('no second filesystem here');
    return;
  }
  const src = tempDir('ext-xdev');
  const { path } = externalModel(src);
  const out = tempDir('xdev', shm);
  const c = compileVariant(path, { knockout: false, logits: false }, OutputFolder.open(out));
  t.is(c.manifest.weights.layout, 'external-beside-source');
});

test('external locations leaving the model folder are rejected, naming tensor and path', (t) => {
  const outside = tempDir('ext-escape');
  const dir = join(outside, 'model');
  mkdirSync(dir);
  // ../weights.bin
  externalModel(dir, '../weights.bin');
  writeFileSync(join(outside, 'weights.bin'), readFileSync(join(dir, 'weights.bin')));
  const e1 = t.throws(() => buildVariant(join(dir, 'model.onnx'), { knockout: false, logits: false }), { instanceOf: UserError });
  t.regex(e1!.message, /initializer 'transformer\.wte\.weight' has external data location '\.\.\/weights\.bin', which leaves the model's folder/);
  // absolute
  externalModel(dir, join(outside, 'weights.bin'));
  t.throws(() => buildVariant(join(dir, 'model.onnx'), { knockout: false, logits: false }),
    { instanceOf: UserError, message: /initializer 'transformer\.wte\.weight' has external data location '\/.*weights\.bin', an absolute path/ });
  // a symlink inside the folder pointing outside
  externalModel(dir, 'link.bin');
  symlinkSync(join(outside, 'weights.bin'), join(dir, 'link.bin'));
  t.throws(() => buildVariant(join(dir, 'model.onnx'), { knockout: false, logits: false }),
    { instanceOf: UserError, message: /location 'link\.bin', which resolves \(through a symlink\) to .*weights\.bin, outside the model's folder/ });
  // inspect reports the problem instead of failing
  const r = inspectModel(join(dir, 'model.onnx'));
  t.regex(r.externalData.problem ?? '', /outside the model's folder/);
  t.true(r.supported);
});

test('a truncated external file is reported', (t) => {
  const dir = tempDir('ext-short');
  externalModel(dir);
  const file = join(dir, 'weights.bin');
  const fd = openSync(file, 'r+');
  ftruncateSync(fd, 1000);
  closeSync(fd);
  t.throws(() => buildVariant(join(dir, 'model.onnx'), { knockout: false, logits: false }), { instanceOf: UserError, message: /needs bytes up to \d+ but the file has 1000/ });
});

test('a weights file whose name starts with two dots lies inside the folder and is accepted', (t) => {
  const dir = tempDir('ext-dots');
  const { weights } = externalModel(dir, '..model.onnx_data');
  writeFileSync(join(dir, '..model.onnx_data'), weights);
  const built = buildVariant(join(dir, 'model.onnx'), { knockout: false, logits: false });
  t.is(built.manifest.weights.folder, dir);
  t.deepEqual(inspectModel(join(dir, 'model.onnx')).externalData, { tensors: 11, files: ['..model.onnx_data'] });
  // a symlink of that name pointing out of the folder is still refused
  const outside = tempDir('ext-dots-outside');
  writeFileSync(join(outside, 'w.bin'), weights);
  const linked = tempDir('ext-dots-link');
  externalModel(linked, '..model.onnx_data');
  symlinkSync(join(outside, 'w.bin'), join(linked, '..model.onnx_data'));
  t.throws(() => buildVariant(join(linked, 'model.onnx'), { knockout: false, logits: false }),
    { instanceOf: UserError, message: /location '\.\.model\.onnx_data', which resolves \(through a symlink\) to .*w\.bin, outside the model's folder/ });
});

test('a folder used as external data is refused, naming it', (t) => {
  const dir = tempDir('ext-folder');
  externalModel(dir, 'weights');
  mkdirSync(join(dir, 'weights'));
  t.throws(() => buildVariant(join(dir, 'model.onnx'), { knockout: false, logits: false }),
    { instanceOf: UserError, message: `${join(dir, 'model.onnx')}: initializer 'transformer.wte.weight' has external data location 'weights', but ${join(dir, 'weights')} is a folder` });
});
