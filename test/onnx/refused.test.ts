// Graph shapes dissect refuses before matching, with a message naming the node and a hint
// saying what to export instead: fused onnxruntime ops that dissect cannot expand back into
// standard ops (the ones it can are tested in fused.test.ts; merged decoders run, real-exports.test.ts).

import test from 'ava';
import { readFileSync } from 'node:fs';
import { UserError } from '../../src/errors.js';
import { decodeModel } from '../../src/onnx/proto.js';
import { detectSites } from '../../src/onnx/sites/index.js';
import { fixturePath } from './helpers.js';

const base = () => decodeModel(readFileSync(fixturePath('gpt2-opset14.onnx')));

test("a fused onnxruntime op that cannot be expanded is refused, naming the node and why", (t) => {
  const m = base();
  m.graph!.node!.unshift({ opType: 'DecoderMaskedMultiHeadAttention', domain: 'com.microsoft', name: 'DecoderMaskedMultiHeadAttention_3', input: ['a', 'b'], output: ['c'] });
  const e = t.throws(() => detectSites(m, 'fused.onnx'), { instanceOf: UserError })!;
  t.is(e.message, "fused.onnx: node 'DecoderMaskedMultiHeadAttention_3' is the fused com.microsoft DecoderMaskedMultiHeadAttention: it decodes one token against a kv cache");
  t.regex((e as UserError).hint ?? '', /before onnxruntime's transformer optimizer/);
  // Without the fused node the same graph detects.
  t.is(detectSites(base()).family, 'gpt2');
});
