// Site overrides (`site mlp_act at layers all = "..."` in a .dissect file): where detection
// fails, a named tensor lets it match on. The graph: gpt2-opset14 with a Clip (a no-op for these
// values, and an op the activation pattern does not know) between each MLP activation and its
// output projection, so detection breaks there until the Clip's output is named as mlp_act.

import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { buildVariant } from '../../src/onnx/compile.js';
import { inspectModel, renderInspectText } from '../../src/onnx/inspect.js';
import { encodeModel, readModel, type ModelProto } from '../../src/onnx/proto.js';
import { SiteOverrideError } from '../../src/onnx/sites/findings.js';
import { detectSites, runDetection, SiteError } from '../../src/onnx/sites/index.js';
import type { SiteOverride } from '../../src/onnx/sites/types.js';
import { makeTensor } from '../../src/onnx/tensor.js';
import { VariantNames, type VariantRequest } from '../../src/onnx/variant.js';
import { fixturePath, int64, maxAbs, maxAbsDiff, numbers, session, tempDir } from './helpers.js';
import { feedsFor, gateTensor } from './reference.js';

const PLAIN = fixturePath('gpt2-opset14.onnx');

/** gpt2-opset14 with `clip_{l}` = Clip(mlpAct of layer l, −1e6, 1e6) feeding the output projection. */
function clipped(): string {
  const m: ModelProto = readModel(PLAIN);
  const sites = detectSites(readModel(PLAIN));
  const g = m.graph!;
  g.initializer!.push(makeTensor('clip_lo', 1, [], [-1e6]), makeTensor('clip_hi', 1, [], [1e6]));
  for (const L of sites.perLayer) {
    const out = `clip_${L.layer}`;
    for (const n of g.node!) n.input = n.input!.map((i) => (i === L.mlpAct ? out : i));
    g.node!.push({ opType: 'Clip', name: `Clip_${L.layer}`, input: [L.mlpAct, 'clip_lo', 'clip_hi'], output: [out] });
  }
  const path = join(tempDir('site-override'), 'clipped.onnx');
  writeFileSync(path, encodeModel(m)); // node order is fixed by the variant's topological sort
  return path;
}

const CLIPPED = clipped();
const MLP_ACT: SiteOverride = { site: 'mlpAct', layers: 'all', tensor: 'clip_{layer}' };

test('without an override detection breaks at the unknown op, naming it', (t) => {
  const e = t.throws(() => detectSites(readModel(CLIPPED), 'clipped.onnx'), { instanceOf: SiteError })!;
  t.regex(e.message, /layer 0: .* not found: at 'Clip_0' \(Clip\): expected MLP output projection/);
});

test('an override names the site, detection matches on and records it as an override', (t) => {
  const d = runDetection(readModel(CLIPPED), 'clipped.onnx', [MLP_ACT]);
  t.truthy(d.sites);
  t.deepEqual(d.sites!.perLayer.map((L) => L.mlpAct), ['clip_0', 'clip_1']);
  const found = d.layers[1]!.found.find((f) => f.site === 'mlpAct')!;
  t.deepEqual(found, { site: 'mlpAct', tensor: 'clip_1', op: 'Clip', node: 'Clip_1', override: true });
  t.is(d.sites!.activation, 'named by a site override');
  // an override for one layer only leaves the other broken
  const one = runDetection(readModel(CLIPPED), 'clipped.onnx', [{ ...MLP_ACT, layers: [0] }]);
  t.is(one.sites, undefined);
  t.true(one.layers[1]!.missing.length > 0);
});

test('the overridden graph computes what the plain export does, cancels and projections included', async (t) => {
  const request: VariantRequest = {
    knockout: false, logits: true, gates: { mlp: 'zero_preactivation' },
    projections: [{ site: 'mlp', layers: [0, 1], via: 'embedding', k: 5, vocabLimit: 64 }],
  };
  const plain = buildVariant(PLAIN, request);
  const overridden = buildVariant(CLIPPED, { ...request, siteOverrides: [MLP_ACT] });
  const rows = [[5, 17, 42, 3, 60]];
  const n = 5;
  const feeds = {
    ...feedsFor(plain.sites, rows),
    [VariantNames.lastIndex]: int64([4], [1]),
    [VariantNames.target]: int64([9], [1]),
    [VariantNames.gateMlp]: gateTensor(1, 2, n, [[0, 0, 4, 0], [0, 1, 2, 0]]),
    [VariantNames.projPositions]: int64([4, 2], [1, 2]),
  };
  const [want, got] = await Promise.all([plain, overridden].map(async (v) => (await session(v.bytes)).run(feeds)));
  for (const o of plain.manifest.outputs) {
    const w = numbers(want![o.name]!);
    const g = numbers(got![o.name]!);
    t.true(maxAbsDiff(g, w) <= 1e-5 * Math.max(1, maxAbs(w)), o.name);
  }
  // the gate took effect: the cancelled MLP leaves its projection at the output bias only
  const ungated = await (await session(overridden.bytes)).run({ ...feeds, [VariantNames.gateMlp]: new ort.Tensor('float32', new Float32Array(2 * n).fill(1), [1, 2, n]) });
  t.true(maxAbsDiff(numbers(ungated.logits!), numbers(got!.logits!)) > 1e-3);
});

test('an override naming no tensor of the graph is an error with its index; one that breaks the pattern names where', (t) => {
  const e = t.throws(() => detectSites(readModel(CLIPPED), 'clipped.onnx', [MLP_ACT, { site: 'probs', layers: [1], tensor: 'nope_{layer}' }]), {
    instanceOf: SiteOverrideError,
  })!;
  t.is(e.message, "site override probs at layer 1: the graph has no tensor named 'nope_1'");
  t.is((e as SiteOverrideError).index, 1);
  const notSoftmax = t.throws(() => detectSites(readModel(CLIPPED), 'clipped.onnx', [MLP_ACT, { site: 'probs', layers: [0], tensor: 'clip_0' }]), {
    instanceOf: SiteError,
  })!;
  t.regex(notSoftmax.message, /layer 0: .*expected a Softmax producing the attention probabilities/);
});

test('inspect grades each layer: high by pattern, medium with an override, low with sites missing', (t) => {
  const plain = inspectModel(PLAIN);
  t.deepEqual(plain.layers.map((L) => [L.confidence, L.why]), [['high', 'all 16 sites matched by pattern'], ['high', 'all 16 sites matched by pattern']]);
  const broken = inspectModel(CLIPPED);
  t.is(broken.layers[0]!.confidence, 'low');
  t.regex(broken.layers[0]!.why, /^\d+ of 16 sites not found$/);
  const overridden = inspectModel(CLIPPED, [MLP_ACT]);
  t.deepEqual(overridden.layers.map((L) => [L.confidence, L.why]), [['medium', 'mlp_act named by a site override'], ['medium', 'mlp_act named by a site override']]);
  t.is(overridden.layers[1]!.matches['mlpAct'], 'override');
  t.is(overridden.layers[1]!.matches['mlpPre'], 'pattern');
  const text = renderInspectText(overridden);
  t.regex(text, /layer 1: confidence medium \(mlp_act named by a site override\)\n/);
  t.regex(text, /  mlp_act +clip_1  ← Clip 'Clip_1' \(site override\)\n/);
  t.regex(text, /confidence: 2 layers: 0 high, 2 medium, 0 low\n/);
});
