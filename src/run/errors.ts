// Error values of the run stage. A problem with the user's input (a tokenizer file, a
// dataset record, a prompt whose subject is missing, a device that is not installed) comes
// back as a RunError value so that the caller can decide whether to stop, skip the fact or
// collect several problems. `orThrow` turns one into the CLI's UserError. Bugs (a broken
// invariant between stages) are thrown as InternalError.

import { fsReason, UserError } from '../errors.js';
import type { SourceSpan } from '../lang/program.js';

export type RunErrorCode =
  | 'tokenizer'          // missing or malformed tokenizer file; text that cannot be aligned
  | 'dataset'            // missing file, unreadable JSON/CSV, a record of the wrong shape
  | 'subject-not-found'  // the subject string does not occur in the prompt
  | 'example'            // a fact that cannot become a model input (empty prompt, no BOS, ...)
  | 'prompt-too-long'    // a prompt with more tokens than the model has positions
  | 'positions'          // an explicit position index outside the prompt
  | 'model'              // a model file that is missing or that onnxruntime rejects
  | 'device';            // an execution provider that is not installed or fails to start

export interface RunError {
  readonly kind: 'run-error';
  readonly code: RunErrorCode;
  /** One line, names the file / record / prompt concerned. */
  readonly message: string;
  readonly hint?: string;
  readonly file?: string;
  /** 1-based record number in a dataset file. */
  readonly record?: number;
  /** The .dissect declaration that led here, when known. */
  readonly span?: SourceSpan;
}

export function runError(
  code: RunErrorCode, message: string,
  extra: { hint?: string; file?: string; record?: number; span?: SourceSpan } = {},
): RunError {
  const e: { -readonly [K in keyof RunError]: RunError[K] } = { kind: 'run-error', code, message };
  if (extra.hint !== undefined) e.hint = extra.hint;
  if (extra.file !== undefined) e.file = extra.file;
  if (extra.record !== undefined) e.record = extra.record;
  if (extra.span !== undefined) e.span = extra.span;
  return e;
}

/** A user's file that a read failed on (`e`), in the CLI's wording for file-system errors. */
export function unreadable(code: RunErrorCode, what: string, file: string, e: unknown, extra: { hint?: string; span?: SourceSpan } = {}): RunError {
  return runError(code, `cannot read ${what} ${file}: ${fsReason(e)}`, { file, ...extra });
}

export function isRunError(x: unknown): x is RunError {
  return typeof x === 'object' && x !== null && (x as { kind?: unknown }).kind === 'run-error';
}

/** A UserError that carries the RunError it came from. */
export class RunUserError extends UserError {
  constructor(readonly error: RunError) {
    super(error.span ? `${error.span.file}:${error.span.line}:${error.span.column}: ${error.message}` : error.message, error.hint);
    this.name = 'RunUserError';
  }
}

/** The value, or throw the error as a UserError (the CLI prints it without a stack). */
export function orThrow<T>(x: T | RunError): T {
  if (isRunError(x)) throw new RunUserError(x);
  return x;
}

/** A broken contract between stages: a bug, not a user error. */
export class InternalError extends Error {
  constructor(message: string) {
    super(`internal error: ${message}`);
    this.name = 'InternalError';
  }
}
