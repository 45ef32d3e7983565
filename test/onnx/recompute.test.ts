// Site `recomputed`: block l's attention update at the last position rebuilt from the row's
// attention probabilities with keys removed (renormalise / paper_resoftmax), projected like
// the other sites. Checked against a plain-JS recomputation from tapped P and V, on every
// test model, with right padding, alongside a knockout, and with the input empty.

import test from 'ava';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type ort from 'onnxruntime-node';
import type { ProjectionRequest, RecomputeMode } from '../../src/onnx/variant.js';
import { REPO, bool, int64, numbers } from './helpers.js';
import { ModelRef, at, checkRow, harness, testModels, topK, vecMat, vecMatT } from './reference.js';

const A = [0, 9, 9, 33, 12, 1, 63];
const B = [5, 17, 42, 3, 60, 0, 0]; // 5 real tokens, right-padded
const n = A.length;
const LAST = [6, 4];
const GPTJ = join(REPO, 'generated', 'tiny-gptj', 'model.onnx');
/** The compiler's test models and, once generated, the GPT-J twin (parallel blocks, no output-projection bias). */
const models = [...testModels(), ...(existsSync(GPTJ) ? [{ name: 'tiny-gptj', path: GPTJ }] : [])];
const MASKS = [[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0]];

/** P' of one head's row over the real keys 0..last (JS, float64). */
function rebuilt(p: readonly number[], removed: ReadonlySet<number>, mode: RecomputeMode): number[] {
  const keep = p.map((_, k) => !removed.has(k));
  if (!keep.some(Boolean)) return p.map(() => 0);
  if (mode === 'renormalise') {
    const sum = p.reduce((s, x, k) => s + (keep[k] ? x : 0), 0);
    return p.map((x, k) => (keep[k] && sum > 0 ? x / sum : 0));
  }
  const z = p.map((x, k) => (keep[k] ? x : -1e6));
  const m = Math.max(...z);
  const e = z.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

for (const { name, path } of models) {
  const ref = new ModelRef(path);
  const s = ref.sites;
  const { layers: L, dModel: d, heads: H, dHead: dh, vocab: V } = s;
  const rel = ref.fp16 ? 2e-2 : 1e-4;
  const E = ref.matrix(s.embedding.weight);
  const blocks = Array.from({ length: L }, (_, l) => l);
  const targets = [3, 11];
  const removes = [[1, 3, 6], [0, 4]]; // row 1 removes its own last key
  const k = 6;

  function removeTensor(sets: readonly (readonly number[])[]): ort.Tensor {
    const data = new Uint8Array(2 * n);
    sets.forEach((set, b) => { for (const p of set) data[b * n + p] = 1; });
    return bool(data, [2, n]);
  }

  /** The recomputed update of (row, layer) in JS from the run's tapped probabilities and values. */
  function reference(out: Record<string, ort.Tensor>, b: number, l: number, removed: ReadonlySet<number>, mode: RecomputeMode): number[] {
    const Lx = s.perLayer[l]!;
    const probs = numbers(out[Lx.probs]!);
    const values = numbers(out[Lx.v]!);
    const kv = out[Lx.probs]!.dims[3]!;
    const last = LAST[b]!;
    const merged = new Array<number>(d).fill(0);
    for (let h = 0; h < H; h++) {
      const row = Array.from({ length: last + 1 }, (_, key) => probs[at([2, H, n, kv], b, h, last, key)]!);
      const w = rebuilt(row, removed, mode);
      for (let key = 0; key <= last; key++) {
        for (let i = 0; i < dh; i++) merged[h * dh + i]! += w[key]! * values[at([2, H, kv, dh], b, h, key, i)]!;
      }
    }
    return vecMat(merged, ref.linearIo(Lx.attnProj), Lx.attnProj.bias ? ref.vector(Lx.attnProj.bias) : undefined);
  }

  for (const mode of ['renormalise', 'paper_resoftmax'] as const) {
    test.serial(`${name}: the recomputed attention update (${mode}) matches a JS recomputation, with right padding and a knockout`, async (t) => {
      const pr: ProjectionRequest = { site: 'recomputed', layers: blocks, via: 'embedding', k, vocabLimit: V, recompute: mode };
      const h = await harness(path, { knockout: 'replace_half_min', logits: false, projections: [pr] }, () => s.perLayer.flatMap((Lx) => [Lx.probs, Lx.v]));
      t.true(h.manifest.inputs.some((i) => i.name === 'dissect_recompute_remove'));
      t.false(h.manifest.inputs.some((i) => i.name === 'dissect_proj_positions'), 'no positions input when only the recomputed site is projected');
      t.regex(h.manifest.choices['recompute'] ?? '', new RegExp(`^${mode}:`));
      // knockout in row 0 at layer 1: the recomputation reads the row's own (knocked-out) probabilities
      const ko = new Uint8Array(2 * L * n * n);
      if (L > 1) ko[(0 * L + 1) * n * n + LAST[0]! * n + 2] = 1;
      const extra: Record<string, ort.Tensor> = {
        dissect_recompute_remove: removeTensor(removes),
        dissect_last_index: int64(LAST, [2]),
        dissect_target: int64(targets, [2]),
        dissect_knockout: bool(ko, [2, L, 1, n, n]),
        ...(s.inputs.attentionMask ? { [s.inputs.attentionMask]: int64(MASKS.flat(), [2, n]) } : {}),
      };
      const out = await h.run([A, B], extra);
      const dims = [2, L, 1];
      t.deepEqual(out.dissect_proj_recomputed_ids!.dims, [...dims, k]);
      t.deepEqual(out.dissect_proj_recomputed_scores!.dims, [...dims, k]);
      t.deepEqual(out.dissect_proj_recomputed_target_rank!.dims, dims);
      const I = numbers(out.dissect_proj_recomputed_ids!);
      const S = numbers(out.dissect_proj_recomputed_scores!);
      const R = numbers(out.dissect_proj_recomputed_target_rank!);
      for (let b = 0; b < 2; b++) {
        for (const l of blocks) {
          const x = reference(out, b, l, new Set(removes[b]), mode);
          const r = topK(vecMatT(x, E), k, targets[b]!, V);
          const o = at(dims, b, l, 0);
          checkRow(t, { ids: I.slice(o * k, (o + 1) * k), scores: S.slice(o * k, (o + 1) * k), rank: R[o]! }, r, targets[b]!, rel,
            `${mode} row ${b} layer ${l}`);
        }
      }
    });
  }

  test.serial(`${name}: without every key, the recomputed update is the output projection's bias (both modes)`, async (t) => {
    for (const mode of ['renormalise', 'paper_resoftmax'] as const) {
      const h = await harness(path, { knockout: false, logits: false, projections: [{ site: 'recomputed', layers: blocks, via: 'embedding', k, vocabLimit: V, recompute: mode }] });
      const all = [[0, 1, 2, 3, 4, 5, 6], [0, 1, 2, 3, 4]];
      const out = await h.run([A, B], {
        dissect_recompute_remove: removeTensor(all), dissect_last_index: int64(LAST, [2]), dissect_target: int64(targets, [2]),
        ...(s.inputs.attentionMask ? { [s.inputs.attentionMask]: int64(MASKS.flat(), [2, n]) } : {}),
      });
      const I = numbers(out.dissect_proj_recomputed_ids!);
      for (const l of blocks) {
        const bias = s.perLayer[l]!.attnProj.bias;
        const scores = bias ? vecMatT(ref.vector(bias), E) : new Array<number>(V).fill(0);
        const r = topK(scores, k, 0, V);
        for (let b = 0; b < 2; b++) {
          const got = I[at([2, L, 1, k], b, l, 0, 0)];
          // a near-tie for the top may swap in fp16
          const gap = Math.abs(scores[got!]! - scores[r.ids[0]!]!);
          t.true(got === r.ids[0] || gap <= rel * Math.max(...scores.map(Math.abs)), `${mode} layer ${l} row ${b}: top-1 ${got} vs the bias's ${r.ids[0]}`);
        }
      }
    }
  });
}

test.serial('a [batch, 0] remove input makes the recomputed projection empty and changes nothing else', async (t) => {
  for (const { name, path } of models) {
    const s = new ModelRef(path).sites;
    const blocks = Array.from({ length: s.layers }, (_, l) => l);
    const h = await harness(path, {
      knockout: false, logits: false, hiddenStates: true,
      projections: [
        { site: 'attention', layers: blocks, via: 'embedding', k: 3, vocabLimit: s.vocab },
        { site: 'recomputed', layers: blocks, via: 'embedding', k: 3, vocabLimit: s.vocab, recompute: 'paper_resoftmax' },
      ],
    });
    const base = { dissect_proj_positions: int64([6, 6], [2, 1]) };
    const some = await h.run([A, A], { ...base, dissect_recompute_remove: bool(new Uint8Array(2 * n), [2, n]) });
    const none = await h.run([A, A], { ...base, dissect_recompute_remove: bool(new Uint8Array(0), [2, 0]) });
    t.deepEqual(none.dissect_proj_recomputed_ids!.dims, [2, s.layers, 0, 3], name);
    t.deepEqual(none.dissect_proj_recomputed_target_rank!.dims, [2, s.layers, 0]);
    t.deepEqual(some.dissect_proj_recomputed_ids!.dims, [2, s.layers, 1, 3]);
    for (const key of ['dissect_target_prob', 'dissect_top1', 'dissect_hidden_states', 'dissect_proj_attention_ids']) {
      t.deepEqual(numbers(none[key]!), numbers(some[key]!), `${name}: ${key}`);
    }
  }
});
