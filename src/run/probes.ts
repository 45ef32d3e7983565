// What a row's probes ask of its forward pass: the positions the graph projects for it, the
// keys a recomputed update removes, the subject weights of subject_embeddings and the outputs
// to fetch. Turning those outputs into values is the measure stage's (src/measure/probes.ts).
//
// `... of attention l without S` reads site `recomputed`: the graph rebuilds block l's update
// at the last position with the keys S removed (input dissect_recompute_remove, one set per
// row) and projects it like the other sites.
//
// `... of subject_embeddings` reads site `subject_embeddings`: the graph averages the token
// embeddings of the subject with the weights of dissect_subject_weights (1/|subject| on the
// subject) and projects the mean.

import type { PositionSet } from '../lang/program.js';
import { siteProbeOutputs } from '../measure/probes.js';
import { VariantNames } from '../onnx/variant.js';
import { isAttribution, type ProbePlan } from '../plan/plan.js';
import type { Example } from './example.js';
import { resolvePositions } from './positions.js';

/** Positions of a row's projected sites: every position any of its projection probes reads, sorted. */
export function projectionPositions(probes: readonly ProbePlan[], ex: Example): number[] {
  const set = new Set<number>();
  for (const p of probes) {
    if (p.kind === 'attention_weight' || isAttribution(p) || p.site === 'recomputed' || p.site === 'subject_embeddings') continue;
    for (const pos of resolvePositions(p.at, ex)) set.add(pos);
  }
  return [...set].sort((a, b) => a - b);
}

/** The row's removed keys as a mask over the example's n tokens (1 = removed). */
export function recomputeMask(set: PositionSet, ex: Example): Uint8Array {
  const mask = new Uint8Array(ex.n);
  for (const p of resolvePositions(set, ex)) mask[p] = 1;
  return mask;
}

/** The row's subject weights over the example's n tokens (1/|subject| on the subject), or undefined when no probe reads subject_embeddings. */
export function subjectWeights(probes: readonly ProbePlan[], ex: Example): Float32Array | undefined {
  if (!probes.some((p) => p.kind !== 'attention_weight' && !isAttribution(p) && p.site === 'subject_embeddings')) return undefined;
  const w = new Float32Array(ex.n);
  const { start, end } = ex.subject;
  for (let q = start; q < end; q++) w[q] = 1 / (end - start);
  return w;
}

/** Output names a row's probes need. */
export function probeFetches(probes: readonly ProbePlan[]): string[] {
  const out = new Set<string>();
  for (const p of probes) {
    if (p.kind === 'attention_weight') {
      out.add(`${VariantNames.attnProbsPrefix}${p.layer}`);
      continue;
    }
    if (p.kind === 'attribution') out.add(VariantNames.attribution);
    if (p.kind === 'integrated_gradients') {
      out.add(VariantNames.attributionY);
      out.add(VariantNames.attributionPatchGradient);
    }
    if (isAttribution(p)) continue;
    for (const name of siteProbeOutputs(p)) out.add(name);
  }
  return [...out];
}
