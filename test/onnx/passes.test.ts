import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../../src/errors.js';
import { buildVariant, compileVariant } from '../../src/onnx/compile.js';
import { decodeModel } from '../../src/onnx/proto.js';
import { VariantNames, type VariantManifest, type VariantRequest } from '../../src/onnx/variant.js';
import { fixturePath, tempDir } from './helpers.js';
import { OutputFolder } from '../../src/output/folder.js';

const MODEL = fixturePath('gpt2-opset14.onnx');
const MODEL_INPUTS = ['input_ids', 'attention_mask'];
const REDUCED = ['dissect_target_prob', 'dissect_target_rank', 'dissect_top1', 'dissect_top1_prob'];
const proj = (site: 'hidden' | 'attention' | 'mlp' | 'heads') =>
  [`dissect_proj_${site}_ids`, `dissect_proj_${site}_scores`, `dissect_proj_${site}_target_rank`, `dissect_proj_${site}_norm`];

function io(request: VariantRequest): { inputs: string[]; outputs: string[]; nodes: string[]; manifest: VariantManifest } {
  const { bytes, manifest } = buildVariant(MODEL, request);
  const g = decodeModel(bytes).graph!;
  return {
    inputs: g.input!.map((i) => i.name!), outputs: g.output!.map((o) => o.name!),
    nodes: g.node!.map((n) => n.name ?? '').filter((n) => n.startsWith('dissect/')), manifest,
  };
}

const base: VariantRequest = { knockout: false, logits: false };
const cases: [string, VariantRequest, string[], string[], RegExp[]][] = [
  ['nothing', base, [], [], []],
  ['attention gate', { ...base, gates: { attention: 'zero_update' } }, [VariantNames.gateAttention], [], [/^dissect\/gate\/attention\//]],
  ['MLP gate', { ...base, gates: { mlp: 'zero_update' } }, [VariantNames.gateMlp], [], [/^dissect\/gate\/mlp\//]],
  ['MLP pre-activation gate', { ...base, gates: { mlp: 'zero_preactivation' } }, [VariantNames.gateMlp], [], [/^dissect\/gate\/mlp_pre\//]],
  ['empty gates', { ...base, gates: {} }, [], [], []],
  ['patch', { ...base, patch: true }, [VariantNames.patchLayer, VariantNames.patchMask, VariantNames.patchValues], [], [/^dissect\/patch\//]],
  ['hidden states', { ...base, hiddenStates: true }, [], [VariantNames.hiddenStates], [/^dissect\/hidden\//]],
  ['no projections', { ...base, projections: [] }, [], [], []],
  ['one projection', { ...base, projections: [{ site: 'mlp', layers: [1], via: 'embedding', k: 3, vocabLimit: 64 }] },
    [VariantNames.projPositions], proj('mlp'), [/^dissect\/proj\/(mlp|positions)\//]],
];
const ALL_NEW = /^dissect\/(gate|patch|hidden|proj)\//;

for (const [label, request, inputs, outputs, nodePatterns] of cases) {
  test(`${label}: the graph has exactly the inputs and outputs it asks for`, (t) => {
    const r = io(request);
    t.deepEqual([...r.inputs].sort(), [...MODEL_INPUTS, 'dissect_last_index', 'dissect_target', ...inputs].sort());
    t.deepEqual(r.outputs, [...REDUCED, ...outputs]);
    const extra = r.nodes.filter((n) => ALL_NEW.test(n));
    t.true(extra.every((n) => nodePatterns.some((p) => p.test(n))), `unexpected nodes: ${extra.filter((n) => !nodePatterns.some((p) => p.test(n))).join(', ')}`);
    for (const p of nodePatterns) t.true(extra.some((n) => p.test(n)), `nodes ${p}`);
    t.deepEqual(r.manifest.inputs.map((i) => i.name), r.inputs);
    t.deepEqual(r.manifest.outputs.map((o) => o.name), r.outputs);
  });
}

test('the manifest describes every new input (meaning, fill, dtype, shape) and output', (t) => {
  const request: VariantRequest = {
    knockout: 'replace_half_min', logits: false, gates: { attention: 'zero_update', mlp: 'zero_preactivation' }, patch: true, hiddenStates: true,
    projections: [
      { site: 'hidden', layers: [0, 2], via: 'embedding', k: 5, vocabLimit: 60 },
      { site: 'attention', layers: [0, 1], via: 'final_norm_unembedding', k: 4, vocabLimit: 64 },
      { site: 'mlp', layers: [1], via: 'embedding', k: 3, vocabLimit: 64 },
      { site: 'heads', layers: [0, 1], via: 'final_norm_unembedding', k: 2, vocabLimit: 64 },
    ],
  };
  const out = tempDir('passes-manifest');
  const c = compileVariant(MODEL, request, OutputFolder.open(out));
  const m = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as VariantManifest;
  t.deepEqual(m, c.manifest);
  const input = (name: string) => m.inputs.find((i) => i.name === name)!;
  t.like(input(VariantNames.gateAttention), { dtype: 'float32', shape: ['batch', 2, 'seq'] });
  t.like(input(VariantNames.gateMlp), { dtype: 'float32', shape: ['batch', 2, 'seq'] });
  t.regex(input(VariantNames.gateMlp).meaning, /pre-activations/);
  t.like(input(VariantNames.patchLayer), { dtype: 'int64', shape: ['batch'] });
  t.like(input(VariantNames.patchMask), { dtype: 'bool', shape: ['batch', 'seq'] });
  t.like(input(VariantNames.patchValues), { dtype: 'float32', shape: ['batch', 'seq', 32] });
  t.like(input(VariantNames.projPositions), { dtype: 'int64', shape: ['batch', 'proj_positions'] });
  for (const i of m.inputs) {
    t.truthy(i.fill, `${i.name} has a fill rule`);
    t.not(i.meaning, 'input of the source model', i.name);
  }
  for (const o of m.outputs) t.not(o.meaning, 'output of the source model (passed through)', o.name);
  const output = (name: string) => m.outputs.find((o) => o.name === name)!;
  t.like(output(VariantNames.hiddenStates), { dtype: 'float32', shape: ['batch', 3, 'seq', 32] });
  t.regex(output(VariantNames.hiddenStates).meaning, /before the final norm/);
  t.like(output('dissect_proj_hidden_ids'), { dtype: 'int64', shape: ['batch', 2, 'proj_positions', 5] });
  t.like(output('dissect_proj_hidden_scores'), { dtype: 'float32', shape: ['batch', 2, 'proj_positions', 5] });
  t.like(output('dissect_proj_hidden_target_rank'), { dtype: 'int64', shape: ['batch', 2, 'proj_positions'] });
  t.like(output('dissect_proj_heads_ids'), { dtype: 'int64', shape: ['batch', 2, 4, 'proj_positions', 2] });
  t.like(output('dissect_proj_heads_target_rank'), { dtype: 'int64', shape: ['batch', 2, 4, 'proj_positions'] });
  t.like(output('dissect_proj_heads_norm'), { dtype: 'float32', shape: ['batch', 2, 4, 'proj_positions'] });
  t.regex(output('dissect_proj_hidden_ids').meaning, /ids ≥ 60 excluded/);
  for (const k of ['gateAttention', 'gateMlp', 'patch', 'hiddenStates', 'projections']) t.truthy(m.choices[k], k);
  const meta = decodeModel(readFileSync(c.modelPath)).metadataProps!.find((p) => p.key === 'dissect.variant')!;
  t.deepEqual(JSON.parse(meta.value!), request);
  // fp16: the patch values and hidden states are float16
  const fp16 = buildVariant(fixturePath('gpt2-fp16.onnx'), { knockout: false, logits: false, patch: true, hiddenStates: true }).manifest;
  t.is(fp16.inputs.find((i) => i.name === VariantNames.patchValues)!.dtype, 'float16');
  t.is(fp16.outputs.find((o) => o.name === VariantNames.hiddenStates)!.dtype, 'float16');
});

test('bad projection requests are refused with a user error', (t) => {
  const p = { site: 'hidden', layers: [0], via: 'embedding', k: 3, vocabLimit: 64 } as const;
  const bad: [Partial<typeof p> | Record<string, unknown>, RegExp][] = [
    [{ layers: [3] }, /layer 3 is outside 0\.\.2/],
    [{ site: 'mlp', layers: [2] }, /layer 2 is outside 0\.\.1/],
    [{ layers: [1, 0] }, /sorted and unique/],
    [{ layers: [] }, /no layers/],
    [{ k: 65 }, /k = 65 must be in 1\.\.64/],
    [{ k: 10, vocabLimit: 5 }, /k = 10 must be in 1\.\.5/],
    [{ via: 'lens' }, /unknown projection 'lens'/],
    [{ site: 'keys' }, /unknown site/],
  ];
  for (const [change, message] of bad) {
    t.throws(() => buildVariant(MODEL, { ...base, projections: [{ ...p, ...change } as never] }), { instanceOf: UserError, message }, JSON.stringify(change));
  }
  t.throws(() => buildVariant(MODEL, { ...base, projections: [p, { ...p, layers: [1] }] }), { instanceOf: UserError, message: /requested twice/ });
  t.throws(() => buildVariant(MODEL, { ...base, gates: { mlp: 'zero_weights' as never } }), { instanceOf: UserError, message: /unknown MLP gate mode/ });
});
