import test from 'ava';
import { decodeModel, readModel, type ModelProto } from '../../src/onnx/proto.js';
import { detectSites, runDetection, SiteError } from '../../src/onnx/sites/index.js';
import { LAYER_SITE_NAMES } from '../../src/onnx/sites/types.js';
import { inspectModel, renderInspectJson, renderInspectText } from '../../src/onnx/inspect.js';
import { DataType, encodeModel, writeModel } from '../../src/onnx/proto.js';
import { join } from 'node:path';
import { LEFT_ON_DISK_BYTES } from '../../src/onnx/source.js';
import { tempDir } from '../temp.js';
import { FIXTURE_MODELS, anonymise, fixture, fixturePath, withoutSoftmax as withoutSoftmaxNode } from './helpers.js';

for (const name of FIXTURE_MODELS) {
  test(`sites of ${name} match its config`, (t) => {
    const cfg = fixture(name).config;
    const s = detectSites(readModel(fixturePath(name)), name);
    t.is(s.family, 'gpt2');
    t.is(s.layers, cfg.layers);
    t.is(s.heads, cfg.heads);
    t.is(s.dHead, cfg.d_head);
    t.is(s.dModel, cfg.d_model);
    t.is(s.vocab, cfg.vocab);
    t.is(s.dMlp, 4 * cfg.d_model);
    t.is(s.activation, 'gelu_tanh');
    t.is(s.dtype, name.includes('fp16') ? 10 : 1);
    t.is(s.logits, 'logits');
    t.is(s.inputs.inputIds, 'input_ids');
    t.is(s.inputs.attentionMask, 'attention_mask');
    t.regex(s.embedding.weight, /wte\.weight$/);
    t.is(s.unembedding.layout, 'dV');
    if (name.includes('optimum')) {
      t.is(s.inputs.positionIds, 'position_ids');
      t.deepEqual(s.inputs.past.map((p) => [p.layer, p.key, p.value]),
        [0, 1].map((l) => [l, `past_key_values.${l}.key`, `past_key_values.${l}.value`]));
      t.regex(runDetection(readModel(fixturePath(name))).notes.join('\n'),
        /kv cache .*keys, 4 key\/value heads \(before any repeat\): layer 0 past_key_values\.0\.key, past_key_values\.0\.value; layer 1/);
    } else {
      t.is(s.inputs.past.length, 0);
    }
    // every layer's sites are distinct tensors, and layers chain through the residual stream
    for (const L of s.perLayer) {
      const names = LAYER_SITE_NAMES.map((k) => L[k]);
      t.is(new Set(names).size, names.length, `layer ${L.layer} sites are distinct`);
    }
    t.is(s.perLayer[1]!.residIn, s.perLayer[0]!.residPost);
    t.is(s.finalNorm.input, s.perLayer[s.layers - 1]!.residPost);
  });
}

test('detection works on anonymised graphs (names are hints only)', (t) => {
  for (const name of ['gpt2-opset14.onnx', 'gpt2-optimum.onnx']) {
    const m = readModel(fixturePath(name));
    anonymise(m);
    const s = detectSites(m, name);
    t.is(s.layers, 2);
    t.is(s.heads, 4);
    t.true(s.perLayer[0]!.scores.startsWith('t'));
  }
});

const withoutSoftmax = (layer: number): ModelProto => withoutSoftmaxNode(fixturePath('gpt2-opset14.onnx'), `/h.${layer}/attn/Softmax`);

test('a graph without a Softmax fails naming the node where the pattern broke', (t) => {
  const e = t.throws(() => detectSites(withoutSoftmax(1), 'broken.onnx'), { instanceOf: SiteError });
  t.regex(e!.message, /broken\.onnx: not a recognised gpt2 transformer graph: layer 1: scores not found: at '\/h\.1\/attn\/MatMul_1' \(MatMul\)/);
  t.regex(e!.message, /expected a Softmax over the attention scores/);
  // the rest of the model is still reported
  const d = runDetection(withoutSoftmax(1));
  t.is(d.layers[0]!.missing.length, 0);
  t.deepEqual(d.layers[1]!.missing.map((m) => m.site), ['scores', 'probs', 'v', 'context', 'contextMerged']);
  t.true(d.layers[1]!.found.some((f) => f.site === 'mlpPre'));
});

test('a graph that is not a transformer fails clearly', (t) => {
  const m = decodeModel(encodeModel({
    irVersion: 8, opsetImport: [{ domain: '', version: 14 }],
    graph: { node: [{ input: ['x'], output: ['y'], opType: 'Relu' }], input: [{ name: 'x', type: { tensorType: { elemType: 1 } } }], output: [{ name: 'y', type: { tensorType: { elemType: 1 } } }] },
  }));
  t.throws(() => detectSites(m, 'relu.onnx'), { instanceOf: SiteError, message: /relu\.onnx: not a recognised transformer graph: model: input_ids not found: .*expected a Gather of token ids/ });
});

test('inspect reads the graph as a run does: large inline weights stay in the file and are not external data', (t) => {
  const model = readModel(fixturePath('gpt2-opset17.onnx'));
  const floats = LEFT_ON_DISK_BYTES / 4 + 1;
  model.graph!.initializer!.push({ name: 'large_unused', dims: [floats], dataType: DataType.FLOAT, rawData: new Uint8Array(floats * 4) });
  const path = join(tempDir(), 'model.onnx');
  writeModel(path, model);
  const r = inspectModel(path);
  t.deepEqual(r.externalData, { tensors: 0, files: [] });
  t.deepEqual(r.summary, inspectModel(fixturePath('gpt2-opset17.onnx')).summary);
});

test('inspect reports found and missing sites as text and JSON', (t) => {
  const r = inspectModel(fixturePath('gpt2-opset17.onnx'));
  t.true(r.supported);
  t.deepEqual(r.summary, { layers: 2, heads: 4, dHead: 8, dModel: 32, dMlp: 128, vocab: 64, dtype: 'float32', activation: 'gelu_tanh' });
  t.is(r.layers.length, 2);
  t.is(r.layers[0]!.found.find((f) => f.site === 'attnNorm')!.op, 'LayerNormalization');
  const text = renderInspectText(r);
  t.regex(text, /gpt2, 2 layers, 4 heads × 8, d_model 32, MLP 128, vocab 64, float32/);
  t.regex(text, /layer 1: confidence high \(all 16 sites matched by pattern\)\n  resid_in +\/h\.0\/Add_1_output_0 +← Add '\/h\.0\/Add_1'/);
  t.regex(text, /scores +\/h\.0\/attn\/Add_1_output_0 +← Add/);
  t.regex(text, /supported: yes/);
  t.deepEqual(JSON.parse(renderInspectJson(r)), JSON.parse(JSON.stringify(r)));
});
