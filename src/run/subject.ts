// Where the subject sits in the token sequence (SUBJECT_POSITIONS, the paper's
// utils.find_token_range): tokens that only partly overlap the subject (and a leading-space
// token such as " Music") belong to it.

import { runError, type RunError } from './errors.js';

/** The rule locateSubject follows, in words (variant manifests record it). */
export const SUBJECT_POSITIONS = 'the first occurrence of the subject string in the prompt (exact, case-sensitive); its positions run from ' +
  'the first token whose end lies past the subject\'s first character to the first token whose end reaches the subject\'s end, ' +
  'as the paper\'s utils.find_token_range; with a prepended BOS every position counts it';

/** A token range [start, end). */
export interface SubjectRange {
  readonly start: number;
  readonly end: number;
}

export function locateSubject(
  prompt: string, subject: string, offsets: readonly (readonly [number, number])[],
): SubjectRange | RunError {
  if (subject.length === 0) {
    return runError('subject-not-found', `empty subject for prompt ${JSON.stringify(prompt)}`);
  }
  const charLoc = prompt.indexOf(subject);
  if (charLoc < 0) {
    return runError('subject-not-found',
      `subject ${JSON.stringify(subject)} does not occur in prompt ${JSON.stringify(prompt)}`,
      { hint: 'the match is exact and case-sensitive' });
  }
  const charEnd = charLoc + subject.length;
  let start = -1;
  for (let i = 0; i < offsets.length; i++) {
    const end = offsets[i]![1];
    if (start < 0 && end > charLoc) start = i;
    if (start >= 0 && end >= charEnd) {
      if (offsets[start]![0] >= charEnd) break; // the subject fell between tokens
      return { start, end: i + 1 };
    }
  }
  return runError('subject-not-found',
    `subject ${JSON.stringify(subject)} (characters ${charLoc}..${charEnd}) is covered by no token of prompt ${JSON.stringify(prompt)}`);
}
