// The contract between the compiler (src/onnx) and the runner (src/run): what a compiled
// variant takes and gives. The manifest is written beside the variant so that it can be
// run without dissect.

import type { FillRule } from './inputs.js';
import type { SiteOverride } from './sites/types.js';

/** What the compiled variant must be able to do. Interventions are inputs, not shape. */
export interface VariantRequest {
  /** Add the `dissect_knockout` input (attention-edge knockout, per row), removing blocked edges as the `knockout_value` choice says; false: none. */
  readonly knockout: false | 'replace_half_min';
  /** Keep the original `logits` output (for equality tests; large). */
  readonly logits: boolean;
  /** Add per-layer `dissect_attn_probs_{l}` outputs, float32 [batch, heads, seq, kv] (tests; large). */
  readonly attentionProbs?: boolean;
  /**
   * Sublayer gates: inputs `dissect_gate_attention` / `dissect_gate_mlp`, float32
   * [batch, layers, seq] (1 keeps, 0 cancels; values in between scale). `zero_update`
   * scales the sublayer's update before the residual add; `zero_preactivation` scales the
   * MLP pre-activations (the activation's input), so a cancelled MLP writes its output bias.
   */
  readonly gates?: { readonly attention?: 'zero_update'; readonly mlp?: 'zero_update' | 'zero_preactivation' };
  /**
   * Patching: inputs `dissect_patch_layer` int64 [batch] (-1 = none), `dissect_patch_mask`
   * bool [batch, seq] and `dissect_patch_values` [batch, seq, d] (model dtype): hidden state
   * `patch_layer` (0..L: block l's input, L the final norm's) is replaced by the values where
   * the mask is true.
   */
  readonly patch?: boolean;
  /**
   * Output `dissect_hidden_states` [batch, layers+1, seq, d] (model dtype): hidden_states 0..L,
   * entry l < L the input of block l (0 = embedding output; after patching, the patched input),
   * entry L the residual stream after the last block. Unlike Hugging Face's last hidden state,
   * entry L is NOT passed through the final norm.
   */
  readonly hiddenStates?: boolean;
  /** Vocabulary projections with in-graph top-k; see ProjectionRequest. */
  readonly projections?: readonly ProjectionRequest[];
  /**
   * Last-position rows: per-layer past keys and values as inputs (concatenated where attention
   * reads them), this run's keys and values as outputs, and token positions as an input, so a
   * row can run only its last token against the clean run's cache (see passes/last-position.ts).
   */
  readonly lastPosition?: boolean;
  /** Tensors the user names for sites (`.dissect` `site` statements), applied during site detection. */
  readonly siteOverrides?: readonly SiteOverride[];
  /**
   * Gradient attribution: outputs `dissect_attribution` float32 [batch, layers+1, seq] (per
   * hidden state and position, h ⊙ ∂y/∂h reduced over the model width) and
   * `dissect_attribution_y` float32 [batch] (y), y being read at dissect_last_index and
   * dissect_target. Gradients are of the run as intervened; rows run whole prompts. With
   * `patch`, also `dissect_attribution_patch_gradient` float32 [batch, seq, d]: ∂y/∂h for the
   * hidden state each row patches (integrated gradients reduce it on the host).
   */
  readonly attribution?: AttributionRequest;
  /**
   * Rows that begin at a block above 0: inputs `dissect_start_layer` int64 [1] and
   * `dissect_start_hidden` [batch, seq, d] (model dtype); blocks below the start layer are
   * skipped and the start block reads the fed hidden state (see passes/start-layer.ts).
   */
  readonly startLayer?: boolean;
  /**
   * With lastPosition: the clean run inside the graph (see passes/clean-stream.ts). The past
   * inputs and dissect_start_hidden give way to a clean copy of the variant whose inputs are
   * the originals prefixed `dissect_clean/`, and `dissect_past_length` int64 [batch].
   */
  readonly cleanStream?: 'in-graph';
}

/** What gradient attribution differentiates and how a position's h ⊙ ∂y/∂h is reduced over the model width. */
export interface AttributionRequest {
  readonly target: 'log_probability' | 'probability' | 'logit';
  readonly reduction: 'sum' | 'l2_norm';
}

/**
 * Project a site at per-row positions to the vocabulary and reduce it in the graph.
 * Input `dissect_proj_positions` int64 [batch, proj_positions] (shared by every
 * projection). Outputs, for site S (`hidden`, `attention`, `mlp`, `heads`):
 * `dissect_proj_S_ids` int64 and `dissect_proj_S_scores` float32 [batch, n_layers, P, k],
 * and `dissect_proj_S_target_rank` int64 [batch, n_layers, P] (rank of `dissect_target`:
 * entries with a strictly greater score); `heads` adds a heads axis after n_layers.
 * Sites read the values the graph computes after interventions: `attention` / `mlp` are the
 * updates as added to the residual stream (after any gate), `heads` are each head's share
 * context_h · W_O[h] (no bias) times the attention gate, so Σ_h shares + gate·b_O = update.
 * At most one projection per site; `k` ≤ min(vocab, vocabLimit).
 *
 * Site `recomputed` (with `recompute`): block l's attention update at each row's last
 * position (dissect_last_index) rebuilt from that row's attention probabilities with the keys
 * of the bool input `dissect_recompute_remove` [batch, seq] removed: P' per RecomputeMode,
 * then Σ_k P'[h, k]·V[h, k] merged over heads, times W_O, plus b_O. Nothing is propagated
 * (the model's own forward pass is unchanged) and no attention gate applies. Its outputs
 * have a position axis of 1 (not dissect_proj_positions), or 0 when the remove input is fed
 * as [batch, 0]: then the recomputation and its projection cost nothing.
 *
 * Site `subject_embeddings` (layers [0], a placeholder): Σ_q w[q]·Gather(E, input_ids)[q] with
 * the float32 input `dissect_subject_weights` [batch, seq] (1/|subject| on the row's subject
 * positions, 0 elsewhere): the mean token embedding of the subject, read from the token
 * embedding lookup (no position embedding). Its outputs have a position axis of 1.
 */
export interface ProjectionRequest {
  readonly site: 'hidden' | 'attention' | 'mlp' | 'heads' | 'recomputed' | 'subject_embeddings';
  /** Hidden-state indices (0..L) for `hidden`; block indices for the others; [0] for `subject_embeddings`. Sorted, unique. */
  readonly layers: readonly number[];
  /** `embedding`: h·Eᵀ with the input embedding, no final norm (the paper's code); `final_norm_unembedding`: ln_f then the LM head (with its bias). */
  readonly via: 'embedding' | 'final_norm_unembedding';
  readonly k: number;
  /** Ids ≥ this get score −∞ before the top-k (GPT-J: 50400 embedding rows, 50257 tokens). */
  readonly vocabLimit: number;
  /** Site `recomputed` only (required there): how the weights are rebuilt once keys are removed. */
  readonly recompute?: RecomputeMode;
}

/**
 * How `recomputed` rebuilds the last position's attention weights P (per head, over keys)
 * once the keys R are removed; when every key of the row is removed both give P' = 0.
 * - renormalise: P'_k = 0 for k ∈ R, P_k / Σ_{j∉R} P_j otherwise;
 * - paper_resoftmax: P' = softmax_k(k ∈ R ? −1e6 : P_k) over the row's keys (the paper's code).
 */
export type RecomputeMode = 'renormalise' | 'paper_resoftmax';

export type ManifestDtype = 'float32' | 'float16' | 'bfloat16' | 'float64' | 'int64' | 'int32' | 'bool';

export interface ManifestTensor {
  readonly name: string;
  readonly dtype: ManifestDtype;
  /** Numbers are fixed sizes, strings are symbolic dimensions (batch, seq, layers ...). */
  readonly shape: readonly (number | string)[];
  readonly meaning: string;
}

/**
 * An input of a plain row: one whole prompt, unpadded, changing nothing. `shape` holds 'batch'
 * (the rows) and 'seq' (the prompt's tokens) where they apply; `value` is a constant for every
 * entry, or the row's own data: its token ids, its positions 0…seq−1, its last index (seq − 1).
 */
export interface PlainRowFill {
  readonly shape: readonly (number | 'batch' | 'seq')[];
  readonly value: number | boolean | 'token_ids' | 'positions' | 'last_index';
}

export interface ManifestInput extends ManifestTensor {
  /** How to fill it, in words. */
  readonly fill: string;
  /** What the runner fills it from (src/onnx/inputs.ts FillRule; one filler each in src/run/batch.ts). */
  readonly rule: FillRule;
  readonly plainRow: PlainRowFill;
}

/** How dissect turns a fact into rows, for running the variant without dissect (`dissect compile` records them). */
export interface RowConventions {
  /** The tokenizer.json the token ids come from. */
  readonly tokenizer: string;
  /** Whether the tokenizer's BOS token goes in front of every prompt. */
  readonly bos: string;
  /** Which layers `window(center, size)` covers (the `knockout_window` choice in force). */
  readonly window: { readonly choice: 'knockout_window'; readonly value: string; readonly meaning: string };
  /** How a fact's subject positions are found in the prompt's tokens. */
  readonly subjectPositions: string;
}

/**
 * How the variant reaches the original weights.
 * - embedded: the weights are inside the variant graph (models under 2 GB).
 * - hardlinked: the external weight files are hardlinked beside the variant (same paths).
 * - external-beside-source: the variant graph was written into the source model's folder.
 * - external-source-folder: in-memory variant (buildVariant); create the session with the
 *   `sessionConfig` entries so that onnxruntime reads the weights from `folder`.
 */
export type WeightsLayout = 'embedded' | 'hardlinked' | 'external-beside-source' | 'external-source-folder';

/** Where one layer's keys or values enter a variant (as past) and leave it (past and this run's). */
export interface CacheSlot {
  readonly input: string;
  readonly output: string;
  /** The sequence axis of both tensors (2 for [batch, heads, seq, d_head]; 3 for keys kept transposed). */
  readonly seqAxis: number;
  /** The input's dims after the batch axis, 0 on the sequence axis (e.g. [heads, 0, d_head]). */
  readonly dims: readonly number[];
}

export interface CacheEntry { readonly layer: number; readonly key: CacheSlot; readonly value: CacheSlot }

export interface VariantManifest {
  readonly format: 'dissect-variant/2';
  readonly tool: { readonly name: 'dissect'; readonly version: string };
  /** sha256 of the source .onnx file (the graph; external weight files are not hashed). */
  readonly source: { readonly path: string; readonly sha256: string };
  /** Path of the variant graph relative to the manifest ('' for an in-memory variant). */
  readonly model: string;
  readonly weights: {
    readonly layout: WeightsLayout;
    /** External weight files, relative to `folder` (empty when embedded). */
    readonly files: readonly string[];
    /** Absolute folder holding `files` as the variant sees them. */
    readonly folder?: string;
    /** onnxruntime session config entries needed to run the variant (in-memory layout). */
    readonly sessionConfig?: Readonly<Record<string, string>>;
  };
  readonly family: string;
  /** onnxruntime's fused ops that were expanded into standard ops before rewriting, op → count. */
  readonly expandedFusedOps?: Readonly<Record<string, number>>;
  readonly layers: number;
  readonly heads: number;
  readonly dModel: number;
  readonly vocab: number;
  /** Element type of the model's activations (scores, logits). */
  readonly dtype: ManifestDtype;
  readonly inputs: readonly ManifestInput[];
  readonly outputs: readonly ManifestTensor[];
  /** Semantic choices baked into the graph (e.g. knockout replacement value). */
  readonly choices: Readonly<Record<string, string>>;
  /**
   * Present when the variant takes past keys and values (last-position rows), per layer. With
   * the clean stream in the graph, where its clean copy returns them (their inputs are gone).
   */
  readonly cache?: readonly CacheEntry[];
  /** The clean run is inside the graph (VariantRequest.cleanStream): the inputs prefixed dissect_clean/ are its. */
  readonly cleanStream?: 'in-graph';
  /** Present when the compile knew the program (`dissect compile`). */
  readonly rows?: RowConventions;
}

/** Input and output names added by the rewrite. */
export const VariantNames = {
  knockout: 'dissect_knockout', // bool [batch, layers, heads|1, seq, kv]; true = blocked
  lastIndex: 'dissect_last_index', // int64 [batch]: each row's own last token index
  target: 'dissect_target', // int64 [batch]: token whose probability and rank are read (OWN_TOP1_TARGET: the row's top-1)
  targetProb: 'dissect_target_prob', // float32 [batch]
  targetRank: 'dissect_target_rank', // int64 [batch]: vocab entries with a strictly greater logit
  top1: 'dissect_top1', // int64 [batch]
  top1Prob: 'dissect_top1_prob', // float32 [batch]
  attnProbsPrefix: 'dissect_attn_probs_', // + layer: float32 [batch, heads, seq, kv]
  gateAttention: 'dissect_gate_attention', // float32 [batch, layers, seq]
  gateMlp: 'dissect_gate_mlp', // float32 [batch, layers, seq]
  patchLayer: 'dissect_patch_layer', // int64 [batch]
  patchMask: 'dissect_patch_mask', // bool [batch, seq]
  patchValues: 'dissect_patch_values', // [batch, seq, d]
  hiddenStates: 'dissect_hidden_states', // [batch, layers+1, seq, d]
  projPositions: 'dissect_proj_positions', // int64 [batch, proj_positions]
  projPrefix: 'dissect_proj_', // + site + _ids | _scores | _target_rank
  recomputeRemove: 'dissect_recompute_remove', // bool [batch, seq | 0]: keys removed from the last position's attention
  subjectWeights: 'dissect_subject_weights', // float32 [batch, seq]: 1/|subject| on the subject positions, 0 elsewhere
  pastKeyPrefix: 'dissect_past_key_', // + layer: [batch, heads, past, d_head] (or [batch, heads, d_head, past])
  pastValuePrefix: 'dissect_past_value_', // + layer: [batch, heads, past, d_head]
  keyPrefix: 'dissect_key_', // + layer: past and this run's keys, as the layer's past input takes them
  valuePrefix: 'dissect_value_', // + layer: past and this run's values
  positionIds: 'dissect_position_ids', // int64 [batch, seq], where the model has no position_ids input
  pastRow: 'dissect_past_row', // int64 [batch]: each row's entry of the past inputs (one per prompt)
  pastLength: 'dissect_past_length', // int64 [batch]: each row's positions before its tokens (clean stream in the graph)
  attribution: 'dissect_attribution', // float32 [batch, layers+1, seq]: h ⊙ ∂y/∂h reduced over d
  attributionY: 'dissect_attribution_y', // float32 [batch]: y
  attributionPatchGradient: 'dissect_attribution_patch_gradient', // float32 [batch, seq, d]: ∂y/∂h at dissect_patch_layer
  startLayer: 'dissect_start_layer', // int64 [1]: the first block the batch runs
  startHidden: 'dissect_start_hidden', // [batch, seq, d]: the clean hidden state entering that block
} as const;

/** The prefix of the names of a variant's clean copy, its inputs' too (VariantRequest.cleanStream). */
export const CLEAN_STREAM_PREFIX = 'dissect_clean/';
/** The prefix of the symbolic dims of the clean copy's inputs and outputs (its batch and length are not the rows'). */
export const CLEAN_STREAM_DIM_PREFIX = 'clean_';

/**
 * A graph input's or output's name and dims as the manifest describes them: the clean copy's
 * as those of the tensor they copy (`copied`), the variant's own as they are.
 */
export function describedTensor(name: string, dims: readonly (string | number | undefined)[]): { copied: boolean; name: string; dims: (string | number)[] } {
  const copied = name.startsWith(CLEAN_STREAM_PREFIX);
  const strip = (d: string): string => (copied && d.startsWith(CLEAN_STREAM_DIM_PREFIX) ? d.slice(CLEAN_STREAM_DIM_PREFIX.length) : d);
  return {
    copied, name: copied ? name.slice(CLEAN_STREAM_PREFIX.length) : name,
    dims: dims.map((d) => (typeof d === 'string' ? strip(d) : d ?? '?')),
  };
}

/** dissect_target for a row whose target is its own top-1 (a clean pass reading its probes). */
export const OWN_TOP1_TARGET = -1;

/** onnxruntime session config key that points external data at a folder (in-memory models). */
export const EXTERNAL_FOLDER_CONFIG = 'session.model_external_initializers_file_folder_path';
