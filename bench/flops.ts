// Clean-forward equivalents in FLOPs of one prompt's rows: how many clean forwards of the
// prompt (every layer and the unembedding at every position, as the paper's code runs each
// configuration) the rows of a plan cost. A stand-in until the start-layer rows export their
// own count: here every row runs every layer.

import type { ModelSites } from '../src/onnx/index.js';
import { mayRunLastPosition, readsCleanPass, type Plan } from '../src/plan/plan.js';

/** How a run executes its rows: last-position rows alone, rows read from the clean pass. */
export interface RowModes { readonly lastPosition: boolean; readonly shareClean: boolean }

export function cleanForwardEquivalents(plan: Plan, sites: Pick<ModelSites, 'layers' | 'dModel' | 'dMlp' | 'vocab'>, tokens: number, modes: RowModes): number {
  const { layers, dModel: d, dMlp, vocab } = sites;
  // multiply-adds of the linear layers (q, k, v, output projection, MLP) and of the unembedding
  const perTokenLayer = 4 * d * d + 2 * d * dMlp;
  const perUnembedding = d * vocab;
  const cost = (rowTokens: number): number => rowTokens * (layers * perTokenLayer + perUnembedding);
  const rows = plan.experiments.flatMap((e) => e.rows).reduce((sum, row) => {
    if (modes.shareClean && readsCleanPass(row)) return sum;
    return sum + cost(modes.lastPosition && mayRunLastPosition(row) ? 1 : tokens);
  }, 0);
  return 1 + rows / cost(tokens);
}
