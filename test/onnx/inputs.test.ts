import test from 'ava';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import ort from 'onnxruntime-node';
import { compileVariant, VARIANT_INPUTS } from '../../src/onnx/compile.js';
import { UserError } from '../../src/errors.js';
import { tensorValueInfo } from '../../src/onnx/graph.js';
import { describeInputs, descriptorOf } from '../../src/onnx/inputs.js';
import { DataType, decodeModel } from '../../src/onnx/proto.js';
import { detectSites } from '../../src/onnx/sites/index.js';
import { readSourceModel } from '../../src/onnx/source.js';
import { CLEAN_STREAM_PREFIX, OWN_TOP1_TARGET, type ManifestInput, type RowConventions, type VariantManifest, type VariantRequest } from '../../src/onnx/variant.js';
import { OutputFolder } from '../../src/output/folder.js';
import { buildFeeds } from '../../src/run/batch.js';
import { createSession } from '../../src/run/session.js';
import { orThrow } from '../../src/run/errors.js';
import { argmax, fixture, fixturePath, REPO, SESSION_OPTIONS, tempDir } from './helpers.js';

/** Every pass at once, so that the variant takes every input a pass can add. */
const EVERY_INPUT: VariantRequest = {
  knockout: 'replace_half_min', logits: false, lastPosition: true, patch: true, hiddenStates: true, startLayer: true,
  gates: { attention: 'zero_update', mlp: 'zero_preactivation' },
  projections: [
    { site: 'hidden', layers: [0, 1, 2], via: 'embedding', k: 3, vocabLimit: 64 },
    { site: 'recomputed', layers: [1], via: 'embedding', k: 3, vocabLimit: 64, recompute: 'renormalise' },
    { site: 'subject_embeddings', layers: [0], via: 'embedding', k: 3, vocabLimit: 64 },
  ],
};

const ROWS: RowConventions = {
  tokenizer: '/models/tokenizer.json', bos: 'none', subjectPositions: 'the subject\'s tokens',
  window: { choice: 'knockout_window', value: 'centred_clipped', meaning: 'size k centred on c' },
};

/**
 * A plain row's feeds from nothing but the manifest as JSON (what a user without dissect
 * would write): each input's plainRow, 'batch' being 1 and 'seq' the prompt's length.
 */
function plainFeeds(m: VariantManifest, ids: readonly number[]): Record<string, ort.Tensor> {
  const n = ids.length;
  const tensor = (input: ManifestInput): ort.Tensor => {
    const { shape, value } = input.plainRow;
    const dims = shape.map((d) => (d === 'batch' ? 1 : d === 'seq' ? n : d));
    const size = dims.reduce((a, b) => a * b, 1);
    const values = value === 'token_ids' ? [...ids] : value === 'positions' ? ids.map((_, i) => i)
      : value === 'last_index' ? [n - 1] : new Array<number>(size).fill(Number(value));
    switch (input.dtype) {
      case 'int64': return new ort.Tensor('int64', BigInt64Array.from(values, BigInt), dims);
      case 'bool': return new ort.Tensor('bool', Uint8Array.from(values), dims);
      case 'float32': return new ort.Tensor('float32', Float32Array.from(values), dims);
      default: throw new Error(`${input.name}: this reader feeds int64, bool and float32`);
    }
  };
  return Object.fromEntries(m.inputs.map((input) => [input.name, tensor(input)]));
}

const plainModels = ['gpt2-opset14.onnx', 'gpt2-optimum.onnx'];

for (const name of plainModels) {
  test.serial(`${name}: the manifest alone feeds a row in plain onnxruntime, with dissect's feeds and numbers`, async (t) => {
    const out = tempDir('inputs');
    const compiled = compileVariant(fixturePath(name), EVERY_INPUT, OutputFolder.open(out), { rows: ROWS });
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as VariantManifest;
    t.deepEqual(manifest, compiled.manifest);
    t.like(manifest, { format: 'dissect-variant/2', layers: 2, rows: ROWS, weights: { layout: 'embedded' } });
    t.regex(manifest.choices.knockout!, /-1\.7014117\d*e\+38/);
    const seq = fixture(name).sequences[1]!;
    const ids = seq.input_ids;
    const plain = plainFeeds(manifest, ids);
    const dissect = buildFeeds(manifest, [{ ids, lastIndex: ids.length - 1, target: OWN_TOP1_TARGET }]);
    t.deepEqual(Object.keys(plain), Object.keys(dissect));
    for (const [input, feed] of Object.entries(dissect)) {
      t.deepEqual(plain[input]!.dims, feed.dims, `${input} dims`);
      t.deepEqual(plain[input]!.data, feed.data, `${input} values`);
    }
    const s = await ort.InferenceSession.create(join(dirname(join(out, 'manifest.json')), manifest.model), SESSION_OPTIONS);
    const res = await s.run(plain);
    t.deepEqual(Object.keys(res).sort(), manifest.outputs.map((o) => o.name).sort());
    for (const o of manifest.outputs) t.is(res[o.name]!.type as string, o.dtype, o.name);
    const session = orThrow(await createSession(join(out, manifest.model)));
    const ours = await session.run(dissect);
    for (const o of manifest.outputs) t.deepEqual(Array.from(res[o.name]!.data as ArrayLike<unknown>), Array.from(ours[o.name]!.data as ArrayLike<unknown>), o.name);
    // and the model's own prediction (PyTorch's logits of the source)
    t.is(Number(res.dissect_top1!.data[0]), argmax(seq.logits[ids.length - 1]!));
    await Promise.all([s.release(), session.release()]);
  });
}

test('every input a variant takes has one descriptor, and every descriptor is some variant\'s input', (t) => {
  const used = new Set<unknown>();
  // the clean stream in the graph: its copy's inputs are described as those they copy
  for (const [name, request] of plainModels.flatMap((m) => [[m, EVERY_INPUT], [m, { ...EVERY_INPUT, cleanStream: 'in-graph' }]] as const)) {
    const source = readSourceModel(fixturePath(name));
    const { manifest } = compileVariant(source, request, OutputFolder.open(tempDir('inputs-registry')));
    for (const input of manifest.inputs) {
      const matches = VARIANT_INPUTS.filter((d) => descriptorOf(input.name.replace(CLEAN_STREAM_PREFIX, ''), source.sites, [d]));
      t.is(matches.length, 1, `${name}: ${input.name} has exactly one descriptor`);
      used.add(matches[0]);
      t.is(input.rule, matches[0]!.rule);
      t.true(input.meaning.length > 0 && input.fill.length > 0, input.name);
    }
  }
  t.deepEqual(VARIANT_INPUTS.filter((d) => !used.has(d)).map((d) => ('role' in d ? d.role : d.name)), []);
});

test('a source input dissect cannot fill is refused at compile time, naming it', (t) => {
  const model = decodeModel(readFileSync(fixturePath('gpt2-opset14.onnx')));
  const sites = detectSites(model);
  model.graph!.input!.push(tensorValueInfo('token_scale', DataType.FLOAT, ['batch', 'seq']));
  const e = t.throws(() => describeInputs(model, sites, { knockout: false, logits: true }, VARIANT_INPUTS), { instanceOf: UserError })!;
  t.is(e.message, 'the model\'s input \'token_scale\' is none dissect can fill (token ids, attention mask, position ids, past keys and values)');
});

test('spec.md lists every input descriptor with its rule, and nothing else', (t) => {
  const spec = readFileSync(join(REPO, 'spec.md'), 'utf8');
  const table = spec.slice(spec.indexOf('**Inputs** (one batch row')).split('\n\n')[1]!.split('\n').slice(2);
  const listed = table.map((row) => row.split(' | ').slice(0, 2).map((cell) => /`([^`]+)`/.exec(cell)![1]!).join(' '));
  const registered = VARIANT_INPUTS.map((d) => `${'role' in d ? d.role : d.perLayer ? `${d.name}ℓ` : d.name} ${d.rule}`);
  t.deepEqual(listed.sort(), registered.sort());
});
