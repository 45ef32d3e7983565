// Gradient attribution compiled into the graph: every supported model's forward slice has a
// gradient rule for each op (and the variant builds), an op without a rule is refused by name,
// and on the default model the attributions of hidden states equal finite differences of y along
// the hidden state itself (patching block l's input at one position with h·(1 ± ε)).

import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { UserError } from '../../src/errors.js';
import { differentiableSlice, emitGradients, opsWithoutRule } from '../../src/onnx/autodiff/backward.js';
import { buildVariant } from '../../src/onnx/compile.js';
import { GraphIndex, tensorValueInfo } from '../../src/onnx/graph.js';
import { inferDtypes } from '../../src/onnx/infer.js';
import { detectSites, readModel, SiteError } from '../../src/onnx/index.js';
import { DataType } from '../../src/onnx/proto.js';
import { Rewrite } from '../../src/onnx/rewrite.js';
import { VariantNames, type AttributionRequest, type VariantRequest } from '../../src/onnx/variant.js';
import { FIXTURE_DIR, int64, REPO, session } from './helpers.js';
import { TINY_GPT2 } from './reference.js';

const ZOO = join(REPO, 'generated', 'real');

function supportedModels(): string[] {
  const zoo = (JSON.parse(readFileSync(join(ZOO, 'manifest.json'), 'utf8')) as { exports: { file: string; status: string }[] }).exports
    .filter((e) => e.status === 'ok').map((e) => join(ZOO, e.file));
  return [
    ...readdirSync(FIXTURE_DIR).filter((f) => f.endsWith('.onnx')).map((f) => join(FIXTURE_DIR, f)),
    TINY_GPT2, join(REPO, 'generated', 'tiny-gptj', 'model.onnx'), ...zoo,
  ];
}

const ATTRIBUTION: VariantRequest = { knockout: false, logits: false, attribution: { target: 'log_probability', reduction: 'sum' } };

test('every op between the hidden states and the logits of every supported model has a gradient rule, and the variant builds', (t) => {
  let checked = 0;
  for (const path of supportedModels()) {
    const model = readModel(path);
    let sites;
    try {
      sites = detectSites(model, path);
    } catch (e) {
      if (e instanceof SiteError) continue; // not a supported export (real-exports.test.ts lists these)
      throw e;
    }
    const ix = new GraphIndex(model.graph!);
    const hidden = [...sites.perLayer.map((L) => L.residIn), sites.perLayer.at(-1)!.residPost];
    const slice = differentiableSlice(ix, inferDtypes(ix), hidden, sites.logits);
    t.true(slice.nodes.length > 10 * sites.layers, `${path}: the slice holds the blocks`);
    t.deepEqual([...opsWithoutRule(slice).keys()], [], `${path}: ops without a gradient rule`);
    t.notThrows(() => buildVariant(path, ATTRIBUTION), path);
    checked++;
  }
  t.true(checked >= 80, `${checked} models checked`);
});

test('an op without a gradient rule is refused, naming the op and its node', (t) => {
  const model = {
    irVersion: 8, opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'sin', input: [tensorValueInfo('x', DataType.FLOAT, [3])], output: [tensorValueInfo('y', DataType.FLOAT, [3])],
      node: [{ opType: 'Sin', input: ['x'], output: ['s'], name: 'the_sine' }, { opType: 'Neg', input: ['s'], output: ['y'], name: 'negate' }],
    },
  };
  const error = t.throws(() => emitGradients(new Rewrite(model), 'y', ['x'], 'grad'));
  t.true(error instanceof UserError);
  t.regex(error!.message, /no gradient rule for Sin \(first at 'the_sine' \(Sin\)\)/);
});

interface Row { readonly layer: number; readonly position: number; readonly values?: Float32Array }

const IDS = [5, 17, 3, 42, 9, 11, 2];

async function attributionSession(request: AttributionRequest) {
  const variant = buildVariant(TINY_GPT2, { knockout: false, logits: false, patch: true, hiddenStates: true, attribution: request });
  const s = await session(variant.bytes);
  const d = variant.manifest.dModel;
  const n = IDS.length;
  return {
    layers: variant.manifest.layers, d,
    run: (rows: readonly Row[], target: number) => {
      const b = rows.length;
      const values = new Float32Array(b * n * d);
      rows.forEach((r, i) => { if (r.values) values.set(r.values, i * n * d); });
      return s.run({
        input_ids: int64(rows.flatMap(() => IDS), [b, n]),
        attention_mask: int64(rows.flatMap(() => IDS.map(() => 1)), [b, n]),
        [VariantNames.lastIndex]: int64(rows.map(() => n - 1), [b]),
        [VariantNames.target]: int64(rows.map(() => target), [b]),
        [VariantNames.patchLayer]: int64(rows.map((r) => r.layer), [b]),
        [VariantNames.patchMask]: new ort.Tensor('bool', Uint8Array.from(rows.flatMap((r) => IDS.map((_, p) => (p === r.position ? 1 : 0)))), [b, n]),
        [VariantNames.patchValues]: new ort.Tensor('float32', values, [b, n, d]),
      });
    },
  };
}

/** Block l's input at one position scaled by (1 + δ), the rest of the prompt's states as they are. */
function scaled(hidden: Float32Array, layer: number, position: number, delta: number, n: number, d: number): Float32Array {
  const values = new Float32Array(n * d);
  for (let k = 0; k < d; k++) values[position * d + k] = hidden[(layer * n + position) * d + k]! * (1 + delta);
  return values;
}

for (const target of ['log_probability', 'probability', 'logit'] as const) {
  test(`attribution (${target}) of every block input and position equals the finite difference of y along the hidden state`, async (t) => {
    const { layers, d, run } = await attributionSession({ target, reduction: 'sum' });
    const n = IDS.length;
    const clean = await run([{ layer: -1, position: -1 }], 0);
    const top1 = Number(clean[VariantNames.top1]!.data[0]);
    const base = await run([{ layer: -1, position: -1 }], top1);
    const hidden = base[VariantNames.hiddenStates]!.data as Float32Array;
    const attribution = base[VariantNames.attribution]!.data as Float32Array;
    t.deepEqual([...base[VariantNames.attribution]!.dims], [1, layers + 1, n]);
    t.not(clean[VariantNames.attributionY]!.data[0], base[VariantNames.attributionY]!.data[0], 'y follows dissect_target');
    const eps = 1e-2;
    const rows: Row[] = [];
    for (let l = 0; l < layers; l++) {
      for (let p = 0; p < n; p++) for (const sign of [1, -1]) rows.push({ layer: l, position: p, values: scaled(hidden, l, p, sign * eps, n, d) });
    }
    const ys = (await run(rows, top1))[VariantNames.attributionY]!.data as Float32Array;
    let worst = 0;
    let largest = 0;
    for (let l = 0; l < layers; l++) {
      for (let p = 0; p < n; p++) {
        const k = 2 * (l * n + p);
        const numeric = (ys[k]! - ys[k + 1]!) / (2 * eps);
        worst = Math.max(worst, Math.abs(numeric - attribution[l * n + p]!));
        largest = Math.max(largest, Math.abs(attribution[l * n + p]!));
      }
    }
    t.true(largest > 0, 'attributions are not all zero');
    t.true(worst <= 1e-3 * largest, `max |attribution − finite difference| ${worst}, max |attribution| ${largest}`);
  });
}

test('l2_norm attribution is ‖h ⊙ ∂y/∂h‖ with the gradient taken by finite differences per coordinate', async (t) => {
  const sum = await attributionSession({ target: 'log_probability', reduction: 'sum' });
  const l2 = await attributionSession({ target: 'log_probability', reduction: 'l2_norm' });
  const { d } = sum;
  const n = IDS.length;
  const [layer, position, target] = [3, 4, 7];
  const base = await sum.run([{ layer: -1, position: -1 }], target);
  const hidden = base[VariantNames.hiddenStates]!.data as Float32Array;
  const eps = 1e-2;
  const rows: Row[] = [];
  for (let k = 0; k < d; k++) {
    for (const sign of [1, -1]) {
      const values = new Float32Array(n * d);
      for (let j = 0; j < d; j++) values[position * d + j] = hidden[(layer * n + position) * d + j]!;
      values[position * d + k]! += sign * eps;
      rows.push({ layer, position, values });
    }
  }
  const ys = (await sum.run(rows, target))[VariantNames.attributionY]!.data as Float32Array;
  let squares = 0;
  for (let k = 0; k < d; k++) squares += (hidden[(layer * n + position) * d + k]! * (ys[2 * k]! - ys[2 * k + 1]!) / (2 * eps)) ** 2;
  const expected = Math.sqrt(squares);
  const got = ((await l2.run([{ layer: -1, position: -1 }], target))[VariantNames.attribution]!.data as Float32Array)[layer * n + position]!;
  t.true(Math.abs(got - expected) <= 2e-3 * expected, `l2_norm ${got}, from finite differences ${expected}`);
});
