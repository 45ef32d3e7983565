import test, { type ExecutionContext } from 'ava';
import type ort from 'onnxruntime-node';
import { OWN_TOP1_TARGET, type ProjectionRequest } from '../../src/onnx/variant.js';
import { argmax, int64, numbers } from './helpers.js';
import {
  ModelRef, at, checkHeadSharesSum, checkProjections, gateTensor, harness, layerNorm, testModels, vecMat, vecMatT, type ProjectionSetup,
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
  const project = (x: readonly number[], via: ProjectionRequest['via']): number[] =>
    via === 'embedding' ? vecMatT(x, E) : vecMat(layerNorm(x, fnorm), U, uBias);
  const blocks = Array.from({ length: L }, (_, l) => l);
  const targets = [3, 11];

  const setup: ProjectionSetup = { sites: s, ref, L, n, d, dh, H, positions: POSITIONS, targets, project, rel };

  async function compare(t: ExecutionContext, projections: ProjectionRequest[]): Promise<Record<string, ort.Tensor>> {
    const h = await harness(path, { knockout: false, logits: true, hiddenStates: true, projections },
      () => s.perLayer.flatMap((Lx) => [Lx.attnOut, Lx.mlpOut, Lx.contextMerged]));
    const out = await h.run([A, B], { dissect_proj_positions: int64(POSITIONS.flat(), [2, P]), dissect_target: int64(targets, [2]) });
    checkProjections(t, out, out, projections, setup);
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
    await checkHeadSharesSum(t, path, [A, B], setup);
    await checkHeadSharesSum(t, path, [A, B], setup, gateTensor(2, L, n, [[0, 0, 6, 0.25], [1, L - 1, 3, 0], [0, L - 1, 1, 0.5]]));
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
