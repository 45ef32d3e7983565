// What the run stage journals per example and the measure stage reads back: the raw
// numbers of every plan row, enough to rebuild every measure without the model. The one
// home of the journal record type.

import type { CleanOutput } from './knockout.js';
import type { ResultsExample } from './schema.js';

/**
 * Why a fact is not measured: the model's top-1 is not its target (`filter known`); its subject
 * is not in its prompt; its prompt cannot become a model input; its prompt has more tokens
 * than the model has positions; an earlier fact has its id.
 */
export const DROP_REASONS = ['not_known', 'subject_not_found', 'unusable_prompt', 'prompt_too_long', 'duplicate_id'] as const;
export type DropReason = (typeof DROP_REASONS)[number];

/** Top tokens a `top_tokens` probe read at one position. */
export interface TokenList {
  /** The id of the probe's measure descriptor. */
  readonly measure: string;
  readonly position: number;
  readonly tokens: readonly string[];
}

/** An attribution probe's values at each position it reads, in position order. */
export interface PositionValues {
  /** The probe's label (its descriptors' shared label). */
  readonly measure: string;
  readonly positions: readonly number[];
  readonly values: readonly number[];
}

/** One plan row of one example. */
export interface RowRecord {
  /** The clean top-1 token's probability and rank at the output, under the row's interventions. */
  readonly pNew: number;
  readonly rank: number;
  /** Query rows (per layer and head slot) whose every causal key was blocked. */
  readonly fullyBlocked: number;
  /** Measure descriptor id → value, for the row's probes. */
  readonly probes: Readonly<Record<string, number>>;
  readonly tokens: readonly TokenList[];
  /** Attribution probes' per-position values (absent when the row has none). */
  readonly positionValues?: readonly PositionValues[];
  /** Extraction decisions where the top two scores were equal (reported, never hidden). */
  readonly ties: number;
}

export type ExampleRecord =
  | { readonly status: 'dropped'; readonly reason: DropReason; readonly detail?: string }
  | {
      readonly status: 'kept';
      readonly example: ResultsExample;
      readonly clean: CleanOutput;
      /** Per experiment, per plan row (plan order); null where a row's explicit position lies outside this prompt. */
      readonly rows: readonly (readonly (RowRecord | null)[])[];
    };
