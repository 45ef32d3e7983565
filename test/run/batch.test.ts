import test from 'ava';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import type { FillRule } from '../../src/onnx/inputs.js';
import type { ManifestInput } from '../../src/onnx/variant.js';
import { buildFeeds, cleanCache, type BatchRow, type FeedManifest } from '../../src/run/batch.js';
import { InternalError, orThrow } from '../../src/run/errors.js';
import { buildKnockoutMask } from '../../src/run/knockout-mask.js';
import { createSession } from '../../src/run/session.js';
import { fromHalfBits } from '../../src/onnx/tensor.js';

const fixtures = fileURLToPath(new URL('../../../generated/fixtures/', import.meta.url));

/** The fill rule of the source inputs these tests feed, by name. */
function ruleOf(name: string): FillRule {
  if (/^past|^dissect_past_(key|value)_/.test(name)) return 'past';
  const rules: Record<string, FillRule> = {
    input_ids: 'token_ids', attention_mask: 'attention_mask', position_ids: 'positions',
    dissect_past_row: 'past_row', dissect_knockout: 'knockout', dissect_last_index: 'last_index', dissect_target: 'target',
    dissect_start_layer: 'start_layer', dissect_start_hidden: 'start_hidden',
  };
  return rules[name] ?? ('unknown' as FillRule);
}

/** A manifest input; a past's plain row is empty on its third axis (heads on the second). */
const tensor = (name: string, dtype: ManifestInput['dtype'], shape: (number | string)[]): ManifestInput => ({
  name, dtype, shape, meaning: name, fill: '', rule: ruleOf(name),
  plainRow: { shape: shape.map((d, i) => (i === 0 ? 'batch' : i === 1 ? 4 : i === 2 ? 0 : typeof d === 'number' ? d : 'seq')), value: 0 },
});

const stub: FeedManifest = {
  layers: 2, heads: 4, vocab: 64,
  inputs: [
    tensor('input_ids', 'int64', ['batch', 'seq']),
    tensor('attention_mask', 'int64', ['batch', 'seq']),
    tensor('position_ids', 'int64', ['batch', 'seq']),
    tensor('past_key_values.0.key', 'float16', ['batch', 4, 'past_seq', 8]),
    tensor('past_key_values.0.value', 'float32', ['batch', 'heads', 'past_seq', 8]),
    tensor('dissect_knockout', 'bool', ['batch', 'layers', 1, 'seq', 'seq']),
    tensor('dissect_last_index', 'int64', ['batch']),
    tensor('dissect_target', 'int64', ['batch']),
  ],
};

const big = (xs: number[]): bigint[] => xs.map(BigInt);

/** A packed knockout [layers, heads, seq, seq] with the listed (layer, head, query, key) edges blocked. */
function packed(layers: number, heads: number, seq: number, edges: readonly (readonly [number, number, number, number])[]) {
  const data = new Uint8Array(layers * heads * seq * seq);
  for (const [l, h, q, k] of edges) data[((l * heads + h) * seq + q) * seq + k] = 1;
  return { layers, heads, seq, data };
}

test('stub manifest: every input, right padding, exact tensors', (t) => {
  const rows: BatchRow[] = [
    { ids: [5, 6, 7], lastIndex: 2, target: 9, knockout: packed(2, 1, 3, [[1, 0, 2, 0], [0, 0, 2, 1]]) },
    { ids: [8, 9], lastIndex: 1, target: 3 },
  ];
  const f = buildFeeds(stub, rows);
  t.deepEqual(Object.keys(f), stub.inputs.map((i) => i.name));

  t.is(f['input_ids']!.type, 'int64');
  t.deepEqual(f['input_ids']!.dims, [2, 3]);
  t.deepEqual([...(f['input_ids']!.data as BigInt64Array)], big([5, 6, 7, 8, 9, 0]));
  t.deepEqual([...(f['attention_mask']!.data as BigInt64Array)], big([1, 1, 1, 1, 1, 0]));
  t.deepEqual([...(f['position_ids']!.data as BigInt64Array)], big([0, 1, 2, 0, 1, 2]));
  t.deepEqual(f['position_ids']!.dims, [2, 3]);

  const pk = f['past_key_values.0.key']!;
  t.is(pk.type, 'float16');
  t.deepEqual(pk.dims, [2, 4, 0, 8]);
  t.is(pk.data.length, 0);
  const pv = f['past_key_values.0.value']!;
  t.is(pv.type, 'float32');
  t.deepEqual(pv.dims, [2, 4, 0, 8]);

  const k = f['dissect_knockout']!;
  t.is(k.type, 'bool');
  t.deepEqual(k.dims, [2, 2, 1, 3, 3]);
  const expected = new Uint8Array(2 * 2 * 9);
  expected[0 * 9 + 2 * 3 + 1] = 1; // row 0, layer 0, 2 -> 1
  expected[1 * 9 + 2 * 3 + 0] = 1; // row 0, layer 1, 2 -> 0
  t.deepEqual([...(k.data as Uint8Array)], [...expected]);

  t.deepEqual(f['dissect_last_index']!.dims, [2]);
  t.deepEqual([...(f['dissect_last_index']!.data as BigInt64Array)], big([2, 1]));
  t.deepEqual([...(f['dissect_target']!.data as BigInt64Array)], big([9, 3]));
});

test('packed knockout (knockout-mask.ts) is re-strided into the padded sequence', (t) => {
  // row 1 has 3 tokens, padded to 4; its mask was built for its own length
  const mask = buildKnockoutMask(
    [{ layers: [1], heads: 'all', source: { kind: 'named', name: 'subject' }, target: { kind: 'named', name: 'last' } }],
    { n: 3, subject: { start: 0, end: 2 } }, 2, 1, 3);
  const rows: BatchRow[] = [
    { ids: [1, 2, 3, 4], lastIndex: 3, target: 0 },
    { ids: [1, 2, 3], lastIndex: 2, target: 0, knockout: mask },
  ];
  const k = buildFeeds(stub, rows)['dissect_knockout']!;
  t.deepEqual(k.dims, [2, 2, 1, 4, 4]);
  const data = k.data as Uint8Array;
  const on: number[] = [];
  data.forEach((v, i) => { if (v) on.push(i); });
  const at = (row: number, layer: number, q: number, key: number): number => ((row * 2 + layer) * 4 + q) * 4 + key;
  t.deepEqual(on, [at(1, 1, 2, 0), at(1, 1, 2, 1)]);

  // a mask already at the padded length is copied as is
  const full = buildKnockoutMask(
    [{ layers: [0], heads: 'all', source: { kind: 'indices', indices: [0] }, target: { kind: 'named', name: 'last' } }],
    { n: 4, subject: { start: 0, end: 1 } }, 2, 1, 4);
  const k2 = buildFeeds(stub, [{ ids: [1, 2, 3, 4], lastIndex: 3, target: 0, knockout: full }])['dissect_knockout']!;
  t.deepEqual([...(k2.data as Uint8Array)], [...full.data]);
});

test('per-head knockout input takes the manifest head count', (t) => {
  const m: FeedManifest = { ...stub, inputs: [tensor('dissect_knockout', 'bool', ['batch', 'layers', 'heads', 'seq', 'seq'])] };
  const k = buildFeeds(m, [{ ids: [1, 2], lastIndex: 1, target: 0, knockout: packed(2, 4, 2, [[1, 3, 1, 0]]) }])['dissect_knockout']!;
  t.deepEqual(k.dims, [1, 2, 4, 2, 2]);
  const data = k.data as Uint8Array;
  t.is(data.reduce((a, b) => a + b, 0), 1);
  t.is(data[((1 * 4 + 3) * 2 + 1) * 2 + 0], 1);
});

test('int32 integer inputs and float64 / int32 past tensors', (t) => {
  const m: FeedManifest = {
    ...stub, inputs: [
      tensor('input_ids', 'int32', ['batch', 'seq']), tensor('attention_mask', 'int32', ['batch', 'seq']),
      tensor('dissect_target', 'int32', ['batch']), tensor('past.0', 'float64', ['batch', 4, 'past', 8]),
    ],
  };
  const f = buildFeeds(m, [{ ids: [3, 4], lastIndex: 1, target: 7 }, { ids: [5], lastIndex: 0, target: 2 }]);
  t.is(f['input_ids']!.type, 'int32');
  t.deepEqual([...(f['input_ids']!.data as Int32Array)], [3, 4, 5, 0]);
  t.deepEqual([...(f['attention_mask']!.data as Int32Array)], [1, 1, 1, 0]);
  t.deepEqual([...(f['dissect_target']!.data as Int32Array)], [7, 2]);
  t.is(f['past.0']!.type, 'float64');
  t.deepEqual(f['past.0']!.dims, [2, 4, 0, 8]);
  t.throws(() => buildFeeds({ ...stub, inputs: [tensor('past.0', 'bfloat16', ['batch', 4, 'past', 8])] }, [{ ids: [1], lastIndex: 0, target: 0 }]),
    { instanceOf: InternalError, message: /cannot feed bfloat16/ });
});

test('contract errors are thrown as internal errors', (t) => {
  const row: BatchRow = { ids: [1, 2], lastIndex: 1, target: 0 };
  t.throws(() => buildFeeds(stub, []), { instanceOf: InternalError });
  t.throws(() => buildFeeds({ ...stub, inputs: [tensor('token_type_ids', 'int64', ['batch', 'seq'])] }, [row]), { instanceOf: InternalError, message: /token_type_ids has fill rule 'unknown'/ });
  t.throws(() => buildFeeds(stub, [{ ...row, lastIndex: 2 }]), { instanceOf: InternalError, message: /lastIndex 2/ });
  t.throws(() => buildFeeds(stub, [{ ...row, target: 64 }]), { instanceOf: InternalError, message: /target 64/ });
  t.throws(() => buildFeeds(stub, [{ ...row, ids: [1, 99] }]), { instanceOf: InternalError, message: /token id 99/ });
  t.throws(() => buildFeeds(stub, [{ ...row, ids: [] }]), { instanceOf: InternalError });
  t.throws(() => buildFeeds(stub, [{ ...row, knockout: packed(2, 4, 2, []) }]), { instanceOf: InternalError, message: /the variant takes \[2, 1\]/ });
  t.throws(() => buildFeeds(stub, [{ ...row, knockout: packed(2, 1, 1, []) }]), { instanceOf: InternalError, message: /covers 1 of its 2 tokens/ });
  t.throws(() => buildFeeds({ ...stub, inputs: [tensor('input_ids', 'float32', ['batch', 'seq'])] }, [row]), { instanceOf: InternalError });
});

test('the start block is the batch\'s; its hidden states right-padded with zeros, or empty at block 0', (t) => {
  const manifest: FeedManifest = {
    ...stub, dModel: 2,
    inputs: [...stub.inputs, tensor('dissect_start_layer', 'int64', [1]), tensor('dissect_start_hidden', 'float16', ['batch', 'start_seq', 2])],
  };
  const rows: BatchRow[] = [
    { ids: [5, 6, 7], lastIndex: 2, target: 9, start: { layer: 1, hidden: Float32Array.from([1, 2, 3, 4, 5, 6]) } },
    { ids: [8, 9], lastIndex: 1, target: 3, start: { layer: 1, hidden: Float32Array.from([-1, -2, -3, -4]) } },
  ];
  const f = buildFeeds(manifest, rows);
  t.deepEqual([...(f['dissect_start_layer']!.data as BigInt64Array)], big([1]));
  const hidden = f['dissect_start_hidden']!;
  t.is(hidden.type, 'float16');
  t.deepEqual(hidden.dims, [2, 3, 2]);
  t.deepEqual([...(hidden.data as Uint16Array)].map(fromHalfBits), [1, 2, 3, 4, 5, 6, -1, -2, -3, -4, 0, 0]);
  const fromZero = buildFeeds(manifest, rows.map(({ start: _, ...row }) => row));
  t.deepEqual([...(fromZero['dissect_start_layer']!.data as BigInt64Array)], big([0]));
  t.deepEqual(fromZero['dissect_start_hidden']!.dims, [2, 0, 2]);
  t.throws(() => buildFeeds(manifest, [rows[0]!, { ids: [8, 9], lastIndex: 1, target: 3 }]), { instanceOf: InternalError, message: /different blocks/ });
  t.throws(() => buildFeeds(manifest, [{ ...rows[0]!, start: { layer: 1, hidden: new Float32Array(4) } }]), { instanceOf: InternalError, message: /not \[3, 2\]/ });
});

// End to end on the random-weight GPT-2 fixtures: two prompts of different lengths in one
// batch, right-padded, must give each prompt's own batch-1 reference logits.
interface FixtureSeq { input_ids: number[]; attention_mask: number[]; logits: number[][] }
const fixtureJson = JSON.parse(readFileSync(fixtures + 'fixtures.json', 'utf8')) as { fixtures: Record<string, { sequences: FixtureSeq[] }> };

for (const name of ['gpt2-optimum.onnx', 'gpt2-opset14.onnx']) {
  test.serial(`right padding reproduces batch-1 logits: ${name}`, async (t) => {
    const session = orThrow(await createSession(fixtures + name, { threads: 1 }));
    const inputs: ManifestInput[] = session.session.inputMetadata.map((m) => {
      if (!m.isTensor) throw new Error('tensor inputs only');
      return tensor(m.name, m.type as ManifestInput['dtype'], [...m.shape]);
    });
    const manifest: FeedManifest = { layers: 2, heads: 4, vocab: 64, inputs };
    const seqs = fixtureJson.fixtures[name]!.sequences;
    const short = seqs[0]!; // 5 tokens
    const long = seqs[1]!; // 7 tokens
    const rows: BatchRow[] = [short, long].map((s) => ({ ids: s.input_ids, lastIndex: s.input_ids.length - 1, target: 0 }));
    const out = await session.run(buildFeeds(manifest, rows));
    const logits = out['logits']!;
    t.deepEqual(logits.dims, [2, 7, 64]);
    const data = logits.data as Float32Array;
    let maxDiff = 0;
    [short, long].forEach((s, b) => {
      for (let i = 0; i < s.input_ids.length; i++) {
        for (let v = 0; v < 64; v++) maxDiff = Math.max(maxDiff, Math.abs(data[(b * 7 + i) * 64 + v]! - s.logits[i]![v]!));
      }
    });
    t.true(maxDiff < 1e-4, `max |Δlogit| = ${maxDiff}`);
    await session.release();
  });
}

test('feeds are onnxruntime tensors', (t) => {
  const f = buildFeeds(stub, [{ ids: [1], lastIndex: 0, target: 0 }]);
  for (const v of Object.values(f)) t.true(v instanceof ort.Tensor);
});

test('last-position rows read their clean pass\'s cache as it is, every prompt, no copy; dissect_past_row picks each row\'s', (t) => {
  const slot = { input: 'dissect_past_key_0', output: 'dissect_key_0', seqAxis: 2, dims: [1, 0, 2] };
  const m: FeedManifest = {
    ...stub, cache: [{ layer: 0, key: slot, value: { ...slot, input: 'dissect_past_value_0', output: 'dissect_value_0' } }],
    inputs: [
      tensor('dissect_past_key_0', 'float32', ['past_prompts', 1, 'past', 2]), tensor('dissect_past_value_0', 'float32', ['past_prompts', 1, 'past', 2]),
      tensor('dissect_past_row', 'int64', ['batch']), tensor('attention_mask', 'int64', ['batch', 'kv']),
    ],
  };
  // a clean pass of three prompts, right-padded to 3 tokens: prompt p's entries are 10p + position (keys), + 100 (values)
  const out = (plus: number) => ({ dims: [3, 1, 3, 2], data: Float32Array.from({ length: 18 }, (_, i) => plus + 10 * Math.floor(i / 6) + Math.floor((i % 6) / 2)) });
  const cache = cleanCache(m, [{ dissect_key_0: out(0), dissect_value_0: out(100) }]);
  t.deepEqual([cache.prompts, cache.seq], [3, 3]);
  const row = (prompt: number, position: number): BatchRow => ({ ids: [3], lastIndex: 0, target: 0, past: { position, cache, prompt } });
  const f = buildFeeds(m, [row(0, 2), row(0, 2), row(2, 1), row(0, 2)]);
  t.deepEqual([...(f['dissect_past_row']!.data as BigInt64Array)], big([0, 0, 2, 0]));
  t.is(f['dissect_past_key_0'], cache.slots[0]);
  t.is(f['dissect_past_value_0'], cache.slots[1]);
  t.deepEqual([...(f['dissect_past_value_0']!.data as Float32Array)].slice(12), [120, 120, 121, 121, 122, 122]);
  // each row's earlier positions, its padding masked, then the token itself after the cache's 3
  t.deepEqual([...(f['attention_mask']!.data as BigInt64Array)], big([1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1]));
  t.throws(() => buildFeeds(m, [row(0, 3)]), { message: /past of prompt 0 at 3, the cache holds 3 prompts of 3/ });
  const other = cleanCache(m, [{ dissect_key_0: out(0), dissect_value_0: out(100) }]);
  t.throws(() => buildFeeds(m, [row(0, 2), { ...row(1, 2), past: { position: 2, cache: other, prompt: 1 } }]), { message: /two clean passes/ });
  // a chunk's clean pass in two parts (2 prompts of up to 3 tokens, 1 of 2): one cache, the second part's prompt padded
  const part = (prompts: number, seq: number, from: number) => ({
    dims: [prompts, 1, seq, 2], data: Float32Array.from({ length: prompts * seq * 2 }, (_, i) => from + 10 * Math.floor(i / (seq * 2)) + Math.floor((i % (seq * 2)) / 2)),
  });
  const joined = cleanCache(m, [{ dissect_key_0: part(2, 3, 0), dissect_value_0: part(2, 3, 100) }, { dissect_key_0: part(1, 2, 20), dissect_value_0: part(1, 2, 120) }]);
  t.deepEqual([joined.prompts, joined.seq], [3, 3]);
  t.deepEqual([...(joined.slots[0]!.data as Float32Array)], [0, 0, 1, 1, 2, 2, 10, 10, 11, 11, 12, 12, 20, 20, 21, 21, 0, 0]);
  t.deepEqual([...(joined.slots[1]!.data as Float32Array)], [100, 100, 101, 101, 102, 102, 110, 110, 111, 111, 112, 112, 120, 120, 121, 121, 0, 0]);
  // whole prompts: one empty past for the batch
  const whole = buildFeeds(m, [{ ids: [1, 2], lastIndex: 1, target: 0 }, { ids: [3], lastIndex: 0, target: 0 }]);
  t.deepEqual(whole['dissect_past_key_0']!.dims, [1, 1, 0, 2]);
  t.deepEqual([...(whole['dissect_past_row']!.data as BigInt64Array)], big([0, 0]));
});
