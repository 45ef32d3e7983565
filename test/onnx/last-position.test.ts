// Last-position rows: a variant with past keys and values as inputs runs one token against the
// keys and values a whole-prompt run of the same variant returned, and must give that run's
// last-position numbers: with and without knockout into the last position, for rows of
// different lengths in one batch (the past right-padded, masked by attention_mask).

import test from 'ava';
import ort from 'onnxruntime-node';
import { join } from 'node:path';
import { buildVariant } from '../../src/onnx/compile.js';
import { lastPositionUnsupported } from '../../src/onnx/passes/last-position.js';
import { readModel } from '../../src/onnx/proto.js';
import { detectSites } from '../../src/onnx/sites/index.js';
import type { ModelSites } from '../../src/onnx/sites/types.js';
import { VariantNames } from '../../src/onnx/variant.js';
import { REPO, bool, fixturePath, int64, numbers, session } from './helpers.js';

const MODELS = [
  { name: 'gpt2-opset14', path: fixturePath('gpt2-opset14.onnx') },
  { name: 'gpt2-optimum', path: fixturePath('gpt2-optimum.onnx') },
  { name: 'gpt2-ort-fused', path: fixturePath('gpt2-ort-fused.onnx') },
  { name: 'gptj-optimum', path: fixturePath('gptj-optimum.onnx') },
  { name: 'llama-optimum', path: fixturePath('llama-optimum.onnx') },
  { name: 'tiny-gpt2', path: join(REPO, 'generated', 'tiny-gpt2', 'model.onnx') },
  { name: 'tiny-gptj', path: join(REPO, 'generated', 'tiny-gptj', 'model.onnx') },
  // onnxruntime's fused attention: the past goes in front of the expanded op's keys, its mask follows it
  ...['gpt2/ts-17-eager-fp32-mha', 'gpt2/ts-17-eager-fp32-gqa', 'llama/ts-17-eager-fp32-gqa'].map((f) => ({ name: f, path: join(REPO, 'generated', 'real', `${f}.onnx`) })),
];

const PROMPTS = [[5, 17, 42, 3, 60, 9], [7, 28, 51, 2]];
/** For variants whose positions are one row for the batch (GPT-J's rotary lookup): rows of one length. */
const EQUAL_PROMPTS = [[5, 17, 42, 3, 60, 9], [7, 28, 51, 2, 19, 33]];
const TARGETS = [11, 40];

/** Entries [0, take) of `t` along `axis`, for batch row `row`, right-padded to `to` entries. */
function prefix(t: ort.Tensor, row: number, take: number, to: number, axis: number): Float32Array {
  const dims = t.dims as number[];
  const src = t.data as Float32Array;
  const outer = dims.slice(1, axis).reduce((a, b) => a * b, 1);
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const out = new Float32Array(outer * to * inner);
  const rowBase = row * outer * dims[axis]! * inner;
  for (let o = 0; o < outer; o++) {
    for (let s = 0; s < take; s++) {
      const from = rowBase + (o * dims[axis]! + s) * inner;
      out.set(src.subarray(from, from + inner), (o * to + s) * inner);
    }
  }
  return out;
}

/** Dims of a cache input with `len` entries on its sequence axis (from the output's dims). */
function cacheDims(t: ort.Tensor, b: number, axis: number, len: number): number[] {
  const dims = [...(t.dims as number[])];
  dims[0] = b;
  dims[axis] = len;
  return dims;
}

function modelInputs(sites: ModelSites, ids: number[][], mask: number[][], positions: number[][], b: number): Record<string, ort.Tensor> {
  const s = ids[0]!.length;
  const f: Record<string, ort.Tensor> = { [sites.inputs.inputIds]: int64(ids.flat(), [b, s]) };
  if (sites.inputs.attentionMask) f[sites.inputs.attentionMask] = int64(mask.flat(), [b, mask[0]!.length]);
  f[sites.inputs.positionIds ?? VariantNames.positionIds] = int64(positions.flat(), [positions.length, s]);
  return f;
}

for (const m of MODELS) {
  test(`${m.name}: one token against the cached prefix gives the whole prompt's last-position numbers`, async (t) => {
    const sites = detectSites(readModel(m.path));
    t.is(lastPositionUnsupported(sites), undefined);
    const built = buildVariant(m.path, { knockout: 'replace_half_min', logits: false, lastPosition: true });
    const cache = built.manifest.cache!;
    t.is(cache.length, sites.layers);
    t.is(cache[0]!.key.input, sites.inputs.past[0]?.key ?? `${VariantNames.pastKeyPrefix}0`, 'a model with a cache keeps its own inputs');
    const s = await session(built.bytes);
    const L = sites.layers;
    const shared = built.manifest.inputs.find((i) => i.name === VariantNames.positionIds)?.shape[0] === 1;
    const prompts = shared ? EQUAL_PROMPTS : PROMPTS;
    const shapes = Object.fromEntries(built.manifest.inputs.map((i) => [i.name, i.shape]));
    const emptyCache = (b: number): Record<string, ort.Tensor> => Object.fromEntries(cache.flatMap((c) => [c.key, c.value].map((slot) => {
      const dims = shapes[slot.input]!.map((d, i) => (i === 0 ? b : i === slot.seqAxis ? 0 : d as number));
      return [slot.input, new ort.Tensor('float32', new Float32Array(0), dims)];
    })));
    // whole prompts, one per run: clean, and with the last position cut off every earlier key at layers 0 and 1
    const cutKeys = (n: number, q: number, width: number, k: Uint8Array, base: number): void => {
      for (const l of [0, 1]) for (let key = 0; key < q; key++) k[base + (l * width + (width === n ? q : 0)) * n + key] = 1;
    };
    const whole: { clean: number; cut: number; out: Record<string, ort.Tensor> }[] = [];
    for (const [i, ids] of prompts.entries()) {
      const n = ids.length;
      const run = async (cut: boolean): Promise<Record<string, ort.Tensor>> => {
        const k = new Uint8Array(L * n * n);
        if (cut) cutKeys(n, n - 1, n, k, 0);
        return s.run({
          ...modelInputs(sites, [ids], [ids.map(() => 1)], [ids.map((_, p) => p)], 1), ...emptyCache(1), [VariantNames.pastRow]: int64([0], [1]),
          [VariantNames.knockout]: bool(k, [1, L, 1, n, n]), [VariantNames.lastIndex]: int64([n - 1], [1]), [VariantNames.target]: int64([TARGETS[i]!], [1]),
        });
      };
      const clean = await run(false);
      const cut = await run(true);
      whole.push({ clean: numbers(clean[VariantNames.targetProb]!)[0]!, cut: numbers(cut[VariantNames.targetProb]!)[0]!, out: clean });
    }
    t.true(Math.abs(whole[0]!.cut - whole[0]!.clean) > 0.05 * whole[0]!.clean, `the knockout changes the whole-prompt number (${whole[0]!.cut} vs ${whole[0]!.clean})`);

    // both rows in one batch: one token each, the past right-padded to the longer prefix
    const P = prompts.map((ids) => ids.length - 1);
    const Pmax = Math.max(...P);
    const b = prompts.length;
    const past: Record<string, ort.Tensor> = {};
    for (const c of cache) {
      for (const slot of [c.key, c.value]) {
        const full = whole.map((w) => w.out[slot.output]!);
        const data = Float32Array.from(full.flatMap((o, r) => [...prefix(o, 0, P[r]!, Pmax, slot.seqAxis)]));
        past[slot.input] = new ort.Tensor('float32', data, cacheDims(full[0]!, b, slot.seqAxis, Pmax));
      }
    }
    // keys: the prefix (its padding masked), then the token itself at index Pmax
    const mask = P.map((p) => Array.from({ length: Pmax + 1 }, (_, k) => (k < p || k === Pmax ? 1 : 0)));
    const decode = async (cut: boolean): Promise<number[]> => {
      const k = new Uint8Array(b * L * (Pmax + 1));
      if (cut) P.forEach((p, r) => cutKeys(Pmax + 1, p, 1, k, r * L * (Pmax + 1)));
      const out = await s.run({
        ...modelInputs(sites, prompts.map((ids) => [ids[ids.length - 1]!]), mask, (shared ? P.slice(0, 1) : P).map((p) => [p]), b), ...past,
        [VariantNames.pastRow]: int64([...Array(b).keys()], [b]),
        [VariantNames.knockout]: bool(k, [b, L, 1, 1, Pmax + 1]), [VariantNames.lastIndex]: int64([0, 0], [b]), [VariantNames.target]: int64(TARGETS, [b]),
      });
      return numbers(out[VariantNames.targetProb]!);
    };
    const clean = await decode(false);
    const cut = await decode(true);
    whole.forEach((w, r) => {
      t.true(Math.abs(clean[r]! - w.clean) <= 1e-5 * Math.max(1e-3, w.clean), `row ${r} clean: ${clean[r]} vs ${w.clean}`);
      t.true(Math.abs(cut[r]! - w.cut) <= 1e-5 * Math.max(1e-3, w.cut), `row ${r} knockout: ${cut[r]} vs ${w.cut}`);
    });
    // two rows of the first prompt (clean, cut) share its one past: fed once, picked by dissect_past_row
    const n0 = P[0]! + 1;
    const own: Record<string, ort.Tensor> = Object.fromEntries(cache.flatMap((c) => [c.key, c.value].map((slot) => {
      const full = whole[0]!.out[slot.output]!;
      return [slot.input, new ort.Tensor('float32', prefix(full, 0, P[0]!, P[0]!, slot.seqAxis), cacheDims(full, 1, slot.seqAxis, P[0]!))];
    })));
    const k = new Uint8Array(2 * L * n0);
    cutKeys(n0, P[0]!, 1, k, L * n0);
    const ids0 = prompts[0]!;
    const shared0 = await s.run({
      ...modelInputs(sites, [[ids0[P[0]!]!], [ids0[P[0]!]!]], [new Array(n0).fill(1), new Array(n0).fill(1)], (shared ? [P[0]!] : [P[0]!, P[0]!]).map((p) => [p]), 2),
      ...own, [VariantNames.pastRow]: int64([0, 0], [2]),
      [VariantNames.knockout]: bool(k, [2, L, 1, 1, n0]), [VariantNames.lastIndex]: int64([0, 0], [2]), [VariantNames.target]: int64([TARGETS[0]!, TARGETS[0]!], [2]),
    });
    const [sharedClean, sharedCut] = numbers(shared0[VariantNames.targetProb]!);
    t.true(Math.abs(sharedClean! - whole[0]!.clean) <= 1e-5 * Math.max(1e-3, whole[0]!.clean), `shared past, clean: ${sharedClean} vs ${whole[0]!.clean}`);
    t.true(Math.abs(sharedCut! - whole[0]!.cut) <= 1e-5 * Math.max(1e-3, whole[0]!.cut), `shared past, knockout: ${sharedCut} vs ${whole[0]!.cut}`);
  });
}

test('a plain Llama export, whose rotary table is cut to the sequence length, says why it runs every row in full', (t) => {
  const sites = detectSites(readModel(fixturePath('llama-opset14.onnx')));
  t.is(sites.rotaryPositions, undefined);
  t.regex(lastPositionUnsupported(sites) ?? '', /^the llama graph derives its rotary angles from the sequence length \(no position_ids input, no plain table lookup\)/);
  t.is(detectSites(readModel(join(REPO, 'generated', 'tiny-gptj', 'model.onnx'))).rotaryPositions, '/Unsqueeze_output_0', 'GPT-J looks positions up in a table');
});
