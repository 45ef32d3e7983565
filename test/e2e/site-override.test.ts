// `site` statements end to end: the default model with a Clip (a no-op here, unknown to the
// activation pattern) after every MLP activation. Without an override the file is refused at
// its model statement, naming the node; a mistyped tensor is reported at the site statement;
// with the override, every number equals the same experiment on the unmodified model.

import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { detectSites, encodeModel, readModel } from '../../src/onnx/index.js';
import { makeTensor } from '../../src/onnx/tensor.js';
import { DiagnosticsError, loadProgram } from '../../src/pipeline/index.js';
import { runSource, tempDir, tinyGpt2 } from './helpers.js';

const dir = tempDir('e2e');
const clippedModel = join(dir, 'clipped.onnx');
{
  const m = readModel(join(tinyGpt2, 'model.onnx'));
  const sites = detectSites(readModel(join(tinyGpt2, 'model.onnx')));
  m.graph!.initializer!.push(makeTensor('clip_lo', 1, [], [-1e6]), makeTensor('clip_hi', 1, [], [1e6]));
  for (const L of sites.perLayer) {
    const out = `clip_${L.layer}`;
    for (const n of m.graph!.node!) n.input = n.input!.map((i) => (i === L.mlpAct ? out : i));
    m.graph!.node!.push({ opType: 'Clip', name: `Clip_${L.layer}`, input: [L.mlpAct, 'clip_lo', 'clip_hi'], output: [out] });
  }
  writeFileSync(clippedModel, encodeModel(m));
}

function source(model: string, site: string): string {
  return [
    `model "${model}" tokenizer "${join(tinyGpt2, 'tokenizer.json')}"`,
    `dataset counterfact "${join(tinyGpt2, 'facts.json')}"`,
    site,
    'experiment sublayers {',
    '  for l in layers 1, 5',
    '  cancel mlp at layers window(l, 3)',
    '  measure probability_change, rank',
    '}',
    '',
  ].join('\n');
}

function load(text: string): ReturnType<typeof loadProgram> {
  const file = join(dir, 'e.dissect');
  writeFileSync(file, text);
  return loadProgram(file);
}

test('without the override the file is refused at the model statement, naming the node', (t) => {
  const e = t.throws(() => load(source(clippedModel, '')), { instanceOf: DiagnosticsError })!;
  t.regex(e.message, /e\.dissect:1:7: error: cannot read the model .*clipped\.onnx: .*layer 0: mlp_act not found: at 'Clip_0' \(Clip\): expected MLP output projection/);
});

test('a tensor the graph lacks is reported at the site statement', (t) => {
  const e = t.throws(() => load(source(clippedModel, 'site mlp_act at layers all = "clp_{layer}"')), { instanceOf: DiagnosticsError })!;
  t.regex(e.message, /e\.dissect:3:30: error: site override mlp_act at layer 0: the graph has no tensor named 'clp_0'/);
  t.regex(e.message, /dissect inspect/);
});

test('with the override every number equals the unmodified model\'s', async (t) => {
  const site = 'site mlp_act at layers all = "clip_{layer}"';
  const [plain, clipped] = await Promise.all([
    runSource({ source: source(join(tinyGpt2, 'model.onnx'), ''), limit: 12 }),
    runSource({ source: source(clippedModel, site), limit: 12 }),
  ]);
  const rows = (r: typeof plain): unknown[] => r.results.experiments[0]!.values.map((v) => [v.example, v.key, v.values]);
  const want = rows(plain);
  const got = rows(clipped);
  t.is(got.length, want.length);
  t.true(want.length >= 12);
  for (let i = 0; i < want.length; i++) {
    const [wid, wkey, wv] = want[i] as [string, unknown, Record<string, number | null>];
    const [gid, gkey, gv] = got[i] as [string, unknown, Record<string, number | null>];
    t.deepEqual([gid, gkey], [wid, wkey]);
    // within float32 rounding (the Clip changes which of onnxruntime's fusions apply): percent changes divide by p
    for (const k of Object.keys(wv)) t.true(Math.abs((gv[k] ?? NaN) - (wv[k] ?? NaN)) <= 1e-4 + 1e-5 * Math.abs(wv[k] ?? 0), `${wid} ${k}`);
  }
  t.true(plain.results.experiments[0]!.values.some((v) => (v.values['probability_change'] ?? 0) !== 0), 'the cancel changed something');
});
