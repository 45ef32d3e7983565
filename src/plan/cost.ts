// What a plan costs per prompt in floating-point operations, counted in clean forward passes of
// that prompt (the unit the paper's method pays once per configuration). A clean forward runs
// every block over the prompt's tokens and the LM head at the last position; a row runs the
// blocks from its start layer over its tokens (one against a cache), the LM head once and the
// vocabulary projections its probes read. Multiply-adds count 2; norms, activations, softmax and
// the knockout's masking are left out (a few percent of a block at GPT-2's shapes).

import type { ModelSites } from '../onnx/sites/types.js';
import { isAttribution, mayRunLastPosition, passesOfRow, readsCleanPass, rowsWithOwnRun, startLayerOf, type Plan, type PlanRow } from './plan.js';

export type CostShape = Pick<ModelSites, 'layers' | 'heads' | 'dModel' | 'dMlp' | 'vocab'>;

/** How the run executes rows (each off runs every row over its whole prompt, from block 0, on its own). */
export interface RowModes {
  /** Rows that change only the last position run that token alone against the clean cache. */
  readonly lastPosition: boolean;
  /** Rows begin at their first changed or read block (startLayerOf). */
  readonly startLayer: boolean;
  /** Rows that change nothing are read from the clean pass. */
  readonly shareClean: boolean;
}

/** One block over `tokens` new tokens attending to `keys` keys: the q, k, v and output projections, the MLP, q·kᵀ and the weighted sum of values. */
function blockFlops(shape: CostShape, tokens: number, keys: number): number {
  const { dModel: d, dMlp } = shape;
  return tokens * (2 * (4 * d * d + 2 * d * dMlp) + 2 * 2 * keys * d);
}

/** The LM head (or a projection to the vocabulary) at one position. */
const unembedding = (shape: CostShape): number => 2 * shape.dModel * shape.vocab;

/** Projections to the vocabulary a row's probes compute: one per probe, one per head for `heads`. */
function projections(row: PlanRow, heads: number): number {
  return row.probes.reduce((n, p) => n + (p.kind === 'attention_weight' || isAttribution(p) || p.site === 'subject_embeddings' ? 0 : p.site === 'heads' ? heads : 1), 0);
}

/**
 * FLOPs per prompt of `tokens` tokens, in clean forward passes: the clean pass (1) plus every
 * row that runs (rows read from the clean pass, or from another row's backward pass, cost nothing
 * more; rows that take gradients count their forward passes only).
 */
export function cleanForwardEquivalents(plan: Plan, shape: CostShape, tokens: number, modes: RowModes): number {
  const clean = shape.layers * blockFlops(shape, tokens, tokens) + unembedding(shape);
  let total = clean;
  for (const exp of plan.experiments) {
    for (const row of rowsWithOwnRun(exp)) {
      if (modes.shareClean && readsCleanPass(row)) continue;
      const rowTokens = modes.lastPosition && mayRunLastPosition(row) ? 1 : tokens;
      const start = modes.startLayer ? startLayerOf(row, shape.layers) : 0;
      const forward = (shape.layers - start) * blockFlops(shape, rowTokens, tokens) + (1 + projections(row, shape.heads)) * unembedding(shape);
      total += passesOfRow(row) * forward;
    }
  }
  return total / clean;
}

/** The cost of a run for the user: clean forward passes per prompt (FLOPs). */
export function costNotice(cost: { readonly tokens: number; readonly cleanForwardEquivalents: number }): string {
  return `cost: ${cost.cleanForwardEquivalents.toFixed(1)} clean forward passes per prompt of ${cost.tokens.toFixed(1)} tokens ` +
    '(FLOPs of the clean pass and the rows as they ran; spec.md, "What a run costs")';
}
