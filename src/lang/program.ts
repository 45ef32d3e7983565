// The checked program: what the front end hands to the planner. Parameters are already
// substituted and paths resolved against the .dissect file's folder; sweep variables
// remain symbolic because the planner expands them.

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
  'subject', 'nonsubject', 'last', 'subject_first', 'subject_last', 'subject_next',
] as const;
export type NamedPositionSet = (typeof namedPositionSets)[number];

export type IntExpr =
  | { readonly kind: 'int'; readonly value: number }
  | { readonly kind: 'var'; readonly name: string };

/** A set of layers (0-based block indices). */
export type LayerSet =
  | { readonly kind: 'all' }
  | { readonly kind: 'range'; readonly from: IntExpr; readonly to: IntExpr } // inclusive
  | { readonly kind: 'single'; readonly layer: IntExpr }
  /** k layers centred on `center`, clipped: max(0, c-⌊k/2⌋) .. min(L-1, c+⌈k/2⌉-1). */
  | { readonly kind: 'window'; readonly center: IntExpr; readonly size: IntExpr };

export type Sweep =
  | { readonly kind: 'layers'; readonly variable: string; readonly values: readonly number[]; readonly span: SourceSpan }
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
export type Intervention = BlockIntervention;

export const measureNames = ['probability_change', 'probability', 'rank'] as const;
export type MeasureName = (typeof measureNames)[number];

export interface Experiment {
  readonly name: string;
  readonly sweeps: readonly Sweep[]; // outermost first
  readonly interventions: readonly Intervention[];
  readonly measures: readonly MeasureName[];
  readonly span: SourceSpan;
  /** The .dissect source lines of this experiment, for provenance in reports. */
  readonly source: string;
}

export interface DatasetFields { readonly prompt: string; readonly subject: string; readonly target: string }

export type DatasetSpec =
  /** CounterFact: requested_rewrite.{prompt (with "{}"), subject, target_true.str}. */
  | { readonly format: 'counterfact'; readonly path: string; readonly span: SourceSpan }
  /** ROME known_1000.json: {prompt, subject, attribute}. */
  | { readonly format: 'known'; readonly path: string; readonly span: SourceSpan }
  | { readonly format: 'jsonl' | 'csv'; readonly path: string; readonly fields: DatasetFields; readonly span: SourceSpan };

export type FactFilter = 'known' | 'none';
export type BosPolicy = 'none' | 'prepend';

export interface Program {
  readonly file: string; // absolute path of the .dissect file
  readonly model: { readonly onnx: string; readonly tokenizer: string; readonly span: SourceSpan };
  readonly dataset: DatasetSpec;
  readonly filter: FactFilter;
  readonly bos: BosPolicy;
  /** Named semantic choices in force (defaults filled in), recorded in every report. */
  readonly choices: Readonly<Record<string, string>>;
  /** Final parameter values after --set overrides. */
  readonly params: Readonly<Record<string, number | string>>;
  readonly experiments: readonly Experiment[];
}

/** What the checker needs to know about the model. */
export interface ModelShape {
  readonly layers: number;
  readonly heads: number;
  readonly vocab: number;
}

export interface Diagnostic {
  readonly span: SourceSpan;
  readonly severity: 'error' | 'warning';
  readonly message: string; // one line
  readonly hint?: string;
}
