// A fact made ready for the model: token ids, the subject's token range and the target's
// first token. With BOS policy `prepend` the BOS id goes first and every index (subject
// range, n, last) counts it; `none` feeds the prompt's own tokens, as the paper does.

import { findChoice } from '../lang/choices.js';
import type { BosPolicy, Program } from '../lang/program.js';
import type { RowConventions } from '../onnx/variant.js';
import type { Fact } from './dataset.js';
import { isRunError, runError, RunUserError, type RunError } from './errors.js';
import { locateSubject, SUBJECT_POSITIONS, type SubjectRange } from './subject.js';
import type { Encoded, Tokenizer } from './tokenizer.js';
import type { ExampleGeometry } from './positions.js';

export interface Example extends ExampleGeometry {
  readonly fact: Fact;
  /** Model input ids (BOS first when prepended). */
  readonly ids: readonly number[];
  /** Character offsets of each id in fact.prompt; a prepended BOS gets [0, 0]. */
  readonly offsets: readonly (readonly [number, number])[];
  /** Subject token range in `ids` (shifted by one when BOS is prepended). */
  readonly subject: SubjectRange;
  /** ids.length */
  readonly n: number;
  /** The last index, n - 1. */
  readonly lastIndex: number;
  readonly bos: boolean;
  /** subject.start === 0 (the paper's is_subject_position_zero); never true with a BOS. */
  readonly subjectAtZero: boolean;
  /** First token of the target: of ' ' + target for byte-level BPE, of target otherwise. */
  readonly targetFirstToken: number;
  /** All tokens of that encoding. */
  readonly targetIds: readonly number[];
}

/** How `program` turns facts into rows, for a variant's manifest. */
export function rowConventions(program: Program): RowConventions {
  const window = program.choices.knockout_window;
  return {
    tokenizer: program.model.tokenizer,
    bos: program.bos === 'prepend' ? 'prepend: the tokenizer\'s BOS id goes first, and every position counts it' : 'none: the prompt\'s own tokens',
    window: { choice: 'knockout_window', value: window, meaning: findChoice('knockout_window')!.values.find((v) => v.name === window)!.meaning },
    subjectPositions: SUBJECT_POSITIONS,
  };
}

/** Why `tokenizer` cannot give the BOS token `bos prepend` asks for; undefined when it can. */
export function bosUnavailable(tokenizer: Tokenizer): RunError | undefined {
  if (tokenizer.bosId !== undefined) return undefined;
  return runError('example', `bos prepend: tokenizer ${tokenizer.path} has no <|endoftext|>, bos_token or eos_token`, {
    hint: 'use `bos none`, or add bos_token to a tokenizer_config.json beside the tokenizer',
  });
}

/**
 * The model input of a fact. `positions`: the most tokens the model takes (ModelLimits), BOS
 * included; a longer prompt is an error value with code 'prompt-too-long'.
 */
export function prepareExample(
  fact: Fact, tokenizer: Tokenizer, bos: BosPolicy, positions?: { readonly count: number; readonly table: string },
): Example | RunError {
  const where = `fact ${fact.id} (record ${fact.record})`;
  if (fact.prompt.length === 0) return runError('example', `${where}: empty prompt`, { record: fact.record });
  let enc: Encoded;
  let targetEnc: Encoded;
  // Byte-level BPE: the target follows the prompt after a space (" Apple"), unless it has one.
  const targetText = tokenizer.kind === 'byte-level' && !/^\s/.test(fact.target) ? ` ${fact.target}` : fact.target;
  try {
    enc = tokenizer.encode(fact.prompt);
    targetEnc = tokenizer.encode(targetText);
  } catch (e) {
    if (e instanceof RunUserError) return { ...e.error, message: `${where}: ${e.error.message}`, record: fact.record };
    throw e;
  }
  if (enc.ids.length === 0) return runError('example', `${where}: prompt ${JSON.stringify(fact.prompt)} has no tokens`, { record: fact.record });
  if (targetEnc.ids.length === 0) return runError('example', `${where}: target ${JSON.stringify(fact.target)} has no tokens`, { record: fact.record });
  const located = locateSubject(fact.prompt, fact.subject, enc.offsets);
  if (isRunError(located)) return { ...located, message: `${where}: ${located.message}`, record: fact.record };
  let ids = enc.ids;
  let offsets: (readonly [number, number])[] = enc.offsets;
  let subject = located;
  const prepend = bos === 'prepend';
  if (prepend) {
    const noBos = bosUnavailable(tokenizer);
    if (noBos) return noBos;
    ids = [tokenizer.bosId!, ...ids];
    offsets = [[0, 0], ...offsets];
    subject = { start: located.start + 1, end: located.end + 1 };
  }
  if (positions && ids.length > positions.count) {
    return runError('prompt-too-long',
      `${where}: the prompt has ${ids.length} tokens${prepend ? ' (BOS included)' : ''}, but the model takes at most ${positions.count} (its position table ${positions.table} has ${positions.count} rows)`,
      { record: fact.record });
  }
  return {
    fact, ids, offsets, subject, n: ids.length, lastIndex: ids.length - 1, bos: prepend,
    subjectAtZero: subject.start === 0,
    targetFirstToken: targetEnc.ids[0]!, targetIds: targetEnc.ids,
  };
}
