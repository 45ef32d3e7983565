// Graphs after onnxruntime's transformer optimizer (generated/fixtures/gpt2-ort-fused.onnx, made
// by scripts/make_fused_fixture.py from gpt2-opset14: SkipLayerNormalization, FastGelu and
// Attention from com.microsoft). dissect expands them back into standard ops; every variant
// output must then equal the same variant of the unfused export, which the other tests check
// against PyTorch. Fused ops the expansion cannot reproduce are refused, naming the node.

import test, { type ExecutionContext } from 'ava';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { buildVariant } from '../../src/onnx/compile.js';
import { buildHeadMappingGraph, HeadMappingNames } from '../../src/onnx/head-mappings.js';
import { inspectModel, renderInspectText } from '../../src/onnx/inspect.js';
import { readModel, writeModel, type ModelProto, type NodeProto } from '../../src/onnx/proto.js';
import { detectSites } from '../../src/onnx/sites/index.js';
import { intAttr } from '../../src/onnx/tensor.js';
import { VariantNames, type VariantRequest } from '../../src/onnx/variant.js';
import { bool, fixture, fixturePath, int64, maxAbs, maxAbsDiff, numbers, REPO, session, tempDir } from './helpers.js';
import { feedsFor, gateTensor } from './reference.js';

const FUSED = fixturePath('gpt2-ort-fused.onnx');
const PLAIN = fixturePath('gpt2-opset14.onnx');
const REFERENCE = fixture('gpt2-opset14.onnx');

test('detection expands every fused op and finds the GPT-2 sites', (t) => {
  const model = readModel(FUSED);
  t.true((model.graph?.node ?? []).some((n) => n.domain === 'com.microsoft' && n.opType === 'Attention'), 'the fixture holds fused attention');
  const sites = detectSites(model, FUSED);
  t.is(sites.family, 'gpt2');
  t.deepEqual(sites.expandedFusedOps, { Attention: 2, SkipLayerNormalization: 4, FastGelu: 2 });
  t.is(sites.layers, 2);
  t.is(sites.heads, 4);
  t.is(sites.activation, 'gelu_tanh');
  t.false((model.graph?.node ?? []).some((n) => n.domain === 'com.microsoft' && n.opType !== 'FastGelu'), 'only the bias-free FastGelu stays fused');
  const text = renderInspectText(inspectModel(FUSED));
  t.regex(text, /expanded onnxruntime's fused com\.microsoft ops into standard ops: 2 × Attention, 4 × SkipLayerNormalization, 2 × FastGelu/);
});

test('a variant of the fused graph with no intervention reproduces PyTorch\'s logits', async (t) => {
  const built = buildVariant(FUSED, { knockout: 'replace_half_min', logits: true });
  const s = await session(built.bytes);
  for (const seq of REFERENCE.sequences) {
    const n = seq.input_ids.length;
    const out = await s.run({
      input_ids: int64(seq.input_ids, [1, n]), attention_mask: int64(seq.attention_mask, [1, n]),
      [VariantNames.knockout]: bool(new Uint8Array(2 * n * n), [1, 2, 1, n, n]),
      [VariantNames.lastIndex]: int64([n - 1], [1]), [VariantNames.target]: int64([0], [1]),
    });
    const got = numbers(out.logits!);
    const V = REFERENCE.config.vocab;
    seq.attention_mask.forEach((keep, i) => {
      if (!keep) return; // padded positions are not defined by either graph
      const want = seq.logits[i]!;
      t.true(maxAbsDiff(got.slice(i * V, (i + 1) * V), want) <= 1e-5 * Math.max(1, maxAbs(want)), `position ${i}`);
    });
  }
});

const EVERYTHING: VariantRequest = {
  knockout: 'replace_half_min', logits: true, attentionProbs: true, hiddenStates: true, patch: true,
  gates: { attention: 'zero_update', mlp: 'zero_preactivation' },
  projections: (['hidden', 'attention', 'mlp', 'heads'] as const).map((site) => ({ site, layers: [0, 1], via: 'embedding' as const, k: 5, vocabLimit: 64 })),
};

/** Every output of the EVERYTHING variant of `fusedPath` equals the unfused export's, on two rows (one padded). */
async function sameEverything(t: ExecutionContext, plainPath: string, fusedPath: string, expanded: Record<string, number>): Promise<void> {
  const plain = buildVariant(plainPath, EVERYTHING);
  const fused = buildVariant(fusedPath, EVERYTHING);
  t.deepEqual(fused.manifest.outputs.map((o) => o.name), plain.manifest.outputs.map((o) => o.name));
  t.deepEqual(fused.manifest.expandedFusedOps, expanded, 'the manifest records the expansion');
  t.is(plain.manifest.expandedFusedOps, undefined);
  const rows = [[5, 17, 42, 3, 60, 9], [7, 28, 51, 2, 19, 0]];
  const masks = [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]];
  const b = rows.length;
  const n = rows[0]!.length;
  const L = plain.sites.layers;
  const d = plain.manifest.dModel;
  const knockout = new Uint8Array(b * L * n * n);
  knockout[((0 * L + 1) * n + 5) * n + 2] = 1; // row 0, layer 1: last ↛ 2
  knockout[((1 * L + 0) * n + 3) * n + 0] = 1; // row 1, layer 0: 3 ↛ 0
  const patchValues = new Float32Array(b * n * d).map((_, i) => Math.sin(i) * 0.5);
  const feeds = {
    ...feedsFor(plain.sites, rows, masks),
    [VariantNames.knockout]: bool(knockout, [b, L, 1, n, n]),
    [VariantNames.lastIndex]: int64([5, 3], [b]),
    [VariantNames.target]: int64([11, 40], [b]),
    [VariantNames.gateAttention]: gateTensor(b, L, n, [[0, 0, 5, 0], [1, 1, 2, 0.5]]),
    [VariantNames.gateMlp]: gateTensor(b, L, n, [[0, 1, 5, 0], [1, 0, 1, 0]]),
    [VariantNames.patchLayer]: int64([1, -1], [b]),
    [VariantNames.patchMask]: bool(Uint8Array.from({ length: b * n }, (_, i) => (i === 2 ? 1 : 0)), [b, n]),
    [VariantNames.patchValues]: new ort.Tensor('float32', patchValues, [b, n, d]),
    [VariantNames.projPositions]: int64([5, 2, 3, 1], [b, 2]),
  };
  const [want, got] = await Promise.all([plain, fused].map(async (v) => (await session(v.bytes)).run(feeds)));
  for (const o of plain.manifest.outputs) {
    const w = numbers(want![o.name]!);
    const g = numbers(got![o.name]!);
    if (o.name === 'logits') {
      // padded positions of row 1 read masked keys: both graphs leave them undefined
      const V = w.length / (b * n);
      const real = (xs: number[]): number[] => xs.filter((_, i) => masks[Math.floor(i / (n * V))]![Math.floor(i / V) % n] === 1);
      t.true(maxAbsDiff(real(g), real(w)) <= 1e-5 * Math.max(1, maxAbs(real(w))), o.name);
    } else if (o.name.endsWith('_ids') || o.name.endsWith('_rank') || o.name === VariantNames.top1) {
      t.deepEqual(g, w, o.name);
    } else {
      t.true(maxAbsDiff(g, w) <= 1e-5 * Math.max(1, maxAbs(w)), `${o.name}: ${maxAbsDiff(g, w)}`);
    }
  }
  t.not(numbers(got![VariantNames.targetProb]!)[0], 0, 'the comparison saw real numbers');
}

test('every intervention and read on the fused graph equals the unfused export', (t) => sameEverything(t, PLAIN, FUSED, { Attention: 2, SkipLayerNormalization: 4, FastGelu: 2 }));

// onnxruntime's fused attention on real exports (generated/real, scripts/real_exports/make_fused_attention.py)
const ZOO = join(REPO, 'generated', 'real');
for (const [fused, expanded] of [
  ['gpt2/ts-17-eager-fp32-mha', { MultiHeadAttention: 2 }], ['gpt2/ts-17-eager-fp32-gqa', { GroupQueryAttention: 2 }],
  ['llama/ts-17-eager-fp32-gqa', { RotaryEmbedding: 4, GroupQueryAttention: 2 }],
] as const) {
  const plain = join(ZOO, `${fused.split('-fp32')[0]}-fp32.onnx`);
  test(`${fused}: every intervention and read equals the export it was fused from`, (t) => sameEverything(t, plain, join(ZOO, `${fused}.onnx`), expanded));
  test(`${fused}: head mappings equal the export's`, async (t) => {
    // query head 3 reads key/value head 1 of 2 in Llama: the expansion's repeat must keep the grouping
    const mapping = async (path: string): Promise<number[][]> => {
      const g = buildHeadMappingGraph(path, { layer: 1, head: 3, side: 'embedding', k: 3, chunk: 16 });
      const out = await (await session(g.bytes, g.sessionConfig)).run({ [HeadMappingNames.rowStart]: int64([0], []) });
      return [numbers(out[HeadMappingNames.ids]!), numbers(out[HeadMappingNames.scores]!)];
    };
    const [[wantIds, wantScores], [gotIds, gotScores]] = await Promise.all([mapping(plain), mapping(join(ZOO, `${fused}.onnx`))]);
    t.deepEqual(gotIds, wantIds);
    t.true(maxAbsDiff(gotScores!, wantScores!) <= 1e-5 * maxAbs(wantScores!));
  });
}

function mutated(edit: (m: ModelProto) => void): string {
  const m = readModel(FUSED);
  edit(m);
  const path = `${tempDir('fused')}/model.onnx`;
  writeModel(path, m);
  return path;
}

const attention = (m: ModelProto): NodeProto =>
  m.graph!.node!.find((n) => n.opType === 'Attention')!;

test('fused ops the expansion cannot reproduce are refused, naming the node and the reason', (t) => {
  const bidirectional = mutated((m) => { attention(m).attribute = [intAttr('num_heads', 4), intAttr('unidirectional', 0)]; });
  t.throws(() => buildVariant(bidirectional, { knockout: 'replace_half_min', logits: true }), {
    message: /node 'Attention_0' is the fused com\.microsoft Attention: it is bidirectional/,
  });
  const withPast = mutated((m) => { const a = attention(m); a.input = [...a.input!.slice(0, 4), 'attention_mask']; });
  t.throws(() => buildVariant(withPast, { knockout: 'replace_half_min', logits: true }), { message: /Attention_0.*kv cache/ });
  const packed = mutated((m) => { attention(m).opType = 'PackedAttention'; });
  t.throws(() => buildVariant(packed, { knockout: 'replace_half_min', logits: true }), {
    message: /node 'Attention_0' is the fused com\.microsoft PackedAttention: it packs the batch without padding/,
  });
});

/** The fused fixture with each FastGelu(x, bias) turned into `op`: BiasGelu(x, bias), or GemmFastGelu(input, W, bias) absorbing its MatMul. */
function reGelu(op: 'BiasGelu' | 'GemmFastGelu'): string {
  return mutated((m) => {
    const g = m.graph!;
    for (const n of g.node!.filter((x) => x.opType === 'FastGelu')) {
      if (op === 'BiasGelu') { n.opType = 'BiasGelu'; continue; }
      const mm = g.node!.find((x) => x.output?.[0] === n.input![0])!;
      Object.assign(n, { opType: 'GemmFastGelu', input: [mm.input![0]!, mm.input![1]!, n.input![1]!] });
      g.node = g.node!.filter((x) => x !== mm);
    }
  });
}

for (const op of ['BiasGelu', 'GemmFastGelu'] as const) {
  test(`${op} expands into its bias add (the MLP pre-activations) and the bias-free activation; the variant computes what the fused graph does`, async (t) => {
    const path = reGelu(op);
    const sites = detectSites(readModel(path), path);
    t.is(sites.expandedFusedOps?.[op], 2);
    t.is(sites.activation, op === 'BiasGelu' ? 'gelu' : 'gelu_tanh');
    const seq = REFERENCE.sequences[0]!;
    const n = seq.input_ids.length;
    const model = { input_ids: int64(seq.input_ids, [1, n]), attention_mask: int64(seq.attention_mask, [1, n]) };
    // onnxruntime has no CPU kernel for GemmFastGelu: the graph it replaced computes the same
    const want = numbers((await (await session(op === 'GemmFastGelu' ? FUSED : path)).run(model)).logits!);
    const built = buildVariant(path, { knockout: false, logits: true, gates: { mlp: 'zero_preactivation' } });
    const v = await session(built.bytes);
    const run = async (gate: number): Promise<number[]> => numbers((await v.run({
      ...model, [VariantNames.lastIndex]: int64([n - 1], [1]), [VariantNames.target]: int64([0], [1]),
      [VariantNames.gateMlp]: gateTensor(1, 2, n, [[0, 1, n - 1, gate]]),
    })).logits!);
    t.true(maxAbsDiff(await run(1), want) <= 1e-5 * maxAbs(want), 'no intervention: the fused graph\'s own logits');
    t.true(maxAbsDiff(await run(0), want) > 1e-3, 'the cancelled pre-activations change the output');
  });
}
