import test from 'ava';
import type ort from 'onnxruntime-node';
import { buildVariant } from '../../src/onnx/compile.js';
import { knockoutValue } from '../../src/onnx/passes/knockout.js';
import { decodeModel, DataType } from '../../src/onnx/proto.js';
import { tensorValues } from '../../src/onnx/tensor.js';
import { bool, fixture, fixturePath, int64, modelFeeds, numbers, session, type Row } from './helpers.js';

const L = 2;
const H = 4;

interface Run {
  probs: number[][]; // per layer, [H, n, n] flattened
  logits: number[];
  reduced: number[];
}

async function harness(name: string, seqIndex = 1) {
  const seq = fixture(name).sequences[seqIndex]!;
  const rows: Row[] = [{ ids: seq.input_ids, mask: seq.attention_mask }];
  const n = seq.input_ids.length;
  const { bytes } = buildVariant(fixturePath(name), { knockout: 'replace_half_min', logits: true, attentionProbs: true });
  const s = await session(bytes);
  const run = async (mask: Uint8Array, heads: number): Promise<Run> => {
    const out: Record<string, ort.Tensor> = await s.run({
      ...modelFeeds(name, rows),
      dissect_knockout: bool(mask, [1, L, heads, n, n]),
      dissect_last_index: int64([seq.attention_mask.lastIndexOf(1)], [1]),
      dissect_target: int64([0], [1]),
    });
    return {
      probs: Array.from({ length: L }, (_, l) => numbers(out[`dissect_attn_probs_${l}`]!)),
      logits: numbers(out.logits!),
      reduced: ['dissect_target_prob', 'dissect_target_rank', 'dissect_top1', 'dissect_top1_prob'].flatMap((k) => numbers(out[k]!)),
    };
  };
  const mask = (heads: number) => {
    const m = new Uint8Array(L * heads * n * n);
    const set = (layer: number, head: number, q: number, k: number) => { m[((layer * heads + head) * n + q) * n + k] = 1; };
    return { m, set };
  };
  const row = (r: Run, layer: number, head: number, q: number): number[] => r.probs[layer]!.slice((head * n + q) * n, (head * n + q + 1) * n);
  return { n, run, mask, row };
}

const close = (a: number, b: number, tol: number) => Math.abs(a - b) <= tol;

for (const name of ['gpt2-opset14.onnx', 'gpt2-optimum.onnx', 'gpt2-fp16.onnx']) {
  const fp16 = name.includes('fp16');
  const tol = fp16 ? 1e-3 : 1e-6;

  test.serial(`${name}: blocked weights are exactly 0 and rows still sum to 1`, async (t) => {
    const { n, run, mask, row } = await harness(name);
    const base = await run(mask(1).m, 1);
    const { m, set } = mask(1);
    set(0, 0, 6, 1); set(0, 0, 6, 2); set(1, 0, 4, 0);
    const r = await run(m, 1);
    for (let h = 0; h < H; h++) {
      const p = row(r, 0, h, 6);
      t.is(p[1], 0); t.is(p[2], 0);
      t.true(p.every((x) => x >= 0));
      t.true(close(p.reduce((a, b) => a + b, 0), 1, tol), `layer 0 head ${h} row 6 sums to 1`);
      t.true(p[0]! > 0 && p[3]! > 0, 'open keys keep weight');
      for (let q = 0; q < n; q++) if (q !== 6) t.deepEqual(row(r, 0, h, q), row(base, 0, h, q), `layer 0 row ${q} untouched`);
      t.is(row(r, 1, h, 4)[0], 0);
    }
    t.notDeepEqual(r.logits, base.logits);
  });

  test.serial(`${name}: a fully blocked row is uniform over its causal prefix`, async (t) => {
    const { n, run, mask, row } = await harness(name);
    const { m, set } = mask(1);
    for (const q of [2, 3]) for (let k = 0; k <= q; k++) set(0, 0, q, k);
    const r = await run(m, 1);
    for (let h = 0; h < H; h++) {
      for (const q of [2, 3]) {
        const p = row(r, 0, h, q);
        for (let k = 0; k < n; k++) t.true(close(p[k]!, k <= q ? 1 / (q + 1) : 0, tol), `head ${h} row ${q} key ${k}: ${p[k]}`);
      }
    }
  });

  test.serial(`${name}: blocking everything gives uniform rows and no NaN; future keys are ignored`, async (t) => {
    const { n, run, mask, row } = await harness(name);
    const base = await run(mask(1).m, 1);
    const all = await run(new Uint8Array(L * n * n).fill(1), 1);
    for (let l = 0; l < L; l++) {
      for (let h = 0; h < H; h++) {
        for (let q = 0; q < n; q++) {
          const p = row(all, l, h, q);
          t.true(p.every((x, k) => close(x, k <= q ? 1 / (q + 1) : 0, tol)), `layer ${l} head ${h} row ${q}: ${p.join(' ')}`);
        }
      }
    }
    t.true([...all.logits, ...all.reduced, ...all.probs.flat()].every(Number.isFinite), 'no NaN or infinity');
    // keys after the query are already invisible: blocking them changes nothing
    const { m, set } = mask(1);
    for (let l = 0; l < L; l++) for (let q = 0; q < n; q++) for (let k = q + 1; k < n; k++) set(l, 0, q, k);
    const future = await run(m, 1);
    t.deepEqual(future.logits, base.logits);
    t.deepEqual(future.probs, base.probs);
  });

  test.serial(`${name}: per-head knockout changes only the listed heads`, async (t) => {
    const { n, run, mask, row } = await harness(name);
    const base = await run(mask(H).m, H);
    const { m, set } = mask(H);
    for (let k = 0; k < 6; k++) set(0, 2, 6, k);
    const r = await run(m, H);
    for (let h = 0; h < H; h++) {
      for (let q = 0; q < n; q++) {
        if (h === 2 && q === 6) continue;
        t.deepEqual(row(r, 0, h, q), row(base, 0, h, q), `layer 0 head ${h} row ${q} unchanged`);
      }
    }
    t.deepEqual(row(r, 0, 2, 6), [0, 0, 0, 0, 0, 0, 1]);
    // the same edges in all heads (dim 2 = 1) block every head
    const one = mask(1);
    for (let k = 0; k < 6; k++) one.set(0, 0, 6, k);
    const r1 = await run(one.m, 1);
    for (let h = 0; h < H; h++) t.deepEqual(row(r1, 0, h, 6), [0, 0, 0, 0, 0, 0, 1]);
  });
}

test.serial('a padded row stays finite under full knockout', async (t) => {
  for (const name of ['gpt2-opset14.onnx', 'gpt2-fp16.onnx']) {
    const { n, run } = await harness(name, 2);
    const all = await run(new Uint8Array(L * n * n).fill(1), 1);
    t.true([...all.logits, ...all.reduced, ...all.probs.flat()].every(Number.isFinite), name);
  }
});

test('the replacement value is half the lowest finite value of the scores dtype', (t) => {
  t.is(knockoutValue('replace_half_min', DataType.FLOAT), -1.7014117331926443e38);
  t.is(knockoutValue('replace_half_min', DataType.FLOAT16), -32752);
  for (const [name, expected] of [['gpt2-opset14.onnx', -1.7014117331926443e38], ['gpt2-fp16.onnx', -32752]] as const) {
    const m = decodeModel(buildVariant(fixturePath(name), { knockout: 'replace_half_min', logits: false }).bytes);
    const b = m.graph!.initializer!.filter((i) => i.name?.endsWith('/replacement'));
    t.is(b.length, L);
    for (const init of b) {
      t.is(init.dataType, name.includes('fp16') ? DataType.FLOAT16 : DataType.FLOAT);
      t.deepEqual(tensorValues(init), [expected]);
    }
    // replaced, not added: each Softmax reads a Where
    const softmaxes = m.graph!.node!.filter((n) => n.opType === 'Softmax' && !n.name?.startsWith('dissect/'));
    for (const s of softmaxes) t.is(m.graph!.node!.find((n) => n.output?.includes(s.input![0]!))?.opType, 'Where');
  }
});
