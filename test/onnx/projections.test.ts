import test, { type ExecutionContext } from 'ava';
import type ort from 'onnxruntime-node';
import { OWN_TOP1_TARGET, type ProjectionRequest, type VariantRequest } from '../../src/onnx/variant.js';
import { argmax, int64, maxAbs, maxAbsDiff, numbers } from './helpers.js';
import {
  ModelRef, at, checkRow, gateTensor, harness, layerNorm, testModels, topK, vecMat, vecMatT, type Matrix,
} from './reference.js';

const A = [0, 9, 9, 33, 12, 1, 63];
const B = [5, 17, 42, 3, 60, 2, 8];
const n = A.length;
const POSITIONS = [[6, 1, 3], [0, 3, 3]];
const P = POSITIONS[0]!.length;

for (const { name, path } of testModels()) {
  const ref = new ModelRef(path);
  const s = ref.sites;
  const { layers: L, dModel: d, heads: H, dHead: dh, vocab: V } = s;
  const rel = ref.fp16 ? 2e-2 : 1e-4;
  const E = ref.matrix(s.embedding.weight);
  const fnorm = ref.norm(s.finalNorm.input);
  const u = s.unembedding;
  const U = ref.linearIo({ weight: u.weight, op: u.op, layout: u.layout === 'Vd' ? 'oi' : 'io' });
  const uBias = u.bias ? ref.vector(u.bias) : undefined;
  const project = (x: number[], via: ProjectionRequest['via']): number[] =>
    via === 'embedding' ? vecMatT(x, E) : vecMat(layerNorm(x, fnorm), U, uBias);
  const blocks = Array.from({ length: L }, (_, l) => l);
  const targets = [3, 11];

  /** x of a site at (row, layer, [head,] position index) from the run's hidden states and taps. */
  function siteVector(out: Record<string, ort.Tensor>, site: ProjectionRequest['site'], row: number, l: number, pos: number, head = 0): number[] {
    const slice = (xs: number[], o: number) => xs.slice(o, o + d);
    if (site === 'hidden') return slice(numbers(out.dissect_hidden_states!), at([2, L + 1, n, d], row, l, pos));
    const Lx = s.perLayer[l]!;
    if (site === 'attention') return slice(numbers(out[Lx.attnOut]!), at([2, n, d], row, pos));
    if (site === 'mlp') return slice(numbers(out[Lx.mlpOut]!), at([2, n, d], row, pos));
    // heads, independently: the head's slice of the merged context · its rows of W_O
    const ctx = numbers(out[Lx.contextMerged]!).slice(at([2, n, d], row, pos) + head * dh, at([2, n, d], row, pos) + (head + 1) * dh);
    const wo: Matrix = ref.linearIo(Lx.attnProj);
    return vecMat(ctx, { rows: dh, cols: d, data: wo.data.slice(head * dh * d, (head + 1) * dh * d) });
  }

  async function compare(t: ExecutionContext, projections: ProjectionRequest[], extra: Partial<VariantRequest> = {}): Promise<Record<string, ort.Tensor>> {
    const h = await harness(path, { knockout: false, logits: true, hiddenStates: true, projections, ...extra },
      () => s.perLayer.flatMap((Lx) => [Lx.attnOut, Lx.mlpOut, Lx.contextMerged]));
    const out = await h.run([A, B], { dissect_proj_positions: int64(POSITIONS.flat(), [2, P]), dissect_target: int64(targets, [2]) });
    for (const pr of projections) {
      const ids = out[`dissect_proj_${pr.site}_ids`]!;
      const scores = out[`dissect_proj_${pr.site}_scores`]!;
      const ranks = out[`dissect_proj_${pr.site}_target_rank`]!;
      const norms = out[`dissect_proj_${pr.site}_norm`]!;
      const heads = pr.site === 'heads' ? H : 1;
      const dims = [2, pr.layers.length, ...(pr.site === 'heads' ? [H] : []), P];
      t.deepEqual(ids.dims, [...dims, pr.k]);
      t.deepEqual(scores.dims, [...dims, pr.k]);
      t.deepEqual(ranks.dims, dims);
      t.deepEqual(norms.dims, dims);
      t.is(norms.type, 'float32');
      t.is(ids.type, 'int64');
      t.is(scores.type, 'float32');
      t.is(ranks.type, 'int64');
      const I = numbers(ids);
      const S = numbers(scores);
      const R = numbers(ranks);
      const N = numbers(norms);
      for (let b = 0; b < 2; b++) {
        pr.layers.forEach((l, li) => {
          for (let hd = 0; hd < heads; hd++) {
            for (let pi = 0; pi < P; pi++) {
              const idx = pr.site === 'heads' ? [b, li, hd, pi] : [b, li, pi];
              const o = at(dims, ...idx);
              const x = siteVector(out, pr.site, b, l, POSITIONS[b]![pi]!, hd);
              const r = topK(project(x, pr.via), pr.k, targets[b]!, pr.vocabLimit);
              const got = { ids: I.slice(o * pr.k, (o + 1) * pr.k), scores: S.slice(o * pr.k, (o + 1) * pr.k), rank: R[o]! };
              checkRow(t, got, r, targets[b]!, rel, `${pr.site} ${pr.via} row ${b} layer ${l}${pr.site === 'heads' ? ` head ${hd}` : ''} position ${POSITIONS[b]![pi]}`);
              t.true(got.ids.every((id) => id < pr.vocabLimit));
              const norm = Math.hypot(...x);
              t.true(Math.abs(N[o]! - norm) <= rel * norm, `${pr.site} row ${b} layer ${l} head ${hd} position ${POSITIONS[b]![pi]}: norm ${N[o]} vs ${norm}`);
            }
          }
        });
      }
    }
    return out;
  }

  test.serial(`${name}: projections of every site match a JS reference (embedding / final norm + LM head)`, async (t) => {
    const k = 8;
    const all: ProjectionRequest[] = [
      { site: 'hidden', layers: [...blocks, L], via: 'embedding', k, vocabLimit: V },
      { site: 'attention', layers: blocks, via: 'final_norm_unembedding', k, vocabLimit: V },
      { site: 'mlp', layers: blocks, via: 'embedding', k: 5, vocabLimit: V },
      { site: 'heads', layers: blocks, via: 'embedding', k: 6, vocabLimit: V },
    ];
    await compare(t, all);
    const flipped = all.map((p) => ({ ...p, via: p.via === 'embedding' ? 'final_norm_unembedding' as const : 'embedding' as const }));
    const out = await compare(t, flipped);
    // hidden_states[L] through the final norm and LM head is the model's own next-token distribution
    const logits = numbers(out[s.logits]!);
    const top = numbers(out.dissect_proj_hidden_ids!);
    const dims = [2, L + 1, P, k];
    for (let b = 0; b < 2; b++) {
      for (let pi = 0; pi < P; pi++) {
        const row = logits.slice((b * n + POSITIONS[b]![pi]!) * V, (b * n + POSITIONS[b]![pi]! + 1) * V);
        t.is(top[at(dims, b, L, pi)], argmax(row), `row ${b} position ${POSITIONS[b]![pi]}: top-1 of hidden_states[L] = the model's argmax`);
      }
    }
  });

  test.serial(`${name}: heads' shares plus the output bias sum to the attention update (and follow the attention gate)`, async (t) => {
    for (const gated of [false, true]) {
      const h = await harness(path, {
        knockout: false, logits: false, projections: [{ site: 'heads', layers: blocks, via: 'embedding', k: 3, vocabLimit: V }],
        ...(gated ? { gates: { attention: 'zero_update' as const } } : {}),
      }, () => s.perLayer.flatMap((Lx) => [Lx.attnOut, `dissect/proj/heads/layer${Lx.layer}/${gated ? 'gated_shares' : 'shares'}`]));
      const gate = gateTensor(2, L, n, [[0, 0, 6, 0.25], [1, L - 1, 3, 0], [0, L - 1, 1, 0.5]]);
      const g = gate.data as Float32Array;
      const out = await h.run([A, B], { dissect_proj_positions: int64(POSITIONS.flat(), [2, P]), ...(gated ? { dissect_gate_attention: gate } : {}) });
      for (const Lx of s.perLayer) {
        const shares = numbers(out[`dissect/proj/heads/layer${Lx.layer}/${gated ? 'gated_shares' : 'shares'}`]!);
        const attn = numbers(out[Lx.attnOut]!);
        const bias = Array.from(ref.vector(Lx.attnProj.bias!));
        t.deepEqual(out[`dissect/proj/heads/layer${Lx.layer}/${gated ? 'gated_shares' : 'shares'}`]!.dims, [2, H, P, d]);
        for (let b = 0; b < 2; b++) {
          for (let pi = 0; pi < P; pi++) {
            const pos = POSITIONS[b]![pi]!;
            const factor = gated ? g[(b * L + Lx.layer) * n + pos]! : 1;
            const sum = new Array<number>(d).fill(0);
            for (let hd = 0; hd < H; hd++) for (let i = 0; i < d; i++) sum[i]! += shares[at([2, H, P, d], b, hd, pi) + i]!;
            const update = attn.slice(at([2, n, d], b, pos), at([2, n, d], b, pos) + d);
            const expected = update.map((a, i) => factor * (a - bias[i]!));
            const diff = maxAbsDiff(sum, expected);
            t.true(diff <= (ref.fp16 ? 1e-2 : 1e-5) * Math.max(maxAbs(update), 1e-3),
              `gated=${gated} layer ${Lx.layer} row ${b} position ${pos}: Σ shares vs gate·(update − bias): ${diff}`);
          }
        }
      }
    }
  });

  test.serial(`${name}: vocabLimit excludes the ids above it, and a target there ranks below every allowed id`, async (t) => {
    const limit = Math.min(40, V - 1);
    await compare(t, [
      { site: 'hidden', layers: [0, L], via: 'embedding', k: 8, vocabLimit: limit },
      { site: 'mlp', layers: [L - 1], via: 'final_norm_unembedding', k: limit, vocabLimit: limit },
    ]);
    const h = await harness(path, { knockout: false, logits: false, projections: [{ site: 'hidden', layers: [L], via: 'final_norm_unembedding', k: 4, vocabLimit: limit }] });
    const out = await h.run([A, B], { dissect_proj_positions: int64(POSITIONS.flat(), [2, P]), dissect_target: int64([V - 1, 0], [2]) });
    const ranks = numbers(out.dissect_proj_hidden_target_rank!);
    t.deepEqual(ranks.slice(0, P), new Array(P).fill(limit), 'a target ≥ vocabLimit scores −∞: every allowed id is above it');
    t.true(ranks.slice(P).every((r) => r < limit));
  });
}

test.serial('no positions ([batch, 0]) gives empty projections and leaves everything else unchanged', async (t) => {
  for (const { name, path } of testModels()) {
    const s = new ModelRef(path).sites;
    const blocks = Array.from({ length: s.layers }, (_, l) => l);
    const h = await harness(path, {
      knockout: 'replace_half_min', logits: false, hiddenStates: true, gates: { attention: 'zero_update' },
      projections: [
        { site: 'hidden', layers: [0, s.layers], via: 'embedding', k: 4, vocabLimit: 50 },
        { site: 'heads', layers: blocks, via: 'final_norm_unembedding', k: 3, vocabLimit: s.vocab },
      ],
    });
    const some = await h.run([A, B], { dissect_proj_positions: int64(POSITIONS.flat(), [2, P]) });
    const none = await h.run([A, B], { dissect_proj_positions: int64([], [2, 0]) });
    t.deepEqual(none.dissect_proj_hidden_ids!.dims, [2, 2, 0, 4], name);
    t.deepEqual(none.dissect_proj_hidden_scores!.dims, [2, 2, 0, 4]);
    t.deepEqual(none.dissect_proj_hidden_target_rank!.dims, [2, 2, 0]);
    t.deepEqual(none.dissect_proj_heads_ids!.dims, [2, s.layers, s.heads, 0, 3]);
    t.deepEqual(none.dissect_proj_heads_target_rank!.dims, [2, s.layers, s.heads, 0]);
    for (const k of ['dissect_target_prob', 'dissect_target_rank', 'dissect_top1', 'dissect_hidden_states']) {
      t.deepEqual(numbers(none[k]!), numbers(some[k]!), `${name}: ${k}`);
    }
  }
});

test.serial('target −1 is the row\'s own top-1: the same probability, rank and projection ranks as feeding that id', async (t) => {
  for (const { name, path } of testModels()) {
    const s = new ModelRef(path).sites;
    const h = await harness(path, {
      knockout: false, logits: false, projections: [{ site: 'hidden', layers: [0, s.layers], via: 'final_norm_unembedding', k: 2, vocabLimit: s.vocab }],
    });
    const feeds = { dissect_proj_positions: int64(POSITIONS.flat(), [2, P]) };
    const own = await h.run([A, B], { ...feeds, dissect_target: int64([OWN_TOP1_TARGET, OWN_TOP1_TARGET], [2]) });
    const top1 = numbers(own.dissect_top1!);
    const fed = await h.run([A, B], { ...feeds, dissect_target: int64(top1, [2]) });
    t.deepEqual(numbers(own.dissect_target_rank!), [0, 0], `${name}: the top-1 has no logit above it`);
    for (const k of ['dissect_target_prob', 'dissect_top1_prob', 'dissect_proj_hidden_target_rank']) t.deepEqual(numbers(own[k]!), numbers(fed[k]!), `${name}: ${k}`);
    t.deepEqual(numbers(own.dissect_target_prob!), numbers(own.dissect_top1_prob!));
    // the rank of the final hidden state's projection is the logits' own rank of the top-1: 0 at the last position
    t.is(numbers(own.dissect_proj_hidden_target_rank!)[P], 0);
  }
});
