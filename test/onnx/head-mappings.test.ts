import test from 'ava';
import ort from 'onnxruntime-node';
import { join } from 'node:path';
import { UserError } from '../../src/errors.js';
import {
  buildHeadMappingGraph, buildTokenNormaliserGraph, type HeadMappingGraph, type HeadMappingRequest, type TokenNormaliserRequest,
  type TokenNormalisers, type VocabularySide,
} from '../../src/onnx/head-mappings.js';
import { decodeModel } from '../../src/onnx/proto.js';
import { writeSkeleton } from '../../bench/skeleton.js';
import { REPO, fixturePath, maxAbsDiff, numbers, session, tempDir } from './helpers.js';
import { ModelRef, checkRow, skeletonModel, topK, transpose, type Matrix } from './reference.js';

const TINY_GPTJ = join(REPO, 'generated', 'tiny-gptj', 'model.onnx');

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

/** S as [V, d]. */
function vocabMatrix(ref: ModelRef, side: VocabularySide): Matrix {
  const s = ref.sites;
  if (side === 'embedding') return ref.matrix(s.embedding.weight);
  return s.unembedding.layout === 'Vd' ? ref.matrix(s.unembedding.weight) : transpose(ref.matrix(s.unembedding.weight));
}

/** W_V^h [d, dh] (of the value head query head h reads) and W_O^h [dh, d] of block `layer`. */
function headWeights(ref: ModelRef, layer: number, head: number): { wv: Matrix; wo: Matrix } {
  const s = ref.sites;
  const L = s.perLayer[layer]!;
  const dh = s.dHead;
  const v0 = L.vProj.offset;
  const vh = Math.floor(head / (s.heads / (s.kvHeads ?? s.heads))); // grouped-query attention
  return {
    wv: columns(ref.linearIo(L.vProj), v0 + vh * dh, v0 + (vh + 1) * dh),
    wo: rowsOf(ref.linearIo(L.attnProj), head * dh, (head + 1) * dh),
  };
}

/** M = S · W_V^h · W_O^h · Sᵀ in JS, entry [s, t] divided by n_in[s] · n_out[t] when normalisers are given. */
function reference(ref: ModelRef, layer: number, head: number, side: VocabularySide, normalisers?: TokenNormalisers): Matrix {
  const S = vocabMatrix(ref, side);
  const { wv, wo } = headWeights(ref, layer, head);
  const m = matmul(matmul(matmul(S, wv), wo), transpose(S));
  if (normalisers) m.data.forEach((x, i) => { m.data[i] = x / (normalisers.input[Math.floor(i / m.cols)]! * normalisers.output[i % m.cols]!); });
  return m;
}

/** n_in and n_out by their definition: per token, the mean |entry| over every (block, query head, head unit), + 1e-9. */
function normalisersReference(ref: ModelRef, side: VocabularySide): { input: number[]; output: number[] } {
  const S = vocabMatrix(ref, side);
  const input = new Array<number>(S.rows).fill(0);
  const output = new Array<number>(S.rows).fill(0);
  const heads = ref.sites.layers * ref.sites.heads;
  const addMeanAbs = (into: number[], m: Matrix, perToken: 'rows' | 'cols'): void => {
    const count = heads * (perToken === 'rows' ? m.cols : m.rows);
    m.data.forEach((x, i) => { into[perToken === 'rows' ? Math.floor(i / m.cols) : i % m.cols]! += Math.abs(x) / count; });
  };
  for (let layer = 0; layer < ref.sites.layers; layer++) {
    for (let head = 0; head < ref.sites.heads; head++) {
      const { wv, wo } = headWeights(ref, layer, head);
      addMeanAbs(input, matmul(S, wv), 'rows');
      addMeanAbs(output, matmul(wo, transpose(S)), 'cols');
    }
  }
  return { input: input.map((x) => x + 1e-9), output: output.map((x) => x + 1e-9) };
}

/** Runs `g` on every chunk of rows, and once past the last row. */
async function runChunks(g: HeadMappingGraph, chunk: number): Promise<{ chunks: Record<string, ort.Tensor>[]; past: Record<string, ort.Tensor> }> {
  const s = await session(g.bytes, g.sessionConfig);
  const run = (start: number) => s.run({ row_start: new ort.Tensor('int64', BigInt64Array.from([BigInt(start)]), []) });
  const chunks: Record<string, ort.Tensor>[] = [];
  for (let start = 0; start < g.vocab; start += chunk) chunks.push(await run(start));
  return { chunks, past: await run(g.vocab) };
}

async function scan(path: string, req: HeadMappingRequest): Promise<{ ids: number[][]; scores: number[][]; vocab: number }> {
  const g = buildHeadMappingGraph(path, req);
  const ids: number[][] = [];
  const scores: number[][] = [];
  (await runChunks(g, req.chunk)).chunks.forEach((out, c) => {
    const rows = Math.min(req.chunk, g.vocab - c * req.chunk);
    if (out.ids!.dims[0] !== rows || out.ids!.dims[1] !== req.k) throw new Error(`chunk ${c}: dims ${out.ids!.dims.join('x')}`);
    const I = numbers(out.ids!);
    const S = numbers(out.scores!);
    for (let r = 0; r < rows; r++) {
      ids.push(I.slice(r * req.k, (r + 1) * req.k));
      scores.push(S.slice(r * req.k, (r + 1) * req.k));
    }
  });
  return { ids, scores, vocab: g.vocab };
}

/** n_in and n_out of every token from the normaliser graph, and the shape of its output past the last row. */
async function scanNormalisers(path: string, req: TokenNormaliserRequest): Promise<{ input: number[]; output: number[]; pastDims: readonly number[] }> {
  const { chunks, past } = await runChunks(buildTokenNormaliserGraph(path, req), req.chunk);
  return { input: chunks.flatMap((c) => numbers(c.n_in!)), output: chunks.flatMap((c) => numbers(c.n_out!)), pastDims: past.n_in!.dims };
}

const relDiff = (got: readonly number[], want: readonly number[]): number => Math.max(...got.map((x, i) => Math.abs(x - want[i]!) / Math.abs(want[i]!)));

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

for (const [name, path, sides] of [
  ['gpt2-opset14.onnx', fixturePath('gpt2-opset14.onnx'), ['unembedding']],
  ['gpt2-fp16.onnx', fixturePath('gpt2-fp16.onnx'), ['unembedding']],
  ['llama-opset14.onnx (grouped-query)', fixturePath('llama-opset14.onnx'), ['embedding', 'unembedding']],
  ['tiny-gptj (untied)', TINY_GPTJ, ['embedding', 'unembedding']],
] as const) {
  test.serial(`${name}: the token-frequency normalisers, scanned in chunks, match a JS loop over every head`, async (t) => {
    const ref = new ModelRef(path);
    const rel = ref.fp16 ? 2e-2 : 1e-5;
    for (const side of sides) {
      const got = await scanNormalisers(path, { side, chunk: 10 });
      const want = normalisersReference(ref, side);
      t.is(got.input.length, vocabMatrix(ref, side).rows);
      t.true(relDiff(got.input, want.input) <= rel, `${side} n_in: max relative difference ${relDiff(got.input, want.input)}`);
      t.true(relDiff(got.output, want.output) <= rel, `${side} n_out: max relative difference ${relDiff(got.output, want.output)}`);
      t.deepEqual(got.pastDims, [0]);
    }
  });
}

test.serial('tiny-gptj: its untied sides give different normalisers', async (t) => {
  const embedding = await scanNormalisers(TINY_GPTJ, { side: 'embedding', chunk: 64 });
  const unembedding = await scanNormalisers(TINY_GPTJ, { side: 'unembedding', chunk: 64 });
  t.true(maxAbsDiff(embedding.input, unembedding.input) > 1e-3 * Math.max(...embedding.input));
});

for (const [name, path, layer, head, side] of [
  ['llama-opset14.onnx (grouped-query)', fixturePath('llama-opset14.onnx'), 1, 3, 'embedding'],
  ['tiny-gptj (untied)', TINY_GPTJ, 4, 2, 'unembedding'],
] as const) {
  test.serial(`${name}: a normalised head mapping divides entry [s, t] by n_in[s] · n_out[t]`, async (t) => {
    const ref = new ModelRef(path);
    const want = normalisersReference(ref, side);
    const normalisers = { input: Float32Array.from(want.input), output: Float32Array.from(want.output) };
    const k = 5;
    const got = await scan(path, { layer, head, side, k, chunk: 7, normalisers });
    const M = reference(ref, layer, head, side, normalisers);
    const plain = reference(ref, layer, head, side);
    let reordered = 0;
    for (let r = 0; r < M.rows; r++) {
      const row = Array.from(M.data.slice(r * M.cols, (r + 1) * M.cols));
      const expected = topK(row, k, 0);
      checkRow(t, { ids: got.ids[r]!, scores: got.scores[r]!, rank: expected.rank }, expected, 0, 1e-4, `row ${r}`);
      if (topK(Array.from(plain.data.slice(r * M.cols, (r + 1) * M.cols)), k, 0).ids.join() !== expected.ids.join()) reordered++;
    }
    t.true(reordered > M.rows / 2, `the normalisation reorders ${reordered} of ${M.rows} rows' top ${k}`);
  });
}
