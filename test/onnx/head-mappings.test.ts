import test from 'ava';
import ort from 'onnxruntime-node';
import { UserError } from '../../src/errors.js';
import { buildHeadMappingGraph, type HeadMappingRequest } from '../../src/onnx/head-mappings.js';
import { decodeModel } from '../../src/onnx/proto.js';
import { writeSkeleton } from '../../bench/skeleton.js';
import { fixturePath, numbers, session, tempDir } from './helpers.js';
import { ModelRef, checkRow, skeletonModel, topK, transpose, type Matrix } from './reference.js';

/** A · B for row-major matrices. */
function matmul(a: Matrix, b: Matrix): Matrix {
  const out = new Float64Array(a.rows * b.cols);
  for (let i = 0; i < a.rows; i++) {
    for (let k = 0; k < a.cols; k++) {
      const x = a.data[i * a.cols + k]!;
      for (let j = 0; j < b.cols; j++) out[i * b.cols + j]! += x * b.data[k * b.cols + j]!;
    }
  }
  return { rows: a.rows, cols: b.cols, data: out };
}

function columns(m: Matrix, from: number, to: number): Matrix {
  const cols = to - from;
  const data = new Float64Array(m.rows * cols);
  for (let i = 0; i < m.rows; i++) for (let j = 0; j < cols; j++) data[i * cols + j] = m.data[i * m.cols + from + j]!;
  return { rows: m.rows, cols, data };
}

function rowsOf(m: Matrix, from: number, to: number): Matrix {
  return { rows: to - from, cols: m.cols, data: m.data.slice(from * m.cols, to * m.cols) };
}

/** M = E · W_V^h · W_O^h · Eᵀ in JS. */
function reference(ref: ModelRef, layer: number, head: number, side: 'embedding' | 'unembedding'): Matrix {
  const s = ref.sites;
  const L = s.perLayer[layer]!;
  const dh = s.dHead;
  const v0 = L.vProj.offset;
  const E = side === 'embedding' ? ref.matrix(s.embedding.weight)
    : s.unembedding.layout === 'Vd' ? ref.matrix(s.unembedding.weight) : transpose(ref.matrix(s.unembedding.weight));
  const vh = Math.floor(head / (s.heads / (s.kvHeads ?? s.heads))); // grouped-query attention
  const wv = columns(ref.linearIo(L.vProj), v0 + vh * dh, v0 + (vh + 1) * dh);
  const wo = rowsOf(ref.linearIo(L.attnProj), head * dh, (head + 1) * dh);
  return matmul(matmul(matmul(E, wv), wo), transpose(E));
}

async function scan(path: string, req: HeadMappingRequest): Promise<{ ids: number[][]; scores: number[][]; vocab: number }> {
  const g = buildHeadMappingGraph(path, req);
  const s = await session(g.bytes, g.sessionConfig);
  const ids: number[][] = [];
  const scores: number[][] = [];
  for (let start = 0; start < g.vocab; start += req.chunk) {
    const out = await s.run({ row_start: new ort.Tensor('int64', BigInt64Array.from([BigInt(start)]), []) });
    const rows = Math.min(req.chunk, g.vocab - start);
    if (out.ids!.dims[0] !== rows || out.ids!.dims[1] !== req.k) throw new Error(`chunk at ${start}: dims ${out.ids!.dims.join('x')}`);
    const I = numbers(out.ids!);
    const S = numbers(out.scores!);
    for (let r = 0; r < rows; r++) {
      ids.push(I.slice(r * req.k, (r + 1) * req.k));
      scores.push(S.slice(r * req.k, (r + 1) * req.k));
    }
  }
  return { ids, scores, vocab: g.vocab };
}

for (const [name, path] of [
  ['gpt2-opset14.onnx', fixturePath('gpt2-opset14.onnx')], ['gpt2-fp16.onnx', fixturePath('gpt2-fp16.onnx')],
  ['llama-opset14.onnx (grouped-query)', fixturePath('llama-opset14.onnx')], ['skeleton', skeletonModel()],
] as const) {
  test.serial(`${name}: head mappings scanned in chunks match a JS matmul`, async (t) => {
    const ref = new ModelRef(path);
    const rel = ref.fp16 ? 2e-2 : 1e-4;
    const L = ref.sites.layers;
    const H = ref.sites.heads;
    for (const [layer, head, side] of [[0, 0, 'embedding'], [L - 1, H - 1, 'embedding'], [L - 1, 1, 'unembedding']] as const) {
      const k = 5;
      const got = await scan(path, { layer, head, side, k, chunk: 10 });
      const M = reference(ref, layer, head, side);
      t.is(got.vocab, M.rows);
      for (let r = 0; r < M.rows; r++) {
        const row = Array.from(M.data.slice(r * M.cols, (r + 1) * M.cols));
        const expected = topK(row, k, 0);
        checkRow(t, { ids: got.ids[r]!, scores: got.scores[r]!, rank: expected.rank }, expected, 0, rel, `layer ${layer} head ${head} ${side} row ${r}`);
      }
    }
    // vocabLimit: ids above it never appear
    const limited = await scan(path, { layer: 0, head: 1, side: 'embedding', k: 3, chunk: 64, vocabLimit: 20 });
    t.true(limited.ids.flat().every((id) => id < 20));
    // past the last row: an empty chunk, no crash
    const g = buildHeadMappingGraph(path, { layer: 0, head: 0, side: 'embedding', k: 3, chunk: 8 });
    const past = await (await session(g.bytes, g.sessionConfig)).run({ row_start: new ort.Tensor('int64', BigInt64Array.from([BigInt(g.vocab)]), []) });
    t.deepEqual(past.ids!.dims, [0, 3]);
  });
}

test.serial('a tied model gives the same mappings on the embedding and unembedding sides', async (t) => {
  const path = fixturePath('gpt2-opset14.onnx');
  const a = await scan(path, { layer: 1, head: 2, side: 'embedding', k: 4, chunk: 16 });
  const b = await scan(path, { layer: 1, head: 2, side: 'unembedding', k: 4, chunk: 16 });
  const diff = Math.max(...a.scores.flat().map((x, i) => Math.abs(x - b.scores.flat()[i]!)));
  t.true(diff < 1e-4, `max |Δscore| ${diff}`);
});

test.serial('with external weights the graph references them (no copy) and gives the embedded numbers', async (t) => {
  const shape = { layers: 3, heads: 2, dModel: 16, vocab: 64, positions: 16, dMlp: 64 };
  const dir = tempDir('head-mapping-external');
  const external = writeSkeleton(dir, shape, { lazy: false, seed: 11 });
  const req: HeadMappingRequest = { layer: 2, head: 1, side: 'unembedding', k: 6, chunk: 25 };
  const g = buildHeadMappingGraph(external, req);
  t.truthy(g.sessionConfig);
  const inits = decodeModel(g.bytes).graph!.initializer!;
  const big = inits.filter((i) => i.dataLocation === 1);
  t.is(big.length, 3, 'the vocabulary matrix, the qkv weight and the output projection stay external');
  t.true(g.bytes.length < 4096, `graph of ${g.bytes.length} bytes`);
  const a = await scan(external, req);
  const b = await scan(skeletonModel(), req);
  t.deepEqual(a, b);
});

test('bad head-mapping requests are refused', (t) => {
  const path = fixturePath('gpt2-opset14.onnx');
  const ok: HeadMappingRequest = { layer: 0, head: 0, side: 'embedding', k: 3, chunk: 8 };
  for (const [change, message] of [
    [{ layer: 2 }, /layer 2 is outside 0\.\.1/], [{ head: 4 }, /head 4 is outside 0\.\.3/], [{ chunk: 0 }, /chunk 0/],
    [{ k: 65 }, /k = 65 must be in 1\.\.64/], [{ k: 9, vocabLimit: 8 }, /k = 9 must be in 1\.\.8/],
  ] as const) {
    t.throws(() => buildHeadMappingGraph(path, { ...ok, ...change }), { instanceOf: UserError, message });
  }
});
