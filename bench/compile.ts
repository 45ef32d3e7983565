// Compile-time benchmark: a GPT-J-sized GPT-2-architecture skeleton (28 layers, d 4096,
// 16 heads, vocab 50400, ~6B parameters) with lazily external weights (a sparse file: no
// bytes written or read), then compileVariant with knockout. Reports wall time and peak RSS.
// With --all, the request adds every other pass (gates, patch, hidden states, projections of
// every site at every layer).
//   node dist/bench/compile.js [--layers N] [--d-model D] [--heads H] [--all] [--keep]
// It also times recognition alone (goal: a 48-layer export under 1 s; run.ts asks for GPT-2 XL's shape).

import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildVariant, compileVariant } from '../src/onnx/compile.js';
import { detectSites, readModel } from '../src/onnx/index.js';
import type { VariantRequest } from '../src/onnx/variant.js';
import { GPTJ_SIZE, writeSkeleton, type SkeletonShape } from './skeleton.js';
import { OutputFolder } from '../src/output/folder.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const shape: SkeletonShape = {
  ...GPTJ_SIZE,
  ...(arg('--layers') ? { layers: Number(arg('--layers')) } : {}),
  ...(arg('--d-model') ? { dModel: Number(arg('--d-model')), dMlp: 4 * Number(arg('--d-model')) } : {}),
  ...(arg('--heads') ? { heads: Number(arg('--heads')) } : {}),
};
const blocks = Array.from({ length: shape.layers }, (_, l) => l);
const request: VariantRequest = process.argv.includes('--all')
  ? {
    knockout: 'replace_half_min', logits: false, gates: { attention: 'zero_update', mlp: 'zero_preactivation' }, patch: true, hiddenStates: true,
    projections: [
      { site: 'hidden', layers: [...blocks, shape.layers], via: 'embedding', k: 500, vocabLimit: 50257 },
      { site: 'attention', layers: blocks, via: 'final_norm_unembedding', k: 50, vocabLimit: 50257 },
      { site: 'mlp', layers: blocks, via: 'final_norm_unembedding', k: 50, vocabLimit: 50257 },
      { site: 'heads', layers: blocks, via: 'final_norm_unembedding', k: 50, vocabLimit: 50257 },
    ],
  }
  : { knockout: 'replace_half_min', logits: false };
const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const dir = mkdtempSync(join(tmpdir(), 'dissect-bench-'));
try {
  let t = performance.now();
  const path = writeSkeleton(join(dir), shape, { lazy: true });
  const weights = statSync(join(dir, 'weights.bin')).size;
  console.log(`skeleton: ${shape.layers} layers, d ${shape.dModel}, ${shape.heads} heads, vocab ${shape.vocab}; ` +
    `graph ${mib(statSync(path).size)}, external weights ${(weights / 2 ** 30).toFixed(1)} GiB (sparse) in ${(performance.now() - t).toFixed(0)} ms`);
  const rssBefore = process.resourceUsage().maxRSS * 1024;
  t = performance.now();
  const sites = detectSites(readModel(path), path);
  console.log(`recognise (read, canonicalise, match ${sites.layers} layers as ${sites.family}): ${(performance.now() - t).toFixed(0)} ms`);
  t = performance.now();
  const c = compileVariant(path, request, OutputFolder.open(join(dir, 'variant')));
  const compileMs = performance.now() - t;
  t = performance.now();
  const built = buildVariant(path, request);
  const buildMs = performance.now() - t;
  const peak = process.resourceUsage().maxRSS * 1024;
  console.log(`request: ${process.argv.includes('--all') ? 'every pass' : 'knockout'}; ${built.manifest.inputs.length} inputs, ${built.manifest.outputs.length} outputs`);
  console.log(`compileVariant (to disk, ${c.manifest.weights.layout}): ${compileMs.toFixed(0)} ms; variant graph ${mib(statSync(c.modelPath).size)}`);
  console.log(`buildVariant (in memory): ${buildMs.toFixed(0)} ms; ${mib(built.bytes.length)}`);
  console.log(`peak RSS: ${mib(peak)} (before compiling: ${mib(rssBefore)})`);
} finally {
  if (!process.argv.includes('--keep')) rmSync(dir, { recursive: true, force: true });
}
