import test from 'ava';
import ort from 'onnxruntime-node';
import { toHalfBits } from '../../src/onnx/tensor.js';
import { bool, int64, maxAbs, maxAbsDiff, numbers, session } from './helpers.js';
import { ModelRef, at, feedsFor, harness, sameDtype, testModels } from './reference.js';

const A = [0, 9, 9, 33, 12, 1, 63];
const B = [5, 17, 42, 3, 60, 2, 8];
const n = A.length;

function mask(b: number, rows: readonly (readonly number[])[]): ort.Tensor {
  const m = new Uint8Array(b * n);
  rows.forEach((positions, r) => { for (const p of positions) m[r * n + p] = 1; });
  return bool(m, [b, n]);
}

for (const { name, path } of testModels()) {
  const ref = new ModelRef(path);
  const { layers: L, dModel: d, vocab: V } = ref.sites;
  const hsDims = (b: number): number[] => [b, L + 1, n, d];
  /** hidden_states[:, l] of row `row` of a run as a [1, n, d] tensor of the model dtype (exact bits). */
  const stateOf = (hs: ort.Tensor, row: number, l: number): ort.Tensor => sameDtype(hs, [1, n, d], at(hs.dims, row, l));
  const request = { knockout: false, logits: true, patch: true, hiddenStates: true } as const;
  // onnxruntime's CPU provider runs most fp16 ops in fp32 (inserted Casts) and keeps the
  // residual stream in fp32 between them, so an fp16 hidden-states output is a rounded copy:
  // feeding it back matches only to fp16 rounding. fp32 graphs must match bit for bit.
  const same = (t: { deepEqual(a: unknown, b: unknown, m?: string): void; true(c: boolean, m?: string): void },
    a: readonly number[], b: readonly number[], msg?: string): void => {
    if (!ref.fp16) return t.deepEqual(a, b, msg);
    const diff = maxAbsDiff(a, b);
    t.true(diff <= 5e-3 * Math.max(maxAbs(b), 1), `${msg ?? ''} (fp16: ${diff})`);
  };

  test.serial(`${name}: patching a block input with its own value changes nothing (exact in fp32)`, async (t) => {
    const h = await harness(path, request);
    const clean = await h.run([A]);
    for (let l = 0; l < L; l++) {
      for (const positions of [[3], [0, 1, 2, 3, 4, 5, 6]]) {
        const out = await h.run([A], {
          dissect_patch_layer: int64([l], [1]),
          dissect_patch_mask: mask(1, [positions]),
          dissect_patch_values: stateOf(clean.dissect_hidden_states!, 0, l),
        });
        same(t, numbers(out[ref.sites.logits]!), numbers(clean[ref.sites.logits]!), `layer ${l} positions ${positions.join(',')}`);
        same(t, numbers(out.dissect_hidden_states!), numbers(clean.dissect_hidden_states!));
        same(t, numbers(out.dissect_target_prob!), numbers(clean.dissect_target_prob!));
      }
    }
  });

  test.serial(`${name}: patching layer 0 everywhere with another prompt's embeddings gives that prompt's run`, async (t) => {
    const original = await session(path);
    const h = await harness(path, request);
    const cleanB = await h.run([B]);
    const logitsB = numbers((await original.run(feedsFor(ref.sites, [B])))[ref.sites.logits]!);
    const all = Array.from({ length: n }, (_, i) => i);
    for (let l = 0; l < L; l++) {
      const out = await h.run([A], {
        dissect_patch_layer: int64([l], [1]), dissect_patch_mask: mask(1, [all]), dissect_patch_values: stateOf(cleanB.dissect_hidden_states!, 0, l),
      });
      const got = numbers(out[ref.sites.logits]!);
      const diff = maxAbsDiff(got, logitsB);
      t.true(diff <= (ref.fp16 ? 5e-3 : 1e-6) * maxAbs(logitsB), `layer ${l}: logits vs prompt B's (${diff})`);
      same(t, got, numbers(cleanB[ref.sites.logits]!), `layer ${l}: same graph, same numbers as B's own run`);
      // hidden states from l on are B's; below l they are A's
      const hs = numbers(out.dissect_hidden_states!);
      const hsB = numbers(cleanB.dissect_hidden_states!);
      same(t, hs.slice(at(hsDims(1), 0, l)), hsB.slice(at(hsDims(1), 0, l)));
      if (l > 0) t.notDeepEqual(hs.slice(0, at(hsDims(1), 0, l)), hsB.slice(0, at(hsDims(1), 0, l)));
    }
  });

  test.serial(`${name}: a patched prefix makes the prefix's downstream states equal the other prompt's (causality)`, async (t) => {
    const h = await harness(path, request);
    const clean = await h.run([A, B]);
    const hsClean = numbers(clean.dissect_hidden_states!);
    const logitsClean = numbers(clean[ref.sites.logits]!);
    for (let l = 0; l < L; l++) {
      const p = 3;
      const prefix = Array.from({ length: p + 1 }, (_, i) => i);
      // row 0: A with positions 0..p of block l's input taken from B; row 1: B, patch layer −1 (untouched)
      const values = hsClean;
      const patchValues = new Array<number>(2 * n * d).fill(0);
      for (let q = 0; q < n; q++) for (let i = 0; i < d; i++) patchValues[q * d + i] = values[at(hsDims(2), 1, l, q) + i]!;
      const out = await h.run([A, B], {
        dissect_patch_layer: int64([l, -1], [2]),
        dissect_patch_mask: mask(2, [prefix, prefix]),
        dissect_patch_values: floatTensor(patchValues, [2, n, d], ref.fp16), // exact: the values are of the model dtype
      });
      const hs = numbers(out.dissect_hidden_states!);
      const logits = numbers(out[ref.sites.logits]!);
      for (let j = 0; j <= L; j++) {
        for (let q = 0; q < n; q++) {
          const got = hs.slice(at(hsDims(2), 0, j, q), at(hsDims(2), 0, j, q) + d);
          const fromA = hsClean.slice(at(hsDims(2), 0, j, q), at(hsDims(2), 0, j, q) + d);
          const fromB = hsClean.slice(at(hsDims(2), 1, j, q), at(hsDims(2), 1, j, q) + d);
          if (j < l) t.deepEqual(got, fromA, `hidden_states[${j}][${q}]: below the patch, A's`);
          else if (q <= p) same(t, got, fromB, `hidden_states[${j}][${q}]: patched prefix, B's`);
          else if (j === l) t.deepEqual(got, fromA, `hidden_states[${j}][${q}]: unpatched position of the patched input, A's`);
          else t.notDeepEqual(got, fromB);
        }
      }
      for (let q = 0; q <= p; q++) {
        same(t, logits.slice(q * V, (q + 1) * V), logitsClean.slice((n + q) * V, (n + q + 1) * V), `logits at ${q} are B's`);
      }
      t.deepEqual(hs.slice(at(hsDims(2), 1)), hsClean.slice(at(hsDims(2), 1)), 'row 1 (patch layer −1) is untouched');
      t.deepEqual(logits.slice(n * V), logitsClean.slice(n * V));
    }
  });

  test.serial(`${name}: a patch reads the mask and the row's own layer only`, async (t) => {
    const h = await harness(path, request);
    const clean = await h.run([A, A]);
    const junk = new Array<number>(2 * n * d).fill(0).map((_, i) => Math.sin(i));
    // row 0: layer 0 with an empty mask; row 1: mask everywhere but layer −1
    const out = await h.run([A, A], {
      dissect_patch_layer: int64([0, -1], [2]),
      dissect_patch_mask: mask(2, [[], [0, 1, 2, 3, 4, 5, 6]]),
      dissect_patch_values: floatTensor(junk, [2, n, d], ref.fp16),
    });
    t.deepEqual(numbers(out.dissect_hidden_states!), numbers(clean.dissect_hidden_states!));
    // the patched block input appears as hidden_states[l]
    const l = L - 1;
    const out2 = await h.run([A, A], {
      dissect_patch_layer: int64([l, l], [2]), dissect_patch_mask: mask(2, [[2], [5]]),
      dissect_patch_values: floatTensor(junk, [2, n, d], ref.fp16),
    });
    const hs = numbers(out2.dissect_hidden_states!);
    const jv = numbers(floatTensor(junk, [2, n, d], ref.fp16));
    t.deepEqual(hs.slice(at(hsDims(2), 0, l, 2), at(hsDims(2), 0, l, 2) + d), jv.slice(2 * d, 3 * d));
    t.deepEqual(hs.slice(at(hsDims(2), 1, l, 5), at(hsDims(2), 1, l, 5) + d), jv.slice((n + 5) * d, (n + 6) * d));
  });
}


function floatTensor(values: readonly number[], dims: readonly number[], fp16 = false): ort.Tensor {
  return fp16
    ? new ort.Tensor('float16', Uint16Array.from(values, toHalfBits), dims)
    : new ort.Tensor('float32', Float32Array.from(values), dims);
}

