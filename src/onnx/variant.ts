// The contract between the compiler (src/onnx) and the runner (src/run): what a compiled
// variant takes and gives. The manifest is written beside the variant so that it can be
// run without dissect.

/** What the compiled variant must be able to do. Interventions are inputs, not shape. */
export interface VariantRequest {
  /** Add the `dissect_knockout` input (attention-edge knockout, per row). */
  readonly knockout: boolean;
  /** Keep the original `logits` output (for equality tests; large). */
  readonly logits: boolean;
}

export type ManifestDtype = 'float32' | 'float16' | 'int64' | 'bool';

export interface ManifestTensor {
  readonly name: string;
  readonly dtype: ManifestDtype;
  /** Numbers are fixed sizes, strings are symbolic dimensions (batch, seq, layers ...). */
  readonly shape: readonly (number | string)[];
  readonly meaning: string;
  /** How to fill an input; empty for outputs. */
  readonly fill?: string;
}

export interface VariantManifest {
  readonly format: 'dissect-variant/1';
  readonly tool: { readonly name: 'dissect'; readonly version: string };
  readonly source: { readonly path: string; readonly sha256: string };
  /** File name of the variant graph, relative to the manifest. */
  readonly model: string;
  /** How the variant reaches the original weights (external data), if any. */
  readonly weights: { readonly layout: 'embedded' | 'external-beside-source' | 'hardlinked'; readonly files: readonly string[] };
  readonly family: string;
  readonly layers: number;
  readonly heads: number;
  readonly vocab: number;
  readonly inputs: readonly ManifestTensor[];
  readonly outputs: readonly ManifestTensor[];
  /** Semantic choices baked into the graph (e.g. knockout replacement value). */
  readonly choices: Readonly<Record<string, string>>;
}

/** Input and output names added by the rewrite. */
export const VariantNames = {
  knockout: 'dissect_knockout', // bool [batch, layers, heads|1, seq, seq]; true = blocked
  lastIndex: 'dissect_last_index', // int64 [batch]: each row's own last token index
  target: 'dissect_target', // int64 [batch]: token whose probability and rank are read
  targetProb: 'dissect_target_prob', // float32 [batch]
  targetRank: 'dissect_target_rank', // int64 [batch]: vocab entries with a strictly greater logit
  top1: 'dissect_top1', // int64 [batch]
  top1Prob: 'dissect_top1_prob', // float32 [batch]
} as const;
