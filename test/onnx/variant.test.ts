import test from 'ava';
import ort from 'onnxruntime-node';
import { buildVariant } from '../../src/onnx/compile.js';
import { decodeModel } from '../../src/onnx/proto.js';
import {
  FIXTURE_MODELS, argmax, bool, fixture, fixturePath, int64, lastReal, maxAbs, maxAbsDiff, modelFeeds, numbers, padRows,
  rankOf, session, softmax, type Row,
} from './helpers.js';

const rowsOf = (name: string): Row[] => fixture(name).sequences.map((s) => ({ ids: s.input_ids, mask: s.attention_mask }));

function variantFeeds(name: string, rows: readonly Row[], last: readonly number[], target: readonly number[], layers = 2): Record<string, ort.Tensor> {
  const n = rows[0]!.ids.length;
  return {
    ...modelFeeds(name, rows),
    dissect_knockout: bool(new Uint8Array(rows.length * layers * n * n), [rows.length, layers, 1, n, n]),
    dissect_last_index: int64(last, [rows.length]),
    dissect_target: int64(target, [rows.length]),
  };
}

for (const name of FIXTURE_MODELS) {
  test.serial(`${name}: a variant without intervention reproduces the logits (ORT and torch)`, async (t) => {
    const original = await session(fixturePath(name));
    const variant = await session(buildVariant(fixturePath(name), { knockout: 'replace_half_min', logits: true }).bytes);
    const fp16 = name.includes('fp16');
    for (const [i, seq] of fixture(name).sequences.entries()) {
      const rows = [{ ids: seq.input_ids, mask: seq.attention_mask }];
      const n = seq.input_ids.length;
      const base = numbers((await original.run(modelFeeds(name, rows))).logits!);
      const out = await variant.run(variantFeeds(name, rows, [n - 1], [0]));
      const got = numbers(out.logits!);
      const scale = maxAbs(base);
      t.true(maxAbsDiff(got, base) <= 1e-5 * scale, `${name} seq ${i}: variant vs original ${maxAbsDiff(got, base)}`);
      // torch reference (fp16: PyTorch ran in float32 on fp16-rounded weights, so compare loosely)
      const ref = seq.logits.flat();
      const tol = (fp16 ? 2e-3 : 1e-5) * maxAbs(ref);
      t.true(maxAbsDiff(got, ref) <= tol, `${name} seq ${i}: variant vs torch ${maxAbsDiff(got, ref)} > ${tol}`);
    }
  });
}

for (const name of FIXTURE_MODELS) {
  test.serial(`${name}: reduced outputs equal the values computed from the original logits`, async (t) => {
    const rows = padRows(rowsOf(name));
    const n = rows[0]!.ids.length;
    const V = fixture(name).config.vocab;
    const original = await session(fixturePath(name));
    const base = numbers((await original.run(modelFeeds(name, rows))).logits!);
    const last = rows.map(lastReal);
    const lastLogits = rows.map((_, b) => base.slice((b * n + last[b]!) * V, (b * n + last[b]! + 1) * V));
    // targets: a mid-ranked token, the top-1, token 0
    const byRank = (xs: number[], r: number): number => [...xs.keys()].sort((a, c) => xs[c]! - xs[a]! || a - c)[r]!;
    const target = [byRank(lastLogits[0]!, 3), argmax(lastLogits[1]!), 0];
    for (const fromFull of [true, false]) {
      const { bytes, manifest } = buildVariant(fixturePath(name), { knockout: false, logits: fromFull });
      t.false(manifest.inputs.some((i) => i.name === 'dissect_knockout'));
      t.is(manifest.outputs.some((o) => o.name === 'logits'), fromFull);
      const v = await session(bytes);
      const { dissect_knockout: _, ...feeds } = variantFeeds(name, rows, last, target);
      const out = await v.run(feeds);
      t.false('logits' in out && !fromFull);
      const tol = name.includes('fp16') && !fromFull ? 2e-3 : 1e-6;
      for (let b = 0; b < rows.length; b++) {
        const xs = lastLogits[b]!;
        const p = softmax(xs);
        const what = `${name} fromFull=${fromFull} row ${b}`;
        t.true(Math.abs(numbers(out.dissect_target_prob!)[b]! - p[target[b]!]!) <= tol, `${what}: target prob`);
        t.is(numbers(out.dissect_target_rank!)[b], rankOf(xs, target[b]!), `${what}: rank`);
        t.is(numbers(out.dissect_top1!)[b], argmax(xs), `${what}: top1`);
        t.true(Math.abs(numbers(out.dissect_top1_prob!)[b]! - Math.max(...p)) <= tol, `${what}: top1 prob`);
      }
      t.is(numbers(out.dissect_target_rank!)[0], 3);
      t.is(numbers(out.dissect_target_rank!)[1], 0);
      t.is(out.dissect_target_prob!.type, 'float32');
    }
  });
}

test.serial('without logits, the full logits are not computed at all', (t) => {
  const { bytes, manifest } = buildVariant(fixturePath('gpt2-opset14.onnx'), { knockout: 'replace_half_min', logits: false });
  const m = decodeModel(bytes);
  t.deepEqual(m.graph!.output!.map((o) => o.name), ['dissect_target_prob', 'dissect_target_rank', 'dissect_top1', 'dissect_top1_prob']);
  t.false(m.graph!.node!.some((n) => n.output?.includes('logits')), 'the [batch, seq, vocab] LM head is gone');
  t.deepEqual(manifest.outputs.map((o) => [o.name, o.dtype, o.shape]), [
    ['dissect_target_prob', 'float32', ['batch']], ['dissect_target_rank', 'int64', ['batch']],
    ['dissect_top1', 'int64', ['batch']], ['dissect_top1_prob', 'float32', ['batch']],
  ]);
});

