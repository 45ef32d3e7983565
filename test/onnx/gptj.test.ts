// The GPT-J family on generated/tiny-gptj (6 parallel blocks, 3 heads × 32, rotary on 16 dims,
// untied LM head with bias, 272 embedding rows for 264 tokens): detection, and every pass
// checked with real numbers against the original model and plain-JS references.

import test, { type ExecutionContext } from 'ava';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { buildVariant } from '../../src/onnx/compile.js';
import { buildHeadMappingGraph } from '../../src/onnx/head-mappings.js';
import { inspectModel, renderInspectText } from '../../src/onnx/inspect.js';
import { readModel, writeModel, type ModelProto } from '../../src/onnx/proto.js';
import { detectSites, runDetection, SiteError } from '../../src/onnx/sites/index.js';
import type { ModelSites } from '../../src/onnx/sites/types.js';
import type { ProjectionRequest, VariantRequest } from '../../src/onnx/variant.js';
import {
  REPO, anonymise, argmax, bool, fixturePath, int64, maxAbs, maxAbsDiff, numbers, session, softmax, tempDir, upstreamHas,
  withoutSoftmax as withoutSoftmaxNode,
} from './helpers.js';
import {
  ModelRef, checkHeadSharesSum, checkProjections, at, checkFullyBlockedRows, checkPerHeadKnockout, checkKnockoutBlocks, checkRow, feedsFor, gateTensor, harness, layerNorm, mlpUpdate,
  neutralFeeds, sameDtype, tap, topK, vecMat, vecMatT, type ProjectionSetup,
} from './reference.js';

const GPTJ = join(REPO, 'generated', 'tiny-gptj', 'model.onnx');
// "Lornar Elnar was born in the city of" → Solvig (121); "Nelvo Velden works as a" → plumber (229)
const A = [67, 32, 260, 167, 203, 250, 174, 218];
const B = [85, 138, 263, 161, 156];
const n = A.length;
const BP = [...B, 0, 0, 0];
const MASK_A = A.map(() => 1);
const MASK_B = BP.map((_, i) => (i < B.length ? 1 : 0));
const TOKENS = 264;

const ref = new ModelRef(GPTJ);
const s = ref.sites;
const { layers: L, dModel: d, heads: H, dHead: dh, vocab: V } = s;
const hsDims = (b: number): number[] => [b, L + 1, n, d];
const vec = (xs: readonly number[], dims: readonly number[], ...idx: number[]): number[] => xs.slice(at(dims, ...idx), at(dims, ...idx) + d);
const sub = (a: readonly number[], b: readonly number[]): number[] => a.map((x, i) => x - b[i]!);
const f32 = (x: number): number => Math.fround(x);

// ---- detection ----

test('gptj: the sites of tiny-gptj', (t) => {
  t.is(s.family, 'gptj');
  t.is(s.block, 'parallel');
  t.deepEqual(s.rotary, { dims: 16, style: 'interleaved' });
  t.is(L, 6);
  t.is(H, 3);
  t.is(dh, 32);
  t.is(d, 96);
  t.is(V, 272);
  t.is(s.dMlp, 384);
  t.is(s.activation, 'gelu_tanh');
  t.is(s.dtype, 1);
  t.is(s.logits, 'logits');
  t.is(s.inputs.inputIds, 'input_ids');
  t.is(s.inputs.attentionMask, 'attention_mask');
  t.is(s.inputs.positionIds, undefined);
  t.deepEqual(s.inputs.past, []);
  t.is(s.embedding.weight, 'transformer.wte.weight');
  t.is(s.embedding.positionWeight, undefined);
  t.not(s.unembedding.weight, s.embedding.weight, 'untied LM head');
  t.is(s.unembedding.bias, 'lm_head.bias');
  t.is(s.unembedding.layout, 'dV');
  for (const Lx of s.perLayer) {
    // a parallel block: one norm, no residual stream between the sublayers
    t.is(Lx.residMid, Lx.residIn);
    t.is(Lx.mlpNorm, Lx.attnNorm);
    t.is(Lx.attnAddOut, Lx.mlpAddOut, 'attention and MLP updates are summed by one Add');
    t.is(ref.ix.producer(Lx.attnAddOut)!.opType, 'Add');
    t.true(ref.ix.consumersOf(Lx.attnAddOut).some((x) => x.output?.includes(Lx.residPost) && x.input?.includes(Lx.residIn)));
    t.is(Lx.kLayout, 'bhsd');
    for (const p of [Lx.qProj, Lx.kProj, Lx.vProj, Lx.attnProj]) t.is(p.bias, undefined);
    t.deepEqual([Lx.qProj.offset, Lx.kProj.offset, Lx.vProj.offset], [0, 0, 0]);
    t.is(new Set([Lx.qProj.weight, Lx.kProj.weight, Lx.vProj.weight]).size, 3);
    t.truthy(Lx.mlpFc.bias);
    t.truthy(Lx.mlpProj.bias);
    // q and k are after the rotary embedding: a Neg lies upstream of each, not of v
    t.true(upstreamHas(ref.ix, Lx.q, 'Neg', Lx.attnNorm), `layer ${Lx.layer}: q after rotary`);
    t.true(upstreamHas(ref.ix, Lx.k, 'Neg', Lx.attnNorm), `layer ${Lx.layer}: k after rotary`);
    t.false(upstreamHas(ref.ix, Lx.v, 'Neg', Lx.attnNorm));
  }
  for (let l = 1; l < L; l++) t.is(s.perLayer[l]!.residIn, s.perLayer[l - 1]!.residPost);
  t.is(s.finalNorm.input, s.perLayer[L - 1]!.residPost);
});

test('gptj: detection works on an anonymised graph (names are hints only)', (t) => {
  const m = readModel(GPTJ);
  anonymise(m);
  const a = detectSites(m, 'anon');
  t.is(a.family, 'gptj');
  t.deepEqual([a.layers, a.heads, a.dHead, a.dModel, a.vocab], [6, 3, 32, 96, 272]);
  t.deepEqual(a.rotary, { dims: 16, style: 'interleaved' });
  t.true(a.perLayer[0]!.q.startsWith('t'));
});

test('gptj: inspect names the family and its parts; GPT-2 graphs are still gpt2', (t) => {
  const r = inspectModel(GPTJ);
  t.true(r.supported);
  t.is(r.family, 'gptj');
  const text = renderInspectText(r);
  t.regex(text, /: gptj, 6 layers, 3 heads × 32, d_model 96, MLP 384, vocab 272, float32, gelu_tanh/);
  t.regex(text, /note: parts: LayerNorm, parallel blocks \(one norm shared by attention and MLP\), separate q, k, v projections/);
  t.regex(text, /note: rotary position embedding on the first 16 of 32 head dimensions of q and k \(interleaved\)/);
  for (const name of ['gpt2-opset14.onnx', 'gpt2-opset17.onnx', 'gpt2-optimum.onnx', 'gpt2-fp16.onnx']) {
    t.is(runDetection(readModel(fixturePath(name))).sites?.family, 'gpt2', name);
  }
});

/** tiny-gptj without the Softmax of `layer`. */
const withoutSoftmax = (layer: number): ModelProto => withoutSoftmaxNode(GPTJ, `/h.${layer}/attn/Softmax`);

test('gptj: a broken GPT-J graph names the node where matching broke', (t) => {
  const e = t.throws(() => detectSites(withoutSoftmax(2), 'broken.onnx'), { instanceOf: SiteError });
  t.regex(e!.message, /broken\.onnx: not a recognised gptj transformer graph: layer 2: scores not found: at '\/h\.2\/attn\/MatMul_1' \(MatMul\): expected a Softmax/);
  const d = runDetection(withoutSoftmax(2));
  t.is(d.family, 'gptj');
  t.true(d.matched);
  t.deepEqual(d.layers[2]!.missing.map((m) => m.site), ['scores', 'probs', 'v', 'context', 'contextMerged']);
  t.true(d.layers.filter((x) => x.layer !== 2).every((x) => x.missing.length === 0));
  const text = renderInspectText(inspectModelOf(withoutSoftmax(2)));
  t.regex(text, /gptj-like, but not every site was found/);
  t.regex(text, /\nbroke at layer 2: scores not found: at '\/h\.2\/attn\/MatMul_1' \(MatMul\)/);
});

function inspectModelOf(m: ModelProto): ReturnType<typeof inspectModel> {
  const path = join(tempDir('gptj-broken'), 'broken.onnx');
  writeModel(path, m);
  return inspectModel(path);
}

// ---- no intervention ----

test.serial('gptj: a variant without intervention reproduces the original logits, right-padded row included', async (t) => {
  const original = await session(GPTJ);
  const ids = [A, BP];
  const masks = [MASK_A, MASK_B];
  const base = numbers((await original.run(feedsFor(s, ids, masks)))[s.logits]!);
  const last = [n - 1, B.length - 1];
  const lastLogits = last.map((p, b) => base.slice((b * n + p) * V, (b * n + p + 1) * V));
  t.is(argmax(lastLogits[0]!), 121, 'the model knows the fact (Solvig)');
  const requests: VariantRequest[] = [
    { knockout: false, logits: true },
    { knockout: 'replace_half_min', logits: true, gates: { attention: 'zero_update', mlp: 'zero_update' }, patch: true, hiddenStates: true },
    { knockout: 'replace_half_min', logits: true, gates: { attention: 'zero_update', mlp: 'zero_preactivation' }, patch: true, hiddenStates: true,
      projections: [{ site: 'heads', layers: [0, 5], via: 'embedding', k: 3, vocabLimit: TOKENS }] },
  ];
  for (const req of requests) {
    for (const fromFull of [true, false]) {
      const built = buildVariant(GPTJ, { ...req, logits: fromFull });
      t.is(built.manifest.family, 'gptj');
      const v = await session(built.bytes);
      const out = await v.run({ ...feedsFor(s, ids, masks), ...neutralFeeds(s, built.manifest.inputs, 2, n, last, [121, 229]) });
      if (fromFull) {
        const got = numbers(out[s.logits]!);
        const diff = maxAbsDiff(got, base);
        t.true(diff <= 1e-5 * maxAbs(base), `${JSON.stringify(req)}: |Δlogits| ${diff}`);
        t.log(`${Object.keys(req).filter((k) => (req as unknown as Record<string, unknown>)[k]).join('+')}: max |Δlogit| = ${diff}`);
      }
      t.deepEqual(numbers(out.dissect_top1!), lastLogits.map(argmax));
      const p = lastLogits.map((z) => softmax(z));
      numbers(out.dissect_target_prob!).forEach((x, b) => t.true(Math.abs(x - p[b]![[121, 229][b]!]!) <= 1e-5, `row ${b}: target prob ${x}`));
    }
  }
});

// ---- knockout ----

async function knockoutHarness() {
  const built = buildVariant(GPTJ, { knockout: 'replace_half_min', logits: true, attentionProbs: true });
  const v = await session(built.bytes);
  const run = async (mask: Uint8Array, heads: number, rows = [A], masks = [MASK_A]) => {
    const b = rows.length;
    const out = await v.run({
      ...feedsFor(s, rows, masks), dissect_knockout: bool(mask, [b, L, heads, n, n]),
      dissect_last_index: int64(new Array(b).fill(n - 1), [b]), dissect_target: int64(new Array(b).fill(0), [b]),
    });
    return { probs: Array.from({ length: L }, (_, l) => numbers(out[`dissect_attn_probs_${l}`]!)), logits: numbers(out.logits!) };
  };
  const maskOf = (heads: number) => {
    const m = new Uint8Array(L * heads * n * n);
    return { m, set: (l: number, h: number, q: number, k: number) => { m[((l * heads + h) * n + q) * n + k] = 1; } };
  };
  const row = (r: { probs: number[][] }, l: number, h: number, q: number): number[] => r.probs[l]!.slice((h * n + q) * n, (h * n + q + 1) * n);
  return { run, maskOf, row };
}

test.serial('gptj: knockout — blocked weights are exactly 0, rows sum to 1, other rows untouched', async (t) => {
  // keys after the query: GPT-J's future mask is finfo.min / √d_head, above B: the pass writes F there
  await checkKnockoutBlocks(t, await knockoutHarness(), { L, H, n }, [[0, 6, [1, 2]], [3, 7, [0, 5]]]);
});

test.serial('gptj: knockout — a fully blocked row is uniform over its causal prefix; all blocked stays finite', async (t) => {
  await checkFullyBlockedRows(t, await knockoutHarness(), { L, H, n }, [0, 4], [A, BP], [MASK_A, MASK_B]);
});

test.serial('gptj: per-head knockout changes only the listed heads', async (t) => {
  await checkPerHeadKnockout(t, await knockoutHarness(), { L, H, n }, 2, { head: 1, q: 7 }, { head: 2, q: 5 });
});

// ---- gates ----

test.serial('gptj: MLP zero_update leaves exactly the residual plus the attention update', async (t) => {
  const h = await harness(GPTJ, { knockout: false, logits: false, gates: { mlp: 'zero_update' }, hiddenStates: true },
    (x) => x.perLayer.flatMap((Lx) => [Lx.attnOut, Lx.mlpOut]));
  for (let l = 0; l < L; l++) {
    const out = await h.run([A], { dissect_gate_mlp: gateTensor(1, L, n, [[0, l, 2, 0], [0, l, 7, 0]]) });
    const hs = numbers(out.dissect_hidden_states!);
    const attn = numbers(out[s.perLayer[l]!.attnOut]!);
    const mlp = numbers(out[s.perLayer[l]!.mlpOut]!);
    for (let p = 0; p < n; p++) {
      const before = vec(hs, hsDims(1), 0, l, p);
      const after = vec(hs, hsDims(1), 0, l + 1, p);
      const a = attn.slice(p * d, (p + 1) * d);
      const m = mlp.slice(p * d, (p + 1) * d);
      if (p === 2 || p === 7) {
        // (attn + mlp·0) + r in float32 = attn + r, correctly rounded
        t.deepEqual(after, before.map((x, i) => f32(a[i]! + x)), `layer ${l} position ${p}: residPost = residIn + attnOut exactly`);
        const diff = maxAbsDiff(sub(after, before), a);
        t.true(diff <= 1e-6 * maxAbs(after), `layer ${l} position ${p}: hidden_states[l+1] − hidden_states[l] = attention update (${diff})`);
      } else {
        t.deepEqual(after, before.map((x, i) => f32(f32(a[i]! + m[i]!) + x)), `layer ${l} position ${p}: ungated: attn + mlp + r`);
      }
    }
  }
});

test.serial('gptj: MLP zero_preactivation makes the MLP share exactly the fc_out bias', async (t) => {
  const h = await harness(GPTJ, { knockout: false, logits: false, gates: { mlp: 'zero_preactivation' }, hiddenStates: true },
    (x) => x.perLayer.flatMap((Lx) => [Lx.attnOut, Lx.mlpOut]));
  const gated = [[0, 0, 1, 0], [0, 0, 4, 0], [0, 3, 7, 0], [0, L - 1, 0, 0]] as [number, number, number, number][];
  const out = await h.run([A], { dissect_gate_mlp: gateTensor(1, L, n, gated) });
  const hs = numbers(out.dissect_hidden_states!);
  for (let l = 0; l < L; l++) {
    const bias = Array.from(ref.vector(s.perLayer[l]!.mlpProj.bias!));
    const mlp = numbers(out[s.perLayer[l]!.mlpOut]!);
    const attn = numbers(out[s.perLayer[l]!.attnOut]!);
    for (let p = 0; p < n; p++) {
      const m = mlp.slice(p * d, (p + 1) * d);
      if (gated.some(([, gl, gp]) => gl === l && gp === p)) {
        t.deepEqual(m, bias, `layer ${l} position ${p}: the MLP share is the fc_out bias, exactly`);
        const after = vec(hs, hsDims(1), 0, l + 1, p);
        const before = vec(hs, hsDims(1), 0, l, p);
        t.deepEqual(after, before.map((x, i) => f32(f32(attn[p * d + i]! + bias[i]!) + x)), `layer ${l} position ${p}: residIn + attn + bias`);
      } else {
        t.notDeepEqual(m, bias);
      }
    }
  }
});

test.serial('gptj: attention zero_update leaves exactly the residual plus the MLP update (= the JS MLP of the block input)', async (t) => {
  const h = await harness(GPTJ, { knockout: false, logits: false, gates: { attention: 'zero_update' }, hiddenStates: true },
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
    t.deepEqual(after, before.map((x, i) => f32(m[i]! + x)), `layer ${l}: residPost = residIn + mlpOut exactly`);
    const expected = mlpUpdate(ref, l, before); // ln_1 (residMid = residIn) → fc_in → gelu → fc_out, in JS
    const diff = maxAbsDiff(sub(after, before), expected);
    t.true(diff <= 1e-5 * maxAbs(after), `layer ${l}: update vs JS MLP(ln_1(block input)): ${diff}`);
    // gate 0.5 halves the attention share only
    const half = sub(vec(hs, hsDims(2), 1, l + 1, p), vec(hs, hsDims(2), 1, l, p));
    const want = attn.slice((n + p) * d, (n + p + 1) * d).map((a, i) => 0.5 * a + mlp[(n + p) * d + i]!);
    t.true(maxAbsDiff(half, want) <= 1e-6 * maxAbs(vec(hs, hsDims(2), 1, l + 1, p)), `layer ${l}: gate 0.5`);
    // upstream of the gate nothing changes
    for (let j = 0; j <= l; j++) for (let q = 0; q < n; q++) t.deepEqual(vec(hs, hsDims(2), 0, j, q), vec(clean, hsDims(1), 0, j, q));
  }
  // both gates 0 in block 0 everywhere: the block is the identity
  const both = await harness(GPTJ, { knockout: false, logits: false, gates: { attention: 'zero_update', mlp: 'zero_update' }, hiddenStates: true });
  const all = Array.from({ length: n }, (_, p) => [0, 0, p, 0] as [number, number, number, number]);
  const hs = numbers((await both.run([A], { dissect_gate_attention: gateTensor(1, L, n, all), dissect_gate_mlp: gateTensor(1, L, n, all) })).dissect_hidden_states!);
  t.deepEqual(hs.slice(at(hsDims(1), 0, 1), at(hsDims(1), 0, 2)), hs.slice(0, at(hsDims(1), 0, 1)));
});

// ---- patching and hidden states ----

test.serial('gptj: patch replaces the block input on both paths (ln_1 and residual); hidden states 0..L', async (t) => {
  const h = await harness(GPTJ, { knockout: false, logits: true, patch: true, hiddenStates: true });
  const cleanA = await h.run([A]);
  const cleanB = await h.run([BP]);
  const hsA = numbers(cleanA.dissect_hidden_states!);
  // hidden_states[0] = wte[id]; hidden_states[L] through ln_f and the LM head (with bias) = the logits
  const E = ref.matrix(s.embedding.weight);
  const fn = ref.norm(s.finalNorm.input);
  const U = ref.linearIo({ weight: s.unembedding.weight, op: s.unembedding.op, layout: 'io' });
  const ub = ref.vector(s.unembedding.bias!);
  const logitsA = numbers(cleanA[s.logits]!);
  for (let p = 0; p < n; p++) {
    t.deepEqual(vec(hsA, hsDims(1), 0, 0, p), Array.from(E.data.slice(A[p]! * d, (A[p]! + 1) * d)), `hidden_states[0][${p}] = wte row`);
    const z = vecMat(layerNorm(vec(hsA, hsDims(1), 0, L, p), fn), U, ub);
    t.true(maxAbsDiff(z, logitsA.slice(p * V, (p + 1) * V)) <= 1e-5 * maxAbs(z), `position ${p}: ln_f(hidden_states[L]) · W + b = logits`);
  }
  for (let l = 0; l < L; l++) {
    // every position of block l's input from B: from then on, B's run exactly
    const out = await h.run([A], {
      dissect_patch_layer: int64([l], [1]), dissect_patch_mask: bool(new Uint8Array(n).fill(1), [1, n]),
      dissect_patch_values: sameDtype(cleanB.dissect_hidden_states!, [1, n, d], at(hsDims(1), 0, l)),
    });
    t.deepEqual(numbers(out[s.logits]!), numbers(cleanB[s.logits]!), `layer ${l}: patched run = B's run`);
    const hs = numbers(out.dissect_hidden_states!);
    t.deepEqual(hs.slice(at(hsDims(1), 0, l)), numbers(cleanB.dissect_hidden_states!).slice(at(hsDims(1), 0, l)));
    t.deepEqual(hs.slice(0, at(hsDims(1), 0, l)), hsA.slice(0, at(hsDims(1), 0, l)), 'below the patch: A');
  }
  // patching only the residual path would not give B's numbers: check the norm path is patched too, at the last block
  const l = L - 1;
  const tapNames = [s.perLayer[l]!.attnOut, s.perLayer[l]!.mlpOut];
  const built = buildVariant(GPTJ, { knockout: false, logits: false, patch: true, hiddenStates: true });
  const v = await session(tap(built.bytes, tapNames, 1));
  const feeds = { ...feedsFor(s, [A]), ...neutralFeeds(s, built.manifest.inputs, 1, n, [n - 1], [0]) };
  const tB = await v.run({ ...feedsFor(s, [BP]), ...neutralFeeds(s, built.manifest.inputs, 1, n, [n - 1], [0]) });
  const tP = await v.run({
    ...feeds, dissect_patch_layer: int64([l], [1]), dissect_patch_mask: bool(new Uint8Array(n).fill(1), [1, n]),
    dissect_patch_values: sameDtype(tB.dissect_hidden_states!, [1, n, d], at(hsDims(1), 0, l)),
  });
  for (const x of tapNames) t.deepEqual(numbers(tP[x]!), numbers(tB[x]!), `${x}: attention and MLP read the patched input`);
});

// ---- projections ----

const POSITIONS = [[7, 1, 3], [4, 0, 4]];
const P = POSITIONS[0]!.length;
const TARGETS = [121, 229];
const E = ref.matrix(s.embedding.weight);
const fnorm = ref.norm(s.finalNorm.input);
const U = ref.linearIo({ weight: s.unembedding.weight, op: s.unembedding.op, layout: s.unembedding.layout === 'Vd' ? 'oi' : 'io' });
const uBias = ref.vector(s.unembedding.bias!);
const project = (x: readonly number[], via: ProjectionRequest['via']): number[] =>
  via === 'embedding' ? vecMatT(x, E) : vecMat(layerNorm(x, fnorm), U, uBias);
const SETUP: ProjectionSetup = { sites: s, ref, L, n, d, dh, H, positions: POSITIONS, targets: TARGETS, project, rel: 1e-4 };


async function compareProjections(t: ExecutionContext, projections: ProjectionRequest[]): Promise<Record<string, ort.Tensor>> {
  const h = await harness(GPTJ, { knockout: false, logits: true, hiddenStates: true, projections },
    (x: ModelSites) => x.perLayer.flatMap((Lx) => [Lx.attnOut, Lx.mlpOut, Lx.contextMerged]));
  const out = await h.run([A, BP], { dissect_proj_positions: int64(POSITIONS.flat(), [2, P]), dissect_target: int64(TARGETS, [2]) });
  checkProjections(t, out, out, projections, SETUP);
  return out;
}

test.serial('gptj: projections of every site match a JS reference (wte with 272 rows; ln_f + LM head with its bias; vocabLimit 264)', async (t) => {
  t.is(E.rows, 272);
  t.true(maxAbs(Array.from(uBias)) > 0, 'the LM head bias is not zero (it matters)');
  const blocks = Array.from({ length: L }, (_, l) => l);
  for (const limit of [TOKENS, V]) {
    const all: ProjectionRequest[] = [
      { site: 'hidden', layers: [...blocks, L], via: 'embedding', k: 10, vocabLimit: limit },
      { site: 'attention', layers: blocks, via: 'final_norm_unembedding', k: 8, vocabLimit: limit },
      { site: 'mlp', layers: [0, 2, 5], via: 'embedding', k: 5, vocabLimit: limit },
      { site: 'heads', layers: [1, 4], via: 'final_norm_unembedding', k: 6, vocabLimit: limit },
    ];
    await compareProjections(t, all);
    const flipped = all.map((p) => ({ ...p, via: p.via === 'embedding' ? 'final_norm_unembedding' as const : 'embedding' as const }));
    const out = await compareProjections(t, flipped);
    if (limit === V) {
      // hidden_states[L] through ln_f and the LM head is the model's own next-token distribution
      const logits = numbers(out[s.logits]!);
      const top = numbers(out.dissect_proj_hidden_ids!);
      for (let b = 0; b < 2; b++) {
        for (let pi = 0; pi < P; pi++) {
          const p = POSITIONS[b]![pi]!;
          t.is(top[at([2, L + 1, P, 10], b, L, pi, 0)], argmax(logits.slice((b * n + p) * V, (b * n + p + 1) * V)));
        }
      }
    }
  }
});

test.serial('gptj: per-head shares (out_proj rows of the head, no bias) sum to the attention update', async (t) => {
  await checkHeadSharesSum(t, GPTJ, [A, BP], SETUP);
});

// ---- head mappings ----

test.serial('gptj: head mappings read the separate v projection', async (t) => {
  const layer = 2;
  const head = 1;
  const Lx = s.perLayer[layer]!;
  const g = buildHeadMappingGraph(GPTJ, { layer, head, side: 'embedding', k: 5, chunk: 100, vocabLimit: TOKENS });
  t.is(g.vocab, V);
  const v = await session(g.bytes);
  const out = await v.run({ row_start: new ort.Tensor('int64', BigInt64Array.from([0n]), []) });
  const I = numbers(out.ids!);
  const S = numbers(out.scores!);
  const wv = ref.linearIo(Lx.vProj);
  const wo = ref.linearIo(Lx.attnProj);
  for (const row of [0, 17, 99]) {
    const e = Array.from(E.data.slice(row * d, (row + 1) * d));
    const xv = vecMat(e, wv).slice(head * dh, (head + 1) * dh);
    const xo = vecMat(xv, { rows: dh, cols: d, data: wo.data.slice(head * dh * d, (head + 1) * dh * d) });
    const r = topK(vecMatT(xo, E), 5, 0, TOKENS);
    checkRow(t, { ids: I.slice(row * 5, row * 5 + 5), scores: S.slice(row * 5, row * 5 + 5), rank: r.rank }, r, 0, 1e-4, `row ${row}`);
  }
});
