// Does onnxruntime skip the branches of outputs a run does not fetch? Builds a variant with
// every pass (hidden states, projections of every site at every layer) and times runs that
// fetch only dissect_target_prob against runs that fetch everything, on the fixture and on
// a larger random skeleton where the projections dominate.
//   node dist/bench/fetch.js [--runs N]

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import { buildVariant } from '../src/onnx/compile.js';
import type { ModelSites } from '../src/onnx/sites/types.js';
import type { ProjectionRequest, VariantRequest } from '../src/onnx/variant.js';
import { variantSessionConfig } from '../src/run/session.js';
import { writeSkeleton } from './skeleton.js';

const runs = Number(process.argv[process.argv.indexOf('--runs') + 1] || 0) || 20;

function request(sites: ModelSites, k: number): VariantRequest {
  const blocks = sites.perLayer.map((L) => L.layer);
  const all = (site: ProjectionRequest['site'], via: ProjectionRequest['via']): ProjectionRequest =>
    ({ site, layers: site === 'hidden' ? [...blocks, sites.layers] : blocks, via, k, vocabLimit: sites.vocab });
  return {
    knockout: 'replace_half_min', logits: false, gates: { attention: 'zero_update', mlp: 'zero_update' }, patch: true, hiddenStates: true,
    projections: [all('hidden', 'final_norm_unembedding'), all('attention', 'embedding'), all('mlp', 'embedding'), all('heads', 'final_norm_unembedding')],
  };
}

function i64(values: number[], dims: number[]): ort.Tensor {
  return new ort.Tensor('int64', BigInt64Array.from(values.map(BigInt)), dims);
}

function feeds(sites: ModelSites, b: number, n: number, P: number): Record<string, ort.Tensor> {
  const L = sites.layers;
  const ids = Array.from({ length: b * n }, (_, i) => (i * 7 + 3) % sites.vocab);
  const f: Record<string, ort.Tensor> = {
    [sites.inputs.inputIds]: i64(ids, [b, n]),
    dissect_knockout: new ort.Tensor('bool', new Uint8Array(b * L * n * n), [b, L, 1, n, n]),
    dissect_last_index: i64(new Array(b).fill(n - 1), [b]),
    dissect_target: i64(new Array(b).fill(1), [b]),
    dissect_gate_attention: new ort.Tensor('float32', new Float32Array(b * L * n).fill(1), [b, L, n]),
    dissect_gate_mlp: new ort.Tensor('float32', new Float32Array(b * L * n).fill(1), [b, L, n]),
    dissect_patch_layer: i64(new Array(b).fill(-1), [b]),
    dissect_patch_mask: new ort.Tensor('bool', new Uint8Array(b * n), [b, n]),
    dissect_patch_values: new ort.Tensor('float32', new Float32Array(b * n * sites.dModel), [b, n, sites.dModel]),
    dissect_proj_positions: i64(Array.from({ length: b * P }, (_, i) => i % n), [b, P]),
  };
  if (sites.inputs.attentionMask) f[sites.inputs.attentionMask] = i64(new Array(b * n).fill(1), [b, n]);
  if (sites.inputs.positionIds) f[sites.inputs.positionIds] = i64(Array.from({ length: b * n }, (_, i) => i % n), [b, n]);
  for (const p of sites.inputs.past) {
    for (const t of [p.key, p.value]) f[t] = new ort.Tensor('float32', new Float32Array(0), [b, sites.heads, 0, sites.dHead]);
  }
  return f;
}

async function time(label: string, path: string, b: number, n: number, P: number, k: number): Promise<void> {
  const probe = buildVariant(path, { knockout: false, logits: false });
  const built = buildVariant(path, request(probe.sites, k));
  const s = await ort.InferenceSession.create(built.bytes, {
    intraOpNumThreads: 1, interOpNumThreads: 1, extra: variantSessionConfig(built.manifest),
  });
  const plain = buildVariant(path, { knockout: 'replace_half_min', logits: false, gates: { attention: 'zero_update', mlp: 'zero_update' }, patch: true });
  const sp = await ort.InferenceSession.create(plain.bytes, {
    intraOpNumThreads: 1, interOpNumThreads: 1, extra: variantSessionConfig(plain.manifest),
  });
  const f = feeds(probe.sites, b, n, P);
  const { dissect_proj_positions: _, ...fPlain } = f;
  const all = built.manifest.outputs.map((o) => o.name);
  const measure = async (run: () => Promise<unknown>): Promise<number> => {
    for (let i = 0; i < 3; i++) await run();
    const t0 = performance.now();
    for (let i = 0; i < runs; i++) await run();
    return (performance.now() - t0) / runs;
  };
  const onlyTarget = await measure(() => s.run(f, ['dissect_target_prob']));
  const everything = await measure(() => s.run(f, all));
  const projOnly = await measure(() => s.run(f, ['dissect_proj_heads_ids']));
  const baseline = await measure(() => sp.run(fPlain, ['dissect_target_prob']));
  const f0 = { ...f, dissect_proj_positions: i64([], [b, 0]) };
  const noPositions = await measure(() => s.run(f0, ['dissect_target_prob']));
  console.log(`${label} (batch ${b}, seq ${n}, ${P} positions, k ${k}; ${runs} runs each):`);
  console.log(`  variant without hidden states/projections, fetch dissect_target_prob: ${baseline.toFixed(2)} ms`);
  console.log(`  full variant, fetch dissect_target_prob only:                        ${onlyTarget.toFixed(2)} ms`);
  console.log(`  full variant, dissect_proj_positions [batch, 0], fetch dissect_target_prob: ${noPositions.toFixed(2)} ms`);
  console.log(`  full variant, fetch dissect_proj_heads_ids only:                     ${projOnly.toFixed(2)} ms`);
  console.log(`  full variant, fetch all ${all.length} outputs:                              ${everything.toFixed(2)} ms`);
}

const fixture = fileURLToPath(new URL('../../generated/fixtures/gpt2-opset14.onnx', import.meta.url));
await time('fixture gpt2-opset14 (2 layers, d 32, vocab 64)', fixture, 4, 16, 4, 10);
const dir = mkdtempSync(join(tmpdir(), 'dissect-fetch-'));
try {
  const path = writeSkeleton(dir, { layers: 4, heads: 8, dModel: 256, vocab: 16000, positions: 64, dMlp: 1024 }, { lazy: false, seed: 5 });
  await time('skeleton (4 layers, d 256, 8 heads, vocab 16000)', path, 4, 32, 4, 50);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
