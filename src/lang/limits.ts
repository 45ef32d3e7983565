// Bounds on what a .dissect file may ask for, so that a typo (`hidden 0..999999999`, a
// sweep written twice, a runaway expression) is an error with a position, not hours of work
// or a process that runs out of memory or stack. Every bound is checked before anything of
// that size is built.

import { error } from './diagnostics.js';
import type { Diagnostic, SourceSpan } from './program.js';

/**
 * Rows (forward passes besides the clean one) a program may plan: per fact, summed over its
 * experiments, and in total, rows per fact × facts. `--max-rows PER_FACT[/TOTAL]` raises them.
 */
export interface RowLimits {
  readonly perFact: number;
  readonly total: number;
}

/** The paper's program on GPT-2 XL plans about 1,800 rows per fact; these leave room for far more. */
export const defaultRowLimits: RowLimits = { perFact: 100_000, total: 100_000_000 };

/**
 * How deep expressions may nest: parentheses, terms of one union or sum (each + or − is a
 * level, as the expression is evaluated left to right), and `positions` definitions used
 * inside each other. Deeper ones would overflow the stack of the recursive stages.
 */
export const maxNesting = 256;

/**
 * The longest .dissect source, in characters: the parser's error recovery rescans the rest of
 * the file at each error, so a huge file of broken lines would take minutes. Real programs
 * are a few thousand characters.
 */
export const maxSourceLength = 1_000_000;

/**
 * Site overrides are read before the model, so their layers are bounded without it: far
 * above any published decoder's depth (GPT-2 XL has 48, the largest have under 200).
 */
export const maxOverrideLayer = 9_999;

/**
 * Integrated gradients run one forward and backward pass per step, fact and row: steps are
 * bounded like a sweep's size would be (the completeness gap is within 1% at 64 on the test models).
 */
export const maxIntegrationSteps = 4_096;

/**
 * The tokens a projection ranks and a head mapping reads: the model's vocabulary ids that the
 * tokenizer has (GPT-J's embedding has 50,400 rows for 50,257 tokens). The checker bounds every
 * count of top tokens by it (top_tokens k, attributes candidates, head_mappings top), and the
 * planner gives it to the compiled projections as their vocabulary, so a count `check` passes
 * is one the compiled variant accepts.
 */
export function rankedTokens(modelVocab: number, tokenizerVocab: number): number {
  return Math.min(modelVocab, tokenizerVocab);
}

/** "1,234,567": counts in messages. */
export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

/** The `--max-rows` value that lets `needed` rows through, keeping the limit that is not the problem. */
export function maxRowsFlag(limits: RowLimits, needed: { perFact?: number; total?: number }): string {
  const perFact = Math.max(limits.perFact, needed.perFact ?? 0);
  const total = Math.max(limits.total, needed.total ?? 0);
  return total === defaultRowLimits.total ? `--max-rows ${perFact}` : `--max-rows ${perFact}/${total}`;
}

/**
 * The error for a run over the total row limit, at the dataset statement, or undefined when
 * `facts` facts at `rowsPerFact` rows each fit.
 */
export function totalRowsError(dataset: SourceSpan, rowsPerFact: number, facts: number, limits: RowLimits): Diagnostic | undefined {
  const rows = rowsPerFact * facts;
  if (rows <= limits.total) return undefined;
  return error(dataset, `${formatCount(facts)} facts × ${formatCount(rowsPerFact)} rows per fact make ${formatCount(rows)} rows, more than the limit of ${formatCount(limits.total)}`,
    `run fewer facts (run --limit N or --sample N) or, if you mean it, raise the limit: ${maxRowsFlag(limits, { total: rows })}`);
}
