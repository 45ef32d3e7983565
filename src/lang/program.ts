// The checked program: what the front end hands to the planner. Parameters are already
// substituted and paths resolved against the .dissect file's folder; sweep variables
// remain symbolic because the planner expands them.

import type { Choices } from './choices.js';
import type { SiteProbeName } from './probes.js';

export interface SourceSpan {
  readonly file: string;
  readonly line: number;   // 1-based
  readonly column: number; // 1-based
}

/** A position set is resolved per example at run time, once the prompt is tokenized. */
export type PositionSet =
  | { readonly kind: 'named'; readonly name: NamedPositionSet }
  /** Explicit token indices; a negative index counts from the end (-1 = last). */
  | { readonly kind: 'indices'; readonly indices: readonly number[] }
  | { readonly kind: 'union'; readonly left: PositionSet; readonly right: PositionSet }
  | { readonly kind: 'difference'; readonly left: PositionSet; readonly right: PositionSet }
  /** A sweep variable bound to position sets; the planner substitutes it. */
  | { readonly kind: 'var'; readonly name: string };

export const namedPositionSets = [
  'subject', 'nonsubject', 'last', 'subject_first', 'subject_last', 'subject_next', 'all',
] as const;
export type NamedPositionSet = (typeof namedPositionSets)[number];

export type IntExpr =
  | { readonly kind: 'int'; readonly value: number }
  | { readonly kind: 'var'; readonly name: string }
  /** Integer arithmetic on sweep variables, e.g. `l + 1`, `start + 10`. */
  | { readonly kind: 'add' | 'sub'; readonly left: IntExpr; readonly right: IntExpr };

/** A set of layers (0-based block indices). */
export type LayerSet =
  | { readonly kind: 'all' }
  | { readonly kind: 'range'; readonly from: IntExpr; readonly to: IntExpr } // inclusive
  | { readonly kind: 'single'; readonly layer: IntExpr }
  /** k layers centred on `center`, clipped: max(0, c-⌊k/2⌋) .. min(L-1, c+⌈k/2⌉-1). */
  | { readonly kind: 'window'; readonly center: IntExpr; readonly size: IntExpr }
  /** `R within a..b`: R intersected with a..b (the paper's sublayer windows stop below the measured layer). */
  | { readonly kind: 'within'; readonly set: LayerSet; readonly from: IntExpr; readonly to: IntExpr };

export type Sweep =
  /** `for l in layers …` (block indices 0..L-1) or `for h in hidden …` (hidden-state indices 0..L). */
  | { readonly kind: 'layers' | 'hidden'; readonly variable: string; readonly values: readonly number[]; readonly span: SourceSpan }
  /**
   * `for t in positions …`: each value is a set with its label (source text). `each a..b` gives
   * the values {label: '[i]', set: {kind: 'indices', indices: [i]}} for i = a … b; a row whose
   * index falls outside a fact's prompt gives no value for that fact.
   */
  | {
      readonly kind: 'positions';
      readonly variable: string;
      readonly values: readonly { readonly label: string; readonly set: PositionSet }[];
      readonly span: SourceSpan;
    };

export interface BlockIntervention {
  readonly kind: 'block';
  readonly source: PositionSet;
  readonly target: PositionSet;
  readonly layers: LayerSet;
  readonly heads: readonly number[] | 'all';
  readonly span: SourceSpan;
}
/**
 * `cancel mlp|attention at layers R [at positions P]`: the sublayer's update at those
 * layers and positions (default `all`) is cancelled, as the `cancel_mlp` /
 * `cancel_attention` choices define.
 */
export interface CancelIntervention {
  readonly kind: 'cancel';
  readonly sublayer: 'mlp' | 'attention';
  readonly layers: LayerSet;
  readonly positions: PositionSet;
  readonly span: SourceSpan;
}

/**
 * `patch hidden L at positions P with hidden S` / `with mean hidden S`: the input of
 * block L (= hidden_states[L], 0..L-1) at P is replaced by hidden_states[S] (0..L) of the
 * same prompt's clean run, or by the mean of hidden_states[S] over every token position of
 * every kept fact (one vector), or (`with corrupted hidden S`) by hidden_states[S] of the clean
 * run of the fact's corrupted prompt (the dataset's `corrupted` field) at the same token indices.
 */
export interface PatchIntervention {
  readonly kind: 'patch';
  readonly layer: IntExpr;
  readonly positions: PositionSet;
  readonly source: { readonly kind: 'hidden' | 'mean_hidden' | 'corrupted_hidden'; readonly index: IntExpr };
  readonly span: SourceSpan;
}

export type Intervention = BlockIntervention | CancelIntervention | PatchIntervention;

/**
 * Where a probe reads: a hidden state (0..L), or the attention / MLP update of a block, or each head's share of it;
 * or `subject_embeddings`: the mean of the token input embeddings (embedding-matrix rows, no position embedding)
 * of the fact's subject tokens — the attributes rate's embedding baseline. It has no index and no position of its
 * own: its probe's `at` is always `subject` (the positions it averages over).
 */
export type Site =
  | { readonly kind: 'hidden'; readonly index: IntExpr }
  | { readonly kind: 'attention' | 'mlp' | 'heads'; readonly layer: IntExpr }
  | { readonly kind: 'subject_embeddings' };

/**
 * A probe measures an internal site of each row (after that row's interventions); src/lang/probes.ts
 * lists the probes and what each measures.
 * - a site probe (`kind` a SiteProbeName) reads `site` at the positions `at`, averaged over them; `k` is its
 *   count where the probe takes one (top_tokens);
 * - attention_weight: the attention that query positions `target` give keys `source` at `layer`, summed over keys,
 *   averaged over query positions; heads `all` = mean over heads, `each` = per head.
 *
 * `without` (a site probe that allows it, of `attention l`, at last only): the probe reads
 * block l's attention update at the last position recomputed from that row's attention
 * probabilities with the keys `without` removed (the `recompute` choice), not propagated.
 */
export type Probe =
  | {
      readonly kind: SiteProbeName;
      readonly k?: number;
      readonly site: Site;
      readonly at: PositionSet;
      readonly without?: PositionSet;
      readonly label: string;
      readonly span: SourceSpan;
    }
  | {
      readonly kind: 'attention_weight';
      readonly source: PositionSet;
      readonly target: PositionSet;
      readonly layer: IntExpr;
      readonly heads: 'all' | 'each';
      readonly label: string;
      readonly span: SourceSpan;
    }
  | AttributionProbe;

/**
 * Gradient attribution of a hidden state (the `attribution_target` and `attribution_reduction`
 * choices say what y is and how a position's product is reduced over the model width), per
 * position of `at` (default every position):
 * - attribution: h ⊙ ∂y/∂h of the row's own (intervened) run;
 * - integrated_gradients: (h − b) ⊙ the mean of ∂y/∂x over x = b + α(h − b), α at the midpoints of
 *   `steps` intervals, with hidden state h replaced by x at every position; b is the dataset's mean
 *   hidden state (`mean`) or 0 (`zero`).
 */
export type AttributionProbe =
  | { readonly kind: 'attribution'; readonly site: HiddenSite; readonly at: PositionSet; readonly label: string; readonly span: SourceSpan }
  | {
      readonly kind: 'integrated_gradients';
      readonly site: HiddenSite;
      readonly at: PositionSet;
      readonly steps: number;
      readonly baseline: IntegrationBaseline;
      readonly label: string;
      readonly span: SourceSpan;
    };

export const integrationBaselines = ['mean', 'zero'] as const;
export type IntegrationBaseline = (typeof integrationBaselines)[number];
export type HiddenSite = Extract<Site, { kind: 'hidden' }>;

/** `summarize extraction [in layers R]`: per-example extraction statistics over a layer sweep. */
export interface ExtractionSummary {
  readonly kind: 'extraction';
  /** Layers counted for the per-example rate (absent: every layer of the sweep). */
  readonly layers?: LayerSet;
  readonly span: SourceSpan;
}

export const measureNames = ['probability_change', 'probability', 'rank'] as const;
export type MeasureName = (typeof measureNames)[number];

export interface Experiment {
  readonly name: string;
  readonly sweeps: readonly Sweep[]; // outermost first
  readonly interventions: readonly Intervention[];
  /** Measures of the model's output (the clean top-1 token's probability and rank). */
  readonly measures: readonly MeasureName[];
  /** Measures of internal sites, in source order. */
  readonly probes: readonly Probe[];
  readonly summaries: readonly ExtractionSummary[];
  readonly span: SourceSpan;
  /** The .dissect source lines of this experiment, for provenance in reports. */
  readonly source: string;
}

/** Field (column) names of a jsonl / csv dataset; `corrupted` (optional) names the corrupted prompt of a clean/corrupted pair. */
export interface DatasetFields {
  readonly prompt: string;
  readonly subject: string;
  readonly target: string;
  readonly corrupted?: string;
}

/** Where a file's path is written: its string, or the parameter naming it (file errors point there). */
interface PathAt {
  readonly path: string;
  readonly pathSpan: SourceSpan;
}

export type DatasetSpec = PathAt & (
  /** CounterFact: requested_rewrite.{prompt (with "{}"), subject, target_true.str}. */
  | { readonly format: 'counterfact'; readonly span: SourceSpan }
  /** ROME known_1000.json: {prompt, subject, attribute}. */
  | { readonly format: 'known'; readonly span: SourceSpan }
  | { readonly format: 'jsonl' | 'csv'; readonly fields: DatasetFields; readonly span: SourceSpan });

/**
 * The attribute set of each subject, for `attributes_rate`. `json`: a map subject → strings;
 * `paragraphs`: the paper's CSV `subject,paragraphs`, tokenized with the model's tokenizer,
 * each token decoded on its own, deduplicated.
 */
export interface AttributesSpec extends PathAt {
  readonly format: 'json' | 'paragraphs';
  /** Top-K candidates taken from the projection before cleaning (paper: 500). */
  readonly candidates: number;
  /** Cleaned candidates kept (paper: 50). */
  readonly keep: number;
  /** Candidates and attributes shorter than this after strip() are dropped (paper: 3, i.e. len ≤ 2 dropped); 0 = off. */
  readonly minLength: number;
  /** Stopword list applied to both sides ('none' = off). */
  readonly stopwords: 'english' | 'none';
  readonly span: SourceSpan;
}

/**
 * `head_mappings layers R top k`: for every head of every listed layer, the head's OV circuit
 * read in token space (Dar et al. 2023), M = S · W_V^h · W_O^h · Sᵀ (|V| × |V|), S per the
 * `head_mapping_side` choice, no biases or norms; its `top` largest entries as token → token
 * pairs, with the heads flagged whose pairs hold a subject → attribute pair of the data
 * (subject tokens per the `mapping_subject_token` choice). The `head_mapping_normalisation`
 * choice can divide M by per-token normalisers first (Dar et al.'s notebook).
 */
export interface HeadMappingsSpec {
  /** Block indices, sorted, without duplicates, each in 0..L-1. */
  readonly layers: readonly number[];
  /** Pairs reported per head, 1..vocab. */
  readonly top: number;
  readonly span: SourceSpan;
}

/** The layer sites a `site` statement can name: the model's per-layer sites, in snake_case. */
export const overridableSites = [
  'resid_in', 'attn_norm', 'q', 'k', 'v', 'scores', 'probs', 'context', 'context_merged', 'attn_out',
  'resid_mid', 'mlp_norm', 'mlp_pre', 'mlp_act', 'mlp_out', 'resid_post',
] as const;
export type OverridableSite = (typeof overridableSites)[number];

/**
 * `site <name> at layers R = "<tensor>"`: in each layer l of R, site detection takes the named
 * tensor for the site (where it would find another one, or none) and matches on from it.
 */
export interface SiteOverrideSpec {
  readonly site: OverridableSite;
  /** 'all', or block indices (sorted, unique). */
  readonly layers: 'all' | readonly number[];
  /** The tensor's name; `{layer}` stands for the layer number. */
  readonly tensor: string;
  readonly span: SourceSpan;
}

export type FactFilter = 'known' | 'none';
export type BosPolicy = 'none' | 'prepend';

export interface Program {
  readonly file: string; // absolute path of the .dissect file
  readonly model: { readonly onnx: string; readonly tokenizer: string; readonly tokenizerSpan: SourceSpan; readonly span: SourceSpan };
  readonly dataset: DatasetSpec;
  /** Required when any probe is an attributes_rate. */
  readonly attributes?: AttributesSpec;
  readonly filter: FactFilter;
  readonly bos: BosPolicy;
  /** Named semantic choices in force (defaults filled in), recorded in every report. */
  readonly choices: Choices;
  /** Final parameter values after --set overrides. */
  readonly params: Readonly<Record<string, number | string>>;
  readonly experiments: readonly Experiment[];
  /** Present when the file has a `head_mappings` statement. */
  readonly headMappings?: HeadMappingsSpec;
  /** `site` statements, in source order. */
  readonly siteOverrides: readonly SiteOverrideSpec[];
}

/** What the checker needs to know about the model. */
export interface ModelShape {
  readonly layers: number;
  readonly heads: number;
  /** The tokens a projection ranks (limits.ts's rankedTokens: the model's vocabulary, or the tokenizer's when it has fewer). */
  readonly vocab: number;
}

export interface Diagnostic {
  readonly span: SourceSpan;
  readonly severity: 'error' | 'warning';
  readonly message: string; // one line
  readonly hint?: string;
}
