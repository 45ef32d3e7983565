import test from 'ava';
import { maxAbs, maxAbsDiff, numbers, session } from './helpers.js';
import {
  ModelRef, at, feedsFor, gateTensor, harness, layerNorm, mlpUpdate, testModels, vecMat,
} from './reference.js';

const A = [0, 9, 9, 33, 12, 1, 63];
const B = [5, 17, 42, 3, 60, 2, 8];
const n = A.length;

/** |a − b| ≤ rel · scale (default max |b|; differences of residuals pass the residual's size), with a tiny floor. */
function close(a: readonly number[], b: readonly number[], rel: number, scale = maxAbs(b)): { ok: boolean; diff: number; tol: number } {
  const tol = rel * Math.max(scale, 1e-3);
  const diff = maxAbsDiff(a, b);
  return { ok: diff <= tol, diff, tol };
}

for (const { name, path } of testModels()) {
  const ref = new ModelRef(path);
  const fp16 = ref.fp16;
  const rel = fp16 ? 1e-2 : 1e-5;
  const { layers: L, dModel: d } = ref.sites;
  const hsDims = (b: number): number[] => [b, L + 1, n, d];
  const vec = (xs: number[], dims: number[], ...idx: number[]): number[] => xs.slice(at(dims, ...idx), at(dims, ...idx) + d);
  const sub = (a: number[], b: number[]): number[] => a.map((x, i) => x - b[i]!);

  test.serial(`${name}: gates of 1 and no patch leave the logits unchanged; hidden states are the embedding sum … the raw last residual`, async (t) => {
    const original = await session(path);
    const base = numbers((await original.run(feedsFor(ref.sites, [A, B])))[ref.sites.logits]!);
    for (const mlp of ['zero_update', 'zero_preactivation'] as const) {
      const h = await harness(path, { knockout: 'replace_half_min', logits: true, gates: { attention: 'zero_update', mlp }, patch: true, hiddenStates: true });
      const out = await h.run([A, B]);
      const logits = numbers(out[ref.sites.logits]!);
      const c = close(logits, base, 1e-6);
      t.true(c.ok, `${mlp}: |Δlogits| ${c.diff} > ${c.tol}`);
      t.log(`${mlp}: gates of 1: max |Δlogit| = ${c.diff}${c.diff === 0 ? ' (bit-identical)' : ''}`);
      const hs = numbers(out.dissect_hidden_states!);
      t.deepEqual(out.dissect_hidden_states!.dims, hsDims(2));
      t.is(out.dissect_hidden_states!.type, fp16 ? 'float16' : 'float32');
      // hidden_states[0] = wte[id] + wpe[position]
      const wte = ref.matrix(ref.sites.embedding.weight);
      const wpe = ref.matrix(ref.sites.embedding.positionWeight!);
      for (const [b, ids] of [A, B].entries()) {
        for (let p = 0; p < n; p++) {
          const emb = Array.from({ length: d }, (_, i) => wte.data[ids[p]! * d + i]! + wpe.data[p * d + i]!);
          const e = close(vec(hs, hsDims(2), b, 0, p), emb, fp16 ? 2e-3 : 1e-6);
          t.true(e.ok, `row ${b} position ${p}: hidden_states[0] vs wte + wpe: ${e.diff}`);
        }
      }
      // hidden_states[L] is before the final norm: ln_f(hidden_states[L]) · W_U (+ b) = logits
      const fn = ref.norm(ref.sites.finalNorm.input);
      const u = ref.sites.unembedding;
      const U = ref.linearIo({ weight: u.weight, op: u.op, layout: u.layout === 'Vd' ? 'oi' : 'io' });
      const V = ref.sites.vocab;
      for (let b = 0; b < 2; b++) {
        for (let p = 0; p < n; p++) {
          const z = vecMat(layerNorm(vec(hs, hsDims(2), b, L, p), fn), U, u.bias ? ref.vector(u.bias) : undefined);
          const e = close(z, logits.slice((b * n + p) * V, (b * n + p + 1) * V), fp16 ? 2e-2 : 1e-5);
          t.true(e.ok, `row ${b} position ${p}: LM head on hidden_states[L]: ${e.diff}`);
        }
      }
    }
  });

  test.serial(`${name}: attention zero_update cancels the attention update at the gated (layer, position) only`, async (t) => {
    const h = await harness(path, { knockout: false, logits: true, gates: { attention: 'zero_update' }, hiddenStates: true },
      (s) => s.perLayer.flatMap((Lx) => [Lx.attnOut, Lx.mlpOut]));
    const clean = await h.run([A, A]);
    for (let l = 0; l < L; l++) {
      const p = 3;
      // row 0: gate 0 at (l, p); row 1: gate 0.5 at (l, p)
      const out = await h.run([A, A], { dissect_gate_attention: gateTensor(2, L, n, [[0, l, p, 0], [1, l, p, 0.5]]) });
      const hs = numbers(out.dissect_hidden_states!);
      const hs0 = numbers(clean.dissect_hidden_states!);
      const attn = numbers(out[h.sites.perLayer[l]!.attnOut]!);
      const mlp = numbers(out[h.sites.perLayer[l]!.mlpOut]!);
      const x = (b: number, j: number, q: number) => vec(hs, hsDims(2), b, j, q);
      const site = (xs: number[], b: number, q: number) => xs.slice((b * n + q) * d, (b * n + q + 1) * d);
      // gate 0: the block adds only its MLP update, computed (independently, in JS) from the un-attended residual
      const upd = sub(x(0, l + 1, p), x(0, l, p));
      const expected = mlpUpdate(ref, l, x(0, l, p));
      let c = close(upd, expected, rel);
      t.true(c.ok, `layer ${l}: update at the gated position vs JS MLP(residual): ${c.diff} > ${c.tol}`);
      c = close(upd, site(mlp, 0, p), fp16 ? 2e-3 : 1e-6, maxAbs(x(0, l + 1, p)));
      t.true(c.ok, `layer ${l}: update vs the graph's MLP update: ${c.diff}`);
      // gate 0.5: half the attention update
      const half = sub(x(1, l + 1, p), x(1, l, p));
      c = close(half, site(attn, 1, p).map((a, i) => 0.5 * a + site(mlp, 1, p)[i]!), fp16 ? 2e-3 : 1e-6, maxAbs(x(1, l + 1, p)));
      t.true(c.ok, `layer ${l}: gate 0.5: ${c.diff}`);
      // other positions of the gated layer get both updates; earlier positions and layers are clean
      for (let q = 0; q < n; q++) {
        if (q === p) continue;
        c = close(sub(x(0, l + 1, q), x(0, l, q)), site(attn, 0, q).map((a, i) => a + site(mlp, 0, q)[i]!), fp16 ? 2e-3 : 1e-6, maxAbs(x(0, l + 1, q)));
        t.true(c.ok, `layer ${l} position ${q}: ungated update`);
      }
      for (let j = 0; j <= L; j++) {
        for (let q = 0; q < n; q++) {
          if (j <= l || q < p) t.deepEqual(x(0, j, q), vec(hs0, hsDims(2), 0, j, q), `hidden_states[${j}][${q}] is clean`);
        }
      }
      t.notDeepEqual(x(0, L, p), vec(hs0, hsDims(2), 0, L, p), 'the gated position changes downstream');
    }
  });

  test.serial(`${name}: MLP zero_update leaves the residual after attention (residPost = residMid)`, async (t) => {
    const h = await harness(path, { knockout: false, logits: false, gates: { mlp: 'zero_update' }, hiddenStates: true },
      (s) => s.perLayer.flatMap((Lx) => [Lx.residMid, Lx.attnOut]));
    for (let l = 0; l < L; l++) {
      const out = await h.run([A], { dissect_gate_mlp: gateTensor(1, L, n, [[0, l, 2, 0], [0, l, 5, 0]]) });
      const hs = numbers(out.dissect_hidden_states!);
      const mid = numbers(out[h.sites.perLayer[l]!.residMid]!);
      const attn = numbers(out[h.sites.perLayer[l]!.attnOut]!);
      for (const p of [2, 5]) {
        t.deepEqual(vec(hs, hsDims(1), 0, l + 1, p), mid.slice(p * d, (p + 1) * d), `layer ${l} position ${p}: residPost = residMid exactly`);
        const c = close(sub(vec(hs, hsDims(1), 0, l + 1, p), vec(hs, hsDims(1), 0, l, p)), attn.slice(p * d, (p + 1) * d), fp16 ? 2e-3 : 1e-6, maxAbs(vec(hs, hsDims(1), 0, l + 1, p)));
        t.true(c.ok, `layer ${l} position ${p}: the update is the attention update alone (${c.diff})`);
      }
      t.notDeepEqual(vec(hs, hsDims(1), 0, l + 1, 3), mid.slice(3 * d, 4 * d), 'ungated positions get the MLP update');
    }
  });

  test.serial(`${name}: MLP zero_preactivation makes the MLP write exactly its output bias`, async (t) => {
    const h = await harness(path, { knockout: false, logits: false, gates: { mlp: 'zero_preactivation' }, hiddenStates: true },
      (s) => s.perLayer.flatMap((Lx) => [Lx.mlpOut, Lx.residMid]));
    const gated = [[0, 0, 1, 0], [0, 0, 4, 0], [0, L - 1, 6, 0]] as [number, number, number, number][];
    const out = await h.run([B], { dissect_gate_mlp: gateTensor(1, L, n, gated) });
    const hs = numbers(out.dissect_hidden_states!);
    for (let l = 0; l < L; l++) {
      const bias = Array.from(ref.vector(h.sites.perLayer[l]!.mlpProj.bias!));
      const mlp = numbers(out[h.sites.perLayer[l]!.mlpOut]!);
      const mid = numbers(out[h.sites.perLayer[l]!.residMid]!);
      for (let p = 0; p < n; p++) {
        const isGated = gated.some(([, gl, gp]) => gl === l && gp === p);
        const m = mlp.slice(p * d, (p + 1) * d);
        if (isGated) {
          t.deepEqual(m, bias, `layer ${l} position ${p}: the MLP update is the c_proj bias, exactly`);
          const post = vec(hs, hsDims(1), 0, l + 1, p);
          const c = close(sub(post, mid.slice(p * d, (p + 1) * d)), bias, fp16 ? 1e-3 : 1e-6, maxAbs(post)); // fp16: rounding of the sum
          t.true(c.ok, `layer ${l} position ${p}: residPost − residMid = bias (${c.diff})`);
        } else {
          t.notDeepEqual(m, bias);
        }
      }
    }
    // a gated row next to an ungated one: the ungated row is the clean run
    const clean = numbers((await h.run([B])).dissect_hidden_states!);
    const both = numbers((await h.run([B, B], { dissect_gate_mlp: gateTensor(2, L, n, gated) })).dissect_hidden_states!);
    t.deepEqual(both.slice(hs.length), clean);
    t.deepEqual(both.slice(0, hs.length), hs);
  });

  test.serial(`${name}: gates in the model dtype reach fp16 graphs through a Cast`, async (t) => {
    const h = await harness(path, { knockout: false, logits: false, gates: { attention: 'zero_update', mlp: 'zero_update' }, hiddenStates: true });
    const casts = h.manifest.dtype === 'float16';
    const out = await h.run([A], {
      dissect_gate_attention: gateTensor(1, L, n, Array.from({ length: n }, (_, p) => [0, 0, p, 0] as [number, number, number, number])),
      dissect_gate_mlp: gateTensor(1, L, n, Array.from({ length: n }, (_, p) => [0, 0, p, 0] as [number, number, number, number])),
    });
    // block 0 fully cancelled: hidden_states[1] = hidden_states[0]
    const hs = numbers(out.dissect_hidden_states!);
    t.deepEqual(hs.slice(at(hsDims(1), 0, 1), at(hsDims(1), 0, 2)), hs.slice(0, at(hsDims(1), 0, 1)));
    t.is(out.dissect_hidden_states!.type, casts ? 'float16' : 'float32');
  });
}
