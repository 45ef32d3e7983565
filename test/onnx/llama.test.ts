// The Llama family on generated/fixtures/llama-opset{14,17}.onnx (2 sequential blocks, RMSNorm,
// 4 query heads and 2 key/value heads × 8, rotate_half rotary on the whole head, SwiGLU MLP 48,
// untied LM head without bias, vocab 64; the opset-17 file is anonymised): detection, and the
// passes checked with real numbers against the PyTorch reference (llama.json, written by
// scripts/make_llama_fixture.py) and plain-JS references.

import test, { type ExecutionContext } from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { buildVariant } from '../../src/onnx/compile.js';
import { GraphIndex, removeDeadNodes, topoSort } from '../../src/onnx/graph.js';
import { inspectModel, renderInspectText } from '../../src/onnx/inspect.js';
import { encodeModel, readModel, writeModel, type ModelProto, type NodeProto } from '../../src/onnx/proto.js';
import { detectSites, runDetection, SiteError } from '../../src/onnx/sites/index.js';
import { matchRmsNorm, type NormMatch } from '../../src/onnx/sites/pattern.js';
import type { ArchitectureFamily, ModelSites } from '../../src/onnx/sites/types.js';
import { floatAttr, intAttr } from '../../src/onnx/tensor.js';
import type { ProjectionRequest, VariantRequest } from '../../src/onnx/variant.js';
import {
  FIXTURE_MODELS, REPO, argmax, bool, fixturePath, int64, maxAbs, maxAbsDiff, numbers, session, softmax, tempDir, upstreamHas,
  withoutSoftmax as withoutSoftmaxNode,
} from './helpers.js';
import {
  ModelRef, checkHeadSharesSum, checkProjections, TINY_GPT2, at, checkFullyBlockedRows, checkPerHeadKnockout, checkKnockoutBlocks, checkRow, feedsFor, gateTensor, harness, neutralFeeds,
  sameDtype, skeletonModel, topK, vecMat, vecMatT, type ProjectionSetup,
} from './reference.js';

const P14 = fixturePath('llama-opset14.onnx');
const P17 = fixturePath('llama-opset17.onnx');

interface LlamaFixture {
  readonly config: { num_hidden_layers: number; num_attention_heads: number; num_key_value_heads: number; head_dim: number;
    hidden_size: number; intermediate_size: number; vocab_size: number; rms_norm_eps: number };
  readonly sequences: { input_ids: number[]; attention_mask: number[]; logits: number[][] }[];
  readonly knockout: {
    layer: number; keys: number[];
    sequences: { input_ids: number[]; attention_mask: number[]; last: number; clean_top1: number; clean_prob: number; knocked_prob: number }[];
  };
}
const FIX = JSON.parse(readFileSync(fixturePath('llama.json'), 'utf8')) as LlamaFixture;
const [S1, S2] = [FIX.sequences[1]!, FIX.sequences[2]!];
// A: 7 real tokens; B: 5 real tokens right-padded by 2 (the fixture's third sequence)
const A = S1.input_ids;
const BP = S2.input_ids;
const n = A.length;
const MASK_A = S1.attention_mask;
const MASK_B = S2.attention_mask;
const LAST_B = MASK_B.lastIndexOf(1);

const ref = new ModelRef(P14);
const s = ref.sites;
const { layers: L, dModel: d, heads: H, dHead: dh, vocab: V } = s;
const hsDims = (b: number): number[] => [b, L + 1, n, d];
const vec = (xs: readonly number[], dims: readonly number[], ...idx: number[]): number[] => xs.slice(at(dims, ...idx), at(dims, ...idx) + d);
const sub = (a: readonly number[], b: readonly number[]): number[] => a.map((x, i) => x - b[i]!);
const f32 = (x: number): number => Math.fround(x);

// ---- plain-JS Llama pieces ----

interface Rms { readonly gamma: Float64Array; readonly eps: number }

function rmsOf(x: string): Rms {
  const m = matchRmsNorm(ref.ix, x);
  if (!m?.scale || m.epsilon === undefined) throw new Error(`no RMSNorm with weight and ε reads ${x}`);
  return { gamma: ref.vector(m.scale), eps: m.epsilon };
}

function rmsNorm(x: ArrayLike<number>, r: Rms): number[] {
  let ms = 0;
  for (let i = 0; i < x.length; i++) ms += x[i]! ** 2;
  const k = 1 / Math.sqrt(ms / x.length + r.eps);
  return Array.from({ length: x.length }, (_, i) => x[i]! * k * r.gamma[i]!);
}

const silu = (x: number): number => x / (1 + Math.exp(-x));

/** Block `layer`'s MLP update for its residual stream r: down(silu(gate(rms(r))) ⊙ up(rms(r))). */
function mlpRef(layer: number, r: ArrayLike<number>): number[] {
  const Lx = s.perLayer[layer]!;
  const h = rmsNorm(r, rmsOf(Lx.residMid));
  const g = vecMat(h, ref.linearIo(Lx.mlpFc));
  const u = vecMat(h, ref.linearIo(Lx.mlpUp!));
  return vecMat(g.map((x, i) => silu(x) * u[i]!), ref.linearIo(Lx.mlpProj));
}

// ---- detection ----

test('llama: the sites of the Llama fixture at opsets 14 and 17 (anonymised)', (t) => {
  t.deepEqual([FIX.config.num_hidden_layers, FIX.config.num_attention_heads, FIX.config.head_dim, FIX.config.hidden_size, FIX.config.vocab_size],
    [2, 4, 8, 32, 64]);
  const s17 = detectSites(readModel(P17), 'llama-opset17.onnx');
  const ix17 = new GraphIndex(readModel(P17).graph!);
  for (const [x, ix] of [[s, ref.ix], [s17, ix17]] as const) {
    t.is(x.family, 'llama');
    t.is(x.block, 'sequential');
    t.deepEqual([x.layers, x.heads, x.kvHeads, x.dHead, x.dModel, x.dMlp, x.vocab], [2, 4, 2, 8, 32, 48, 64]);
    t.deepEqual(x.rotary, { dims: 8, style: 'half' });
    t.is(x.activation, 'silu');
    t.is(x.dtype, 1);
    t.is(x.finalNorm.op, 'RMSNorm (decomposed)');
    t.is(x.logits, 'logits');
    t.is(x.inputs.inputIds, 'input_ids');
    t.is(x.inputs.attentionMask, 'attention_mask');
    t.is(x.inputs.positionIds, undefined);
    t.deepEqual(x.inputs.past, []);
    t.is(x.embedding.positionWeight, undefined);
    t.not(x.unembedding.weight, x.embedding.weight, 'untied LM head');
    t.is(x.unembedding.bias, undefined);
    t.is(x.unembedding.layout, 'dV');
    for (const Lx of x.perLayer) {
      const what = `layer ${Lx.layer}`;
      t.not(Lx.residMid, Lx.residIn);
      t.not(Lx.mlpNorm, Lx.attnNorm);
      t.is(Lx.attnAddOut, Lx.residMid);
      t.is(Lx.mlpAddOut, Lx.residPost);
      t.is(Lx.kLayout, 'bhsd');
      // the gated MLP: mlpPre = mlpAct = silu(gate) ⊙ up, the down projection's input
      t.is(Lx.mlpPre, Lx.mlpAct);
      const prod = ix.producer(Lx.mlpPre)!;
      t.is(prod.opType, 'Mul');
      t.true(ix.consumersOf(Lx.mlpPre).some((c) => c.opType === 'MatMul' && c.input?.[1] === Lx.mlpProj.weight && c.output?.[0] === Lx.mlpOut));
      t.truthy(Lx.mlpUp);
      t.not(Lx.mlpUp!.weight, Lx.mlpFc.weight);
      t.true(upstreamHas(ix, Lx.mlpPre, 'Sigmoid', Lx.mlpNorm), `${what}: silu upstream of the product`);
      for (const p of [Lx.qProj, Lx.kProj, Lx.vProj, Lx.attnProj, Lx.mlpFc, Lx.mlpUp!, Lx.mlpProj]) t.is(p.bias, undefined);
      t.deepEqual([Lx.qProj.offset, Lx.kProj.offset, Lx.vProj.offset], [0, 0, 0]);
      // q and k after rotary; k and v after the repeat to the query heads (Expand), q never repeated
      t.true(upstreamHas(ix, Lx.q, 'Neg', Lx.attnNorm), `${what}: q after rotary`);
      t.true(upstreamHas(ix, Lx.k, 'Neg', Lx.attnNorm), `${what}: k after rotary`);
      t.false(upstreamHas(ix, Lx.v, 'Neg', Lx.attnNorm));
      t.true(upstreamHas(ix, Lx.k, 'Expand', Lx.attnNorm), `${what}: k after the repeat`);
      t.true(upstreamHas(ix, Lx.v, 'Expand', Lx.attnNorm), `${what}: v after the repeat`);
      t.false(upstreamHas(ix, Lx.q, 'Expand', Lx.attnNorm));
      t.is(ix.producer(Lx.probs)!.opType, 'Softmax');
    }
    for (let l = 1; l < L; l++) t.is(x.perLayer[l]!.residIn, x.perLayer[l - 1]!.residPost);
    t.is(x.finalNorm.input, x.perLayer[L - 1]!.residPost);
  }
  // the anonymised graph: the same structure (sites produced by the same ops)
  t.true(s17.perLayer[0]!.q.startsWith('t'));
  for (let l = 0; l < L; l++) {
    for (const site of ['residIn', 'attnNorm', 'q', 'k', 'v', 'scores', 'probs', 'context', 'contextMerged', 'attnOut', 'residMid', 'mlpNorm', 'mlpPre', 'mlpOut', 'residPost'] as const) {
      t.is(ix17.producer(s17.perLayer[l]![site])?.opType, ref.ix.producer(s.perLayer[l]![site])?.opType, `layer ${l} ${site}`);
    }
  }
});

test('llama: inspect names the family; GPT-2 and GPT-J graphs keep theirs', (t) => {
  const r = inspectModel(P14);
  t.true(r.supported);
  t.is(r.family, 'llama');
  const text = renderInspectText(r);
  t.regex(text, /: llama, 2 layers, 4 heads × 8, d_model 32, MLP 48, vocab 64, float32, silu/);
  t.regex(text, /note: parts: RMSNorm, sequential blocks, separate q, k, v projections, gated MLP act\(gate\) ⊙ up\n/);
  t.regex(text, /grouped-query attention: 2 key\/value heads for 4 query heads/);
  t.regex(text, /rotary position embedding on the first 8 of 8 head dimensions of q and k \(half\)/);
  const others: [string, ArchitectureFamily][] = FIXTURE_MODELS.map((f) => [fixturePath(f), 'gpt2']);
  others.push([skeletonModel(), 'gpt2']);
  const gptj = join(REPO, 'generated', 'tiny-gptj', 'model.onnx');
  if (existsSync(gptj)) others.push([gptj, 'gptj']);
  if (existsSync(TINY_GPT2)) others.push([TINY_GPT2, 'gpt2']);
  for (const [path, family] of others) t.is(runDetection(readModel(path)).sites?.family, family, path);
});

/** The opset-14 fixture without the Softmax of `layer`. */
const withoutSoftmax = (layer: number): ModelProto => withoutSoftmaxNode(P14, `/layers.${layer}/self_attn/attn_softmax/Softmax`);

test('llama: a broken Llama graph names the node where matching broke', (t) => {
  const e = t.throws(() => detectSites(withoutSoftmax(1), 'broken.onnx'), { instanceOf: SiteError });
  t.regex(e!.message, /broken\.onnx: not a recognised llama transformer graph: layer 1: scores not found: at '\/layers\.1\/self_attn\/MatMul_1' \(MatMul\): expected a Softmax/);
  const dt = runDetection(withoutSoftmax(1));
  t.is(dt.family, 'llama');
  t.true(dt.matched);
  t.deepEqual(dt.layers[1]!.missing.map((m) => m.site), ['scores', 'probs', 'v', 'context', 'contextMerged']);
  t.deepEqual(dt.layers[0]!.missing, []);
  const path = join(tempDir('llama-broken'), 'broken.onnx');
  writeModel(path, withoutSoftmax(1));
  t.regex(renderInspectText(inspectModel(path)), /llama-like, but not every site was found/);
});

// ---- no intervention ----

/** Torch reference logits of a fixture sequence, flattened [seq × vocab]. */
const torchLogits = (q: { logits: number[][] }): number[] => q.logits.flat();

test.serial('llama: the original graphs and variants without intervention reproduce the PyTorch logits, right-padded row included', async (t) => {
  for (const path of [P14, P17]) {
    const original = await session(path);
    // each sequence alone (batch 1), as the reference was computed
    for (const q of FIX.sequences) {
      const out = numbers((await original.run(feedsFor(s, [q.input_ids], [q.attention_mask])))[s.logits]!);
      const want = torchLogits(q);
      const diff = maxAbsDiff(out, want);
      t.true(diff <= 1e-5 * maxAbs(want), `${path} length ${q.input_ids.length}: |Δ| ${diff} vs torch`);
    }
    const ids = [A, BP];
    const masks = [MASK_A, MASK_B];
    const base = numbers((await original.run(feedsFor(s, ids, masks)))[s.logits]!);
    const want = [...torchLogits(S1), ...torchLogits(S2)];
    t.true(maxAbsDiff(base, want) <= 1e-5 * maxAbs(want), 'batched with a right-padded row');
    const last = [n - 1, LAST_B];
    const refLast = [S1.logits[n - 1]!, S2.logits[LAST_B]!];
    const targets = [5, 11];
    const requests: VariantRequest[] = [
      { knockout: false, logits: true },
      { knockout: 'replace_half_min', logits: true, gates: { attention: 'zero_update', mlp: 'zero_update' }, patch: true, hiddenStates: true },
      { knockout: 'replace_half_min', logits: true, gates: { attention: 'zero_update', mlp: 'zero_preactivation' }, patch: true, hiddenStates: true, attentionProbs: true,
        projections: [{ site: 'heads', layers: [0, 1], via: 'final_norm_unembedding', k: 3, vocabLimit: V }] },
    ];
    for (const req of requests) {
      for (const fromFull of [true, false]) {
        const built = buildVariant(path, { ...req, logits: fromFull });
        t.is(built.manifest.family, 'llama');
        const v = await session(built.bytes);
        const out = await v.run({ ...feedsFor(s, ids, masks), ...neutralFeeds(s, built.manifest.inputs, 2, n, last, targets) });
        if (fromFull) {
          const got = numbers(out[s.logits]!);
          const diff = maxAbsDiff(got, base);
          t.true(diff <= 1e-5 * maxAbs(base), `${JSON.stringify(req)}: |Δlogits| ${diff} vs the original`);
          t.true(maxAbsDiff(got, want) <= 1e-5 * maxAbs(want), `${JSON.stringify(req)}: vs torch`);
        }
        t.deepEqual(numbers(out.dissect_top1!), refLast.map(argmax));
        numbers(out.dissect_target_prob!).forEach((x, b) => {
          const p = softmax(refLast[b]!)[targets[b]!]!;
          t.true(Math.abs(x - p) <= 1e-5 * p, `row ${b}: target prob ${x} vs torch ${p}`);
        });
      }
    }
  }
});

// ---- knockout ----

async function knockoutHarness(path = P14) {
  const built = buildVariant(path, { knockout: 'replace_half_min', logits: true, attentionProbs: true });
  const v = await session(built.bytes);
  const run = async (mask: Uint8Array, heads: number, rows: readonly (readonly number[])[] = [A], masks: readonly (readonly number[])[] = [MASK_A],
    last?: readonly number[], target?: readonly number[]) => {
    const b = rows.length;
    const m = rows[0]!.length;
    const out = await v.run({
      ...feedsFor(s, rows, masks), dissect_knockout: bool(mask, [b, L, heads, m, m]),
      dissect_last_index: int64(last ?? new Array(b).fill(m - 1), [b]), dissect_target: int64(target ?? new Array(b).fill(0), [b]),
    });
    return {
      probs: Array.from({ length: L }, (_, l) => numbers(out[`dissect_attn_probs_${l}`]!)), logits: numbers(out.logits!),
      targetProb: numbers(out.dissect_target_prob!), top1: numbers(out.dissect_top1!),
    };
  };
  const maskOf = (heads: number, m = n, b = 1) => {
    const x = new Uint8Array(b * L * heads * m * m);
    return { m: x, set: (l: number, h: number, q: number, k: number, row = 0) => { x[(((row * L + l) * heads + h) * m + q) * m + k] = 1; } };
  };
  const row = (r: { probs: number[][] }, l: number, h: number, q: number, m = n): number[] => r.probs[l]!.slice((h * m + q) * m, (h * m + q + 1) * m);
  return { run, maskOf, row };
}

test.serial('llama: knockout — blocked weights are exactly 0, rows sum to 1, other rows untouched', async (t) => {
  await checkKnockoutBlocks(t, await knockoutHarness(), { L, H, n }, [[0, 6, [1, 2]], [1, 5, [0, 4]]]);
});

test.serial('llama: knockout — a fully blocked row is uniform over its causal prefix; all blocked stays finite, padded row too', async (t) => {
  await checkFullyBlockedRows(t, await knockoutHarness(), { L, H, n }, [0, 1], [A, BP], [MASK_A, MASK_B]);
});

test.serial('llama: per-head knockout changes only the listed heads (heads 0 and 1 share a key/value head)', async (t) => {
  const [base, r] = await checkPerHeadKnockout(t, await knockoutHarness(), { L, H, n }, 1, { head: 1, q: 6 }, { head: 2, q: 4 });
  t.notDeepEqual(r!.logits, base!.logits);
});

test.serial('llama: knockout equals PyTorch with a pre-softmax hook (last ← {0, 1} at layer 1, all heads)', async (t) => {
  const K = FIX.knockout;
  t.is(K.layer, 1);
  for (const path of [P14, P17]) {
    const { run, maskOf } = await knockoutHarness(path);
    for (const q of K.sequences) {
      const m = q.input_ids.length;
      const clean = await run(maskOf(1, m).m, 1, [q.input_ids], [q.attention_mask], [q.last], [q.clean_top1]);
      t.deepEqual(clean.top1, [q.clean_top1]);
      t.true(Math.abs(clean.targetProb[0]! - q.clean_prob) <= 1e-5 * q.clean_prob, `clean ${clean.targetProb[0]} vs ${q.clean_prob}`);
      const { m: mask, set } = maskOf(1, m);
      for (const k of K.keys) set(K.layer, 0, q.last, k);
      const knocked = await run(mask, 1, [q.input_ids], [q.attention_mask], [q.last], [q.clean_top1]);
      const got = knocked.targetProb[0]!;
      t.true(Math.abs(got - q.knocked_prob) <= 1e-5 * q.knocked_prob, `${path} length ${m}: knocked ${got} vs torch ${q.knocked_prob}`);
      t.true(Math.abs(got - q.clean_prob) > 1e-3, 'the knockout matters');
      t.log(`length ${m}: top-1 ${q.clean_top1} p ${q.clean_prob.toFixed(6)} → ${got.toFixed(6)} (torch ${q.knocked_prob.toFixed(6)})`);
    }
  }
});

// ---- gates ----

test.serial('llama: MLP zero_update leaves exactly the residual plus the attention update', async (t) => {
  const h = await harness(P14, { knockout: false, logits: false, gates: { mlp: 'zero_update' }, hiddenStates: true },
    (x) => x.perLayer.flatMap((Lx) => [Lx.attnOut, Lx.mlpOut]));
  for (let l = 0; l < L; l++) {
    const out = await h.run([A], { dissect_gate_mlp: gateTensor(1, L, n, [[0, l, 2, 0], [0, l, 6, 0]]) });
    const hs = numbers(out.dissect_hidden_states!);
    const attn = numbers(out[s.perLayer[l]!.attnOut]!);
    const mlp = numbers(out[s.perLayer[l]!.mlpOut]!);
    for (let p = 0; p < n; p++) {
      const before = vec(hs, hsDims(1), 0, l, p);
      const after = vec(hs, hsDims(1), 0, l + 1, p);
      const a = attn.slice(p * d, (p + 1) * d);
      const m = mlp.slice(p * d, (p + 1) * d);
      if (p === 2 || p === 6) {
        t.deepEqual(after, before.map((x, i) => f32(x + a[i]!)), `layer ${l} position ${p}: residPost = residIn + attnOut exactly`);
        t.true(maxAbs(m) > 0, 'the MLP did write something');
      } else {
        t.deepEqual(after, before.map((x, i) => f32(f32(x + a[i]!) + m[i]!)), `layer ${l} position ${p}: ungated`);
      }
    }
  }
});

test.serial('llama: MLP zero_preactivation zeroes the down projection\'s input (no bias: the MLP writes 0)', async (t) => {
  const h = await harness(P14, { knockout: false, logits: false, gates: { mlp: 'zero_preactivation' }, hiddenStates: true },
    (x) => x.perLayer.flatMap((Lx) => [Lx.attnOut, Lx.mlpOut]));
  const gated = [[0, 0, 1, 0], [0, 1, 6, 0]] as [number, number, number, number][];
  const out = await h.run([A], { dissect_gate_mlp: gateTensor(1, L, n, gated) });
  const hs = numbers(out.dissect_hidden_states!);
  for (let l = 0; l < L; l++) {
    const mlp = numbers(out[s.perLayer[l]!.mlpOut]!);
    const attn = numbers(out[s.perLayer[l]!.attnOut]!);
    for (let p = 0; p < n; p++) {
      const m = mlp.slice(p * d, (p + 1) * d);
      if (gated.some(([, gl, gp]) => gl === l && gp === p)) {
        t.true(m.every((x) => x === 0), `layer ${l} position ${p}: MLP update exactly 0`);
        t.deepEqual(vec(hs, hsDims(1), 0, l + 1, p), vec(hs, hsDims(1), 0, l, p).map((x, i) => f32(x + attn[p * d + i]!)));
      } else {
        t.true(maxAbs(m) > 0);
      }
    }
  }
});

test.serial('llama: attention zero_update leaves exactly the residual plus the MLP update (= the JS SwiGLU MLP of the block input)', async (t) => {
  const h = await harness(P14, { knockout: false, logits: false, gates: { attention: 'zero_update' }, hiddenStates: true },
    (x) => x.perLayer.flatMap((Lx) => [Lx.attnOut, Lx.mlpOut]));
  const clean = numbers((await h.run([A])).dissect_hidden_states!);
  for (let l = 0; l < L; l++) {
    const p = 5;
    const out = await h.run([A, A], { dissect_gate_attention: gateTensor(2, L, n, [[0, l, p, 0], [1, l, p, 0.5]]) });
    const hs = numbers(out.dissect_hidden_states!);
    const mlp = numbers(out[s.perLayer[l]!.mlpOut]!);
    const attn = numbers(out[s.perLayer[l]!.attnOut]!);
    const before = vec(hs, hsDims(2), 0, l, p);
    const after = vec(hs, hsDims(2), 0, l + 1, p);
    const m = mlp.slice(p * d, (p + 1) * d);
    t.deepEqual(after, before.map((x, i) => f32(x + m[i]!)), `layer ${l}: residPost = residIn + mlpOut exactly`);
    const expected = mlpRef(l, before); // RMSNorm (residMid = residIn here) → SwiGLU, in JS
    const diff = maxAbsDiff(sub(after, before), expected);
    t.true(diff <= 1e-5 * maxAbs(after), `layer ${l}: update vs JS MLP(rms(block input)): ${diff}`);
    // gate 0.5: residMid = residIn + 0.5·attn, then the MLP of that
    const mid = vec(hs, hsDims(2), 1, l, p).map((x, i) => x + 0.5 * attn[(n + p) * d + i]!);
    const want = mid.map((x, i) => x + mlpRef(l, mid)[i]!);
    t.true(maxAbsDiff(vec(hs, hsDims(2), 1, l + 1, p), want) <= 1e-5 * maxAbs(want), `layer ${l}: gate 0.5`);
    for (let j = 0; j <= l; j++) for (let q = 0; q < n; q++) t.deepEqual(vec(hs, hsDims(2), 0, j, q), vec(clean, hsDims(1), 0, j, q));
  }
});

// ---- patching and hidden states ----

test.serial('llama: patch replaces the block input on both paths; hidden states 0..L; RMSNorm + LM head of the last = logits', async (t) => {
  const h = await harness(P14, { knockout: false, logits: true, patch: true, hiddenStates: true });
  const cleanA = await h.run([A]);
  const cleanB = await h.run([BP]);
  const hsA = numbers(cleanA.dissect_hidden_states!);
  const E = ref.matrix(s.embedding.weight);
  const U = ref.linearIo({ weight: s.unembedding.weight, op: s.unembedding.op, layout: 'io' });
  const fn = rmsOf(s.finalNorm.input);
  const logitsA = numbers(cleanA[s.logits]!);
  for (let p = 0; p < n; p++) {
    t.deepEqual(vec(hsA, hsDims(1), 0, 0, p), Array.from(E.data.slice(A[p]! * d, (A[p]! + 1) * d)), `hidden_states[0][${p}] = embed_tokens row`);
    const z = vecMat(rmsNorm(vec(hsA, hsDims(1), 0, L, p), fn), U);
    t.true(maxAbsDiff(z, logitsA.slice(p * V, (p + 1) * V)) <= 1e-5 * maxAbs(z), `position ${p}: lm_head(rms(hidden_states[L])) = logits`);
  }
  for (let l = 0; l < L; l++) {
    const out = await h.run([A], {
      dissect_patch_layer: int64([l], [1]), dissect_patch_mask: bool(new Uint8Array(n).fill(1), [1, n]),
      dissect_patch_values: sameDtype(cleanB.dissect_hidden_states!, [1, n, d], at(hsDims(1), 0, l)),
    });
    t.deepEqual(numbers(out[s.logits]!), numbers(cleanB[s.logits]!), `layer ${l}: patched run = B's run`);
    const hs = numbers(out.dissect_hidden_states!);
    t.deepEqual(hs.slice(0, at(hsDims(1), 0, l)), hsA.slice(0, at(hsDims(1), 0, l)), 'below the patch: A');
  }
});

// ---- projections ----

const POSITIONS = [[6, 1, 3], [4, 0, 4]];
const P = POSITIONS[0]!.length;
const TARGETS = [5, 11];
const E = ref.matrix(s.embedding.weight);
const fnorm = rmsOf(s.finalNorm.input);
const U = ref.linearIo({ weight: s.unembedding.weight, op: s.unembedding.op, layout: s.unembedding.layout === 'Vd' ? 'oi' : 'io' });
const project = (x: readonly number[], via: ProjectionRequest['via']): number[] =>
  via === 'embedding' ? vecMatT(x, E) : vecMat(rmsNorm(x, fnorm), U);
const SETUP: ProjectionSetup = { sites: s, ref, L, n, d, dh, H, positions: POSITIONS, targets: TARGETS, project, rel: 1e-4 };


async function compareProjections(t: ExecutionContext, projections: ProjectionRequest[], path = P14): Promise<Record<string, ort.Tensor>> {
  const h = await harness(path, { knockout: false, logits: true, hiddenStates: true, projections },
    (x: ModelSites) => x.perLayer.flatMap((Lx) => [Lx.attnOut, Lx.mlpOut, Lx.contextMerged]));
  const sx = h.sites;
  const out = await h.run([A, BP], { dissect_proj_positions: int64(POSITIONS.flat(), [2, P]), dissect_target: int64(TARGETS, [2]) });
  // the tapped names of `path` (anonymised graphs have their own)
  const renamed: Record<string, ort.Tensor> = { ...out };
  sx.perLayer.forEach((Lx, l) => {
    const Ly = s.perLayer[l]!;
    renamed[Ly.attnOut] = out[Lx.attnOut]!;
    renamed[Ly.mlpOut] = out[Lx.mlpOut]!;
    renamed[Ly.contextMerged] = out[Lx.contextMerged]!;
  });
  checkProjections(t, out, renamed, projections, SETUP);
  return out;
}

test.serial('llama: projections of every site match a JS reference (embed_tokens; final RMSNorm + lm_head), both vias', async (t) => {
  const blocks = Array.from({ length: L }, (_, l) => l);
  for (const path of [P14, P17]) {
    for (const limit of [V, 60]) {
      const all: ProjectionRequest[] = [
        { site: 'hidden', layers: [...blocks, L], via: 'final_norm_unembedding', k: 10, vocabLimit: limit },
        { site: 'attention', layers: blocks, via: 'embedding', k: 8, vocabLimit: limit },
        { site: 'mlp', layers: [1], via: 'final_norm_unembedding', k: 5, vocabLimit: limit },
        { site: 'heads', layers: [0, 1], via: 'embedding', k: 6, vocabLimit: limit },
      ];
      const out = await compareProjections(t, all, path);
      if (limit === V) {
        // hidden_states[L] through the final RMSNorm and the LM head is the model's own next-token distribution
        const logits = numbers(out[s.logits]!);
        const top = numbers(out.dissect_proj_hidden_ids!);
        for (let b = 0; b < 2; b++) {
          for (let pi = 0; pi < P; pi++) {
            const p = POSITIONS[b]![pi]!;
            t.is(top[at([2, L + 1, P, 10], b, L, pi, 0)], argmax(logits.slice((b * n + p) * V, (b * n + p + 1) * V)));
          }
        }
      }
      const flipped = all.map((p) => ({ ...p, via: p.via === 'embedding' ? 'final_norm_unembedding' as const : 'embedding' as const }));
      await compareProjections(t, flipped, path);
    }
  }
});

test.serial('llama: per-head shares (o_proj rows of the query head) sum to the attention update', async (t) => {
  await checkHeadSharesSum(t, P14, [A, BP], SETUP);
});

// ---- fused RMSNorm ops ----

/** The opset-14 fixture with every decomposed RMSNorm replaced by one fused `op` node. */
function fusedNorms(op: 'SimplifiedLayerNormalization' | 'RMSNormalization'): ModelProto {
  const m = readModel(P14);
  const g = m.graph!;
  const ix = new GraphIndex(g);
  const norms = new Map<string, NormMatch>();
  for (const t of [s.perLayer[0]!.residIn, ...s.perLayer.flatMap((Lx) => [Lx.residMid, Lx.residPost])]) {
    const r = matchRmsNorm(ix, t);
    if (r) norms.set(t, r);
  }
  const drop = new Set<NodeProto>([...norms.values()].flatMap((r) => [...r.nodes]));
  const out: NodeProto[] = [];
  for (const x of g.node ?? []) {
    if (!drop.has(x)) { out.push(x); continue; }
    const r = [...norms.values()].find((nm) => nm.output === x.output?.[0]);
    if (r) out.push({ opType: op, input: [r.input, r.scale!], output: [r.output], name: `fused ${r.output}`, attribute: [floatAttr('epsilon', r.epsilon!), intAttr('axis', -1)] });
  }
  g.node = out;
  removeDeadNodes(g);
  if (op === 'RMSNormalization') m.opsetImport = (m.opsetImport ?? []).map((o) => (!o.domain ? { ...o, version: 23 } : o));
  return m;
}

test.serial('llama: fused RMSNorm ops (SimplifiedLayerNormalization, RMSNormalization) are detected and re-applied by the projections', async (t) => {
  const base = numbers((await (await session(P14)).run(feedsFor(s, [A])))[s.logits]!);
  for (const op of ['SimplifiedLayerNormalization', 'RMSNormalization'] as const) {
    const m = fusedNorms(op);
    const fs = detectSites(m, op);
    t.is(fs.family, 'llama');
    t.is(fs.finalNorm.op, op);
    t.is(fs.perLayer.length, L);
    const path = join(tempDir('llama-fused'), `${op}.onnx`);
    writeModel(path, m);
    const orig = numbers((await (await session(encodeModel(m))).run(feedsFor(s, [A])))[s.logits]!);
    t.true(maxAbsDiff(orig, base) <= 1e-5 * maxAbs(base), `${op}: the fused graph computes the same logits`);
    const h = await harness(path, { knockout: 'replace_half_min', logits: true, hiddenStates: true,
      projections: [{ site: 'hidden', layers: [0, 1, 2], via: 'final_norm_unembedding', k: 4, vocabLimit: V }] });
    const out = await h.run([A], { dissect_proj_positions: int64([6, 2], [1, 2]), dissect_target: int64([7], [1]) });
    t.true(maxAbsDiff(numbers(out[fs.logits]!), orig) <= 1e-5 * maxAbs(orig));
    const hs = numbers(out.dissect_hidden_states!);
    const I = numbers(out.dissect_proj_hidden_ids!);
    const S = numbers(out.dissect_proj_hidden_scores!);
    const R = numbers(out.dissect_proj_hidden_target_rank!);
    for (let l = 0; l <= L; l++) {
      [6, 2].forEach((p, pi) => {
        const r = topK(project(vec(hs, hsDims(1), 0, l, p), 'final_norm_unembedding'), 4, 7);
        const o = at([1, L + 1, 2], 0, l, pi);
        checkRow(t, { ids: I.slice(o * 4, o * 4 + 4), scores: S.slice(o * 4, o * 4 + 4), rank: R[o]! }, r, 7, 1e-4, `${op} layer ${l} position ${p}`);
      });
    }
  }
});

test.serial('llama: SkipSimplifiedLayerNormalization (a residual add fused into the RMSNorm) is expanded; every output as on the export', async (t) => {
  const m = fusedNorms('SimplifiedLayerNormalization');
  const g = m.graph!;
  const ix = new GraphIndex(g);
  let fused = 0;
  for (const stream of s.perLayer.flatMap((Lx) => [Lx.residMid, Lx.residPost])) {
    const add = ix.producer(stream);
    const norm = ix.consumersOf(stream).find((x) => x.opType === 'SimplifiedLayerNormalization');
    if (add?.opType !== 'Add' || !norm) continue;
    // onnxruntime's fusion: the norm takes the add's operands and writes the sum as its 4th output
    Object.assign(norm, {
      opType: 'SkipSimplifiedLayerNormalization', domain: 'com.microsoft', input: [...add.input!, norm.input![1]!], output: [norm.output![0]!, '', '', stream],
      attribute: norm.attribute!.filter((a) => a.name === 'epsilon'),
    });
    g.node = g.node!.filter((x) => x !== add);
    fused++;
  }
  t.is(fused, 2 * L, 'every residual sum feeds a norm (the last one the final norm)');
  topoSort(g);
  m.opsetImport = [...(m.opsetImport ?? []), { domain: 'com.microsoft', version: 1 }];
  const path = join(tempDir('llama-skip'), 'skip.onnx');
  writeModel(path, m);
  const base = numbers((await (await session(P14)).run(feedsFor(s, [A])))[s.logits]!);
  t.true(maxAbsDiff(numbers((await (await session(path)).run(feedsFor(s, [A])))[s.logits]!), base) <= 1e-5 * maxAbs(base),
    'onnxruntime runs the fused graph to the same logits');
  t.deepEqual(detectSites(readModel(path)).expandedFusedOps, { SkipSimplifiedLayerNormalization: fused });
  const request: VariantRequest = {
    knockout: 'replace_half_min', logits: true, hiddenStates: true, gates: { attention: 'zero_update', mlp: 'zero_update' },
    projections: (['hidden', 'attention', 'mlp'] as const).map((site) => ({ site, layers: [0, 1], via: 'final_norm_unembedding' as const, k: 4, vocabLimit: V })),
  };
  const [plain, expanded] = [buildVariant(P14, request), buildVariant(path, request)];
  const feeds = {
    ...neutralFeeds(s, plain.manifest.inputs, 1, n, [n - 1], [7]), ...feedsFor(s, [A]),
    dissect_gate_mlp: gateTensor(1, L, n, [[0, 0, n - 1, 0]]), dissect_proj_positions: int64([n - 1, 2], [1, 2]),
  };
  const [want, got] = await Promise.all([plain, expanded].map(async (v) => (await session(v.bytes)).run(feeds)));
  for (const o of plain.manifest.outputs) {
    const [w, x] = [numbers(want![o.name]!), numbers(got![o.name]!)];
    t.true(maxAbsDiff(x, w) <= 1e-5 * Math.max(1, maxAbs(w)), o.name);
  }
});
