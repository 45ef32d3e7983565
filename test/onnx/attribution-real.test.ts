// Gradient attribution against PyTorch autograd on transformers' own model classes: the real
// exports of GPT-2, GPT-J and Llama (generated/real, TorchScript and dynamo), compiled with the
// attribution pass, give per hidden state and position what autograd gives on the model they were
// exported from (scripts/real_exports/make_attribution.py), for every target and both reductions,
// within 1e-4 × the largest |attribution| of the prompt. Integrated gradients, run through the
// patch inputs as the runner runs them, equal autograd's too and satisfy completeness with the mean
// baseline, the gap shrinking with the number of steps.

import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { buildVariant } from '../../src/onnx/compile.js';
import { VariantNames, type AttributionRequest } from '../../src/onnx/variant.js';
import { int64, REPO, session } from './helpers.js';

const ZOO = join(REPO, 'generated', 'real');
const FAMILIES = ['gpt2', 'gptj', 'llama'] as const;
const TARGETS = ['log_probability', 'probability', 'logit'] as const;

interface Prompt {
  readonly prompt: string;
  readonly input_ids: number[];
  readonly attention_mask: number[];
  readonly last: number;
  readonly token: number;
  readonly targets: Record<(typeof TARGETS)[number], { y: number; sum: number[][]; l2_norm: number[][] }>;
  readonly integrated_gradients: Record<string, { values: number[]; y_input: number; y_baseline: number }>;
}
interface Reference { readonly ig_layer: number; readonly ig_baseline: number[]; readonly prompts: Prompt[] }
interface Export { readonly family: string; readonly file: string; readonly dtype: string; readonly attn: string; readonly layout: string; readonly status: string }

const exports = (JSON.parse(readFileSync(join(ZOO, 'manifest.json'), 'utf8')) as { exports: Export[] }).exports
  .filter((e) => e.status === 'ok' && (FAMILIES as readonly string[]).includes(e.family) && e.dtype === 'fp32' && e.attn === 'eager' && e.layout === 'plain');

const reference = (family: string): Reference => JSON.parse(readFileSync(join(ZOO, family, 'attribution.json'), 'utf8')) as Reference;

interface PatchRow { readonly layer: number; readonly values: Float32Array }

/** A session of the export's attribution variant with the patch inputs; `run` feeds one prompt per row. */
async function attributionVariant(path: string, request: AttributionRequest) {
  const built = buildVariant(path, { knockout: false, logits: false, patch: true, hiddenStates: true, attribution: request });
  const s = await session(built.bytes, built.manifest.weights.sessionConfig);
  const d = built.manifest.dModel;
  return {
    d,
    run: (p: Prompt, rows: readonly PatchRow[]) => {
      const n = p.input_ids.length;
      const b = rows.length;
      const values = new Float32Array(b * n * d);
      rows.forEach((r, i) => values.set(r.values, i * n * d));
      return s.run({
        input_ids: int64(rows.flatMap(() => p.input_ids), [b, n]),
        attention_mask: int64(rows.flatMap(() => p.attention_mask), [b, n]),
        [VariantNames.lastIndex]: int64(rows.map(() => p.last), [b]),
        [VariantNames.target]: int64(rows.map(() => p.token), [b]),
        [VariantNames.patchLayer]: int64(rows.map((r) => r.layer), [b]),
        [VariantNames.patchMask]: new ort.Tensor('bool', new Uint8Array(b * n).fill(1), [b, n]),
        [VariantNames.patchValues]: new ort.Tensor('float32', values, [b, n, d]),
      });
    },
  };
}

const unpatched = (n: number, d: number): PatchRow => ({ layer: -1, values: new Float32Array(n * d) });

/** max |got − expected| and max |expected| over a prompt's hidden states and positions. */
function compare(got: Float32Array, expected: readonly (readonly number[])[]): { error: number; largest: number } {
  const n = expected[0]!.length;
  let error = 0;
  let largest = 0;
  expected.forEach((row, l) => row.forEach((v, p) => {
    error = Math.max(error, Math.abs(got[l * n + p]! - v));
    largest = Math.max(largest, Math.abs(v));
  }));
  return { error, largest };
}

for (const e of exports) {
  test(`${e.file}: attributions of every hidden state equal PyTorch autograd on transformers' model (every target, sum and l2_norm)`, async (t) => {
    const x = reference(e.family);
    const requests: AttributionRequest[] = [
      ...TARGETS.map((target) => ({ target, reduction: 'sum' as const })), { target: 'log_probability', reduction: 'l2_norm' },
    ];
    for (const request of requests) {
      const variant = await attributionVariant(join(ZOO, e.file), request);
      for (const p of x.prompts) {
        const out = await variant.run(p, [unpatched(p.input_ids.length, variant.d)]);
        const expected = x.prompts.find((q) => q.prompt === p.prompt)!.targets[request.target];
        const y = (out[VariantNames.attributionY]!.data as Float32Array)[0]!;
        t.true(Math.abs(y - expected.y) <= 1e-5 * Math.max(1, Math.abs(expected.y)), `${p.prompt} ${request.target}: y ${y}, autograd ${expected.y}`);
        const { error, largest } = compare(out[VariantNames.attribution]!.data as Float32Array, expected[request.reduction]);
        t.true(largest > 0);
        t.true(error <= 1e-4 * largest, `${p.prompt} ${request.target} ${request.reduction}: max error ${error}, max |attribution| ${largest}`);
      }
    }
  });
}

/**
 * Integrated gradients of hidden state `layer` along b + α(h − b), α at the midpoints of `steps`
 * intervals, every position patched: per position Σ_d (h − b)_d · mean_α ∂y/∂x_d, and y at α = 1 and 0.
 */
async function integratedGradients(variant: Awaited<ReturnType<typeof attributionVariant>>, p: Prompt, layer: number, baseline: readonly number[], steps: number) {
  const { d } = variant;
  const n = p.input_ids.length;
  const clean = await variant.run(p, [unpatched(n, d)]);
  const hidden = (clean[VariantNames.hiddenStates]!.data as Float32Array).subarray(layer * n * d, (layer + 1) * n * d);
  const along = (alpha: number): PatchRow => ({
    layer, values: Float32Array.from(hidden, (h, i) => baseline[i % d]! + alpha * (h - baseline[i % d]!)),
  });
  const alphas = [...Array(steps).keys()].map((k) => (k + 0.5) / steps);
  const out = await variant.run(p, [along(1), along(0), ...alphas.map(along)]);
  const gradients = out[VariantNames.attributionPatchGradient]!.data as Float32Array;
  const ys = out[VariantNames.attributionY]!.data as Float32Array;
  const values = Array.from({ length: n }, (_, q) => {
    let s = 0;
    for (let k = 0; k < steps; k++) {
      for (let j = 0; j < d; j++) s += (hidden[q * d + j]! - baseline[j]!) * gradients[((k + 2) * n + q) * d + j]!;
    }
    return s / steps;
  });
  return { values, yInput: ys[0]!, yBaseline: ys[1]! };
}

for (const family of FAMILIES) {
  const e = exports.find((x) => x.family === family && x.file === `${family}/ts-17-eager-fp32.onnx`)!;
  test(`${e.file}: integrated gradients with the mean baseline equal autograd's and are complete, more so with more steps`, async (t) => {
    const x = reference(family);
    const variant = await attributionVariant(join(ZOO, e.file), { target: 'log_probability', reduction: 'sum' });
    for (const p of x.prompts) {
      const gaps: number[] = [];
      for (const steps of [8, 64]) {
        const ig = await integratedGradients(variant, p, x.ig_layer, x.ig_baseline, steps);
        const expected = p.integrated_gradients[String(steps)]!;
        const { error, largest } = compare(Float32Array.from(ig.values), [expected.values]);
        t.true(error <= 1e-4 * largest, `${p.prompt}, ${steps} steps: max error ${error}, max |attribution| ${largest}`);
        t.true(Math.abs(ig.yInput - expected.y_input) <= 1e-5 * Math.max(1, Math.abs(expected.y_input)));
        t.true(Math.abs(ig.yBaseline - expected.y_baseline) <= 1e-5 * Math.max(1, Math.abs(expected.y_baseline)));
        gaps.push(Math.abs(ig.values.reduce((a, v) => a + v, 0) - (ig.yInput - ig.yBaseline)) / Math.abs(ig.yInput - ig.yBaseline));
      }
      t.true(gaps[1]! <= 0.01, `${p.prompt}: completeness gap at 64 steps ${gaps[1]} of y(h) − y(b)`);
      t.true(gaps[1]! < gaps[0]!, `${p.prompt}: the gap shrinks from 8 to 64 steps (${gaps[0]} → ${gaps[1]})`);
    }
  });
}
