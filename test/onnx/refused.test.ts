// Graph shapes dissect refuses before matching, with a message naming the node and a hint
// saying what to export instead: merged decoders and graphs fused by onnxruntime.

import test from 'ava';
import { readFileSync } from 'node:fs';
import { UserError } from '../../src/errors.js';
import { decodeModel } from '../../src/onnx/proto.js';
import { detectSites } from '../../src/onnx/sites/index.js';
import { fixturePath } from './helpers.js';

const base = () => decodeModel(readFileSync(fixturePath('gpt2-opset14.onnx')));

test('a merged decoder (If on use_cache_branch) is refused with how to export instead', (t) => {
  const m = base();
  m.graph!.node!.push({ opType: 'If', name: 'optimum::if', input: ['use_cache_branch'], output: ['x'] });
  const e = t.throws(() => detectSites(m, 'merged.onnx'), { instanceOf: UserError })!;
  t.regex(e.message, /^merged\.onnx: node 'optimum::if' \(If\) selects between two decoder graphs: a merged decoder/);
  t.regex((e as UserError).hint ?? '', /decoder_model\.onnx/);
});

test("a graph fused by onnxruntime's optimizer is refused, naming the fused node", (t) => {
  const m = base();
  m.graph!.node!.unshift({ opType: 'SkipLayerNormalization', domain: 'com.microsoft', name: 'SkipLayerNorm_3', input: ['a', 'b'], output: ['c'] });
  const e = t.throws(() => detectSites(m, 'fused.onnx'), { instanceOf: UserError })!;
  t.is(e.message, "fused.onnx: node 'SkipLayerNorm_3' is the fused com.microsoft SkipLayerNormalization: it hides the attention scores and sublayer updates dissect rewrites");
  // Without the fused node the same graph detects.
  const plain = base();
  t.is(detectSites(plain).family, 'gpt2');
});
