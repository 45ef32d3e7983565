// How many rows a forward pass may hold. onnxruntime's memory for a batch grows with its rows,
// and its arena keeps the largest batch's memory for the rest of the run; the run also keeps
// each example of a chunk (as many examples as a batch has rows) with its clean cache and
// hidden states in JavaScript until its rows are done. A row's share is estimated from the
// variant's shapes, on the large side, and --batch is lowered to what a budget holds.

import type { ModelSites } from '../onnx/sites/types.js';
import type { Plan } from '../plan/plan.js';

/** The memory a batch may take beside the weights (the run's target: 1.3 × weights + 1 GB). */
export const BATCH_MEMORY_BUDGET = 2 ** 30;

const FLOAT_BYTES = 4;

/**
 * One block's working set for `tokens` queries against `keys` keys: residual, norms, q, k, v,
 * context and updates (6·d a token), the MLP's pre-activation and activation (2·d_mlp), scores,
 * masked scores and probabilities (3·heads·keys).
 */
const blockFloats = ({ dModel: d, dMlp, heads: H }: ModelSites, tokens: number, keys: number): number => tokens * (6 * d + 2 * dMlp + 3 * H * keys);

/** Floats a position's projections to the vocabulary return: vocab each, per head for heads. */
function projectionFloats(plan: Plan, sites: ModelSites): number {
  return (plan.variant.projections ?? []).reduce((sum, p) => sum + sites.vocab * (p.site === 'heads' ? sites.heads : 1), 0);
}

/**
 * Bytes one row of `n` tokens takes at the peak of its forward pass, with its example's share
 * of what JavaScript keeps (counted as float32, whatever the model's dtype):
 * - one block's working set: residual, norms, q, k, v, context and updates (6·d a token), the
 *   MLP's pre-activation and activation (2·d_mlp a token), scores, masked scores and
 *   probabilities (3·heads·n a token); blocks run one after another;
 * - the last position's logits, softmax and cast (3·vocab);
 * - the knockout mask fed (bool, layers · heads in the mask · n²);
 * - the cache: every layer's keys and values fed as past and returned (2 · 2·layers·n·d), and
 *   the clean run's kept in JavaScript (2·layers·n·d);
 * - hidden states returned and, for patches, kept ((layers+1)·n·d each; twice kept with a
 *   corrupted prompt's);
 * - attention probabilities returned (layers · heads · n²);
 * - each projection to the vocabulary, one layer at a time (n positions · vocab, per head for heads).
 */
export function rowBytes(sites: ModelSites, plan: Plan, n: number): number {
  const { layers: L, heads: H, dModel: d, vocab: V } = sites;
  const request = plan.variant;
  const corrupted = plan.experiments.some((e) => e.rows.some((r) => r.patch?.source.kind === 'corrupted_hidden'));
  const floats = blockFloats(sites, n, n)
    + 3 * V
    + (request.lastPosition ? 3 * 2 * L * n * d : 0)
    + (request.hiddenStates ? (corrupted ? 3 : 2) * (L + 1) * n * d : 0)
    + (request.attentionProbs ? L * H * n * n : 0)
    + n * projectionFloats(plan, sites);
  const knockoutBytes = request.knockout ? L * plan.knockoutHeads * n * n : 0;
  return floats * FLOAT_BYTES + knockoutBytes;
}

/**
 * Bytes one last-position row (its prompt's last token against the prompt's past, at most n
 * keys) takes at the peak of its pass, counted as float32:
 * - one block's working set for one token, scores over n keys (6·d + 2·d_mlp + 3·heads·n);
 * - its past gathered from its prompt's, one block at a time (2·n·d);
 * - the logits, softmax and cast (3·vocab);
 * - what it returns, kept to the end of the pass: its token's keys and values (2·layers·d),
 *   hidden states ((layers+1)·d), attention probabilities (layers·heads·n), each projection
 *   to the vocabulary (vocab, per head for heads);
 * - its prompt's past fed (2·layers·n·d), counted for every row: a batch's rows may each be
 *   of another prompt (a batch feeds its chunk's clean cache, or the prompts it reads);
 * - the knockout mask fed (bool, layers · heads in the mask · n).
 */
export function lastPositionRowBytes(sites: ModelSites, plan: Plan, n: number): number {
  const { layers: L, heads: H, dModel: d, vocab: V } = sites;
  const request = plan.variant;
  const floats = blockFloats(sites, 1, n) + 2 * n * d + 3 * V + 2 * L * d
    + (request.hiddenStates ? (L + 1) * d : 0)
    + (request.attentionProbs ? L * H * n : 0)
    + projectionFloats(plan, sites)
    + 2 * L * n * d;
  return floats * FLOAT_BYTES + (request.knockout ? L * plan.knockoutHeads * n : 0);
}

/**
 * Bytes one row of `n` tokens takes in the attribution variant, whose backward pass reads the
 * forward activations of every block (kept from the forward, not one block at a time) and
 * makes a gradient of each: twice every block's working set, the logits' softmax and its
 * gradient, and the hidden states with their gradients ((layers+1)·n·d each).
 */
export function gradientRowBytes(sites: ModelSites, n: number): number {
  const { layers: L, dModel: d, vocab: V } = sites;
  return (2 * L * blockFloats(sites, n, n) + 2 * 3 * V + 2 * (L + 1) * n * d) * FLOAT_BYTES;
}

export interface BatchSize {
  readonly requested: number;
  /** The bytes a batch may take beside the weights (--batch-memory; default BATCH_MEMORY_BUDGET). */
  readonly budget: number;
  /** Rows per forward pass (and examples per chunk) the run uses: at most `requested`. */
  readonly used: number;
  /**
   * Last-position rows per forward pass (variants that run them): one token each, so a pass
   * holds as many as `used` whole prompts have tokens (used × longest prompt), lowered to what
   * the budget holds of lastPositionRowBytes.
   */
  readonly lastPosition?: number;
  /**
   * Prompts per clean pass when the clean pass returns each token's keys, values and hidden
   * states for last-position rows: as many as hold a last-position pass's rows in tokens
   * (lastPosition / longest prompt), so that what onnxruntime returns at once, and its arena
   * keeps for the rest of the run, is a part of the chunk's, not all of it.
   */
  readonly cleanPass?: number;
  /** The estimate of one row's bytes that capped it, for the longest prompt. */
  readonly rowBytes: number;
  readonly longestPrompt: number;
}

/**
 * --batch, lowered so that a batch of the longest prompt's rows stays within `budget` bytes:
 * for the rows that take gradients (`gradients`), by their own, larger row.
 */
export function batchSize(
  requested: number, sites: ModelSites, plan: Plan, longestPrompt: number, budget = BATCH_MEMORY_BUDGET, gradients = false,
): BatchSize {
  const bytes = gradients ? gradientRowBytes(sites, longestPrompt) : rowBytes(sites, plan, longestPrompt);
  const used = Math.max(1, Math.min(requested, Math.floor(budget / bytes)));
  const lastPosition = !gradients && plan.variant.lastPosition
    ? Math.max(1, Math.min(used * longestPrompt, Math.floor(budget / lastPositionRowBytes(sites, plan, longestPrompt)))) : undefined;
  const cleanPass = lastPosition ? Math.max(1, Math.min(used, Math.floor(lastPosition / longestPrompt))) : undefined;
  return { requested, budget, used, ...(lastPosition ? { lastPosition, cleanPass } : {}), rowBytes: bytes, longestPrompt };
}

/** Why --batch was lowered, for the user; undefined when it was not. */
export function batchNotice(b: BatchSize, gradients = false): string | undefined {
  if (b.used === b.requested) return undefined;
  const mb = (b.rowBytes / 2 ** 20).toFixed(1);
  const rows = gradients ? 'rows that take gradients' : 'rows';
  const row = gradients ? 'a row and its backward pass' : 'a row';
  return `--batch ${b.requested} lowered to ${b.used} ${rows} per forward pass: ${row} of the longest prompt (${b.longestPrompt} tokens) ` +
    `needs about ${mb} MiB, and a batch is kept within ${Number((b.budget / 2 ** 30).toPrecision(4))} GiB beside the weights (raise it with --batch-memory)`;
}
