// Position sets resolved against one tokenized example (indices into the model input, BOS
// included when prepended). N = n tokens, subject = [start, end):
//   subject        {start .. end-1}
//   nonsubject     {0 .. N-2} \ subject           (the last position is never in it)
//   last           {N-1}
//   subject_first  {start}
//   subject_last   {end-1}
//   subject_next   {end} when end <= N-1, else {} (the subject ends the prompt).
//                  Like the paper's e_range[-1]+1 it may equal N-1, i.e. the last position.
//   all            {0 .. N-1}
//   indices        i >= 0 as is, i < 0 counts from the end (-1 = N-1); outside the prompt
//                  is an error value.
//   union / difference  as sets.
// Results are sorted and unique. `var` must have been substituted by the planner.

import { InternalError, RunUserError, runError, type RunError } from './errors.js';
import type { PositionSet } from '../lang/program.js';
import type { SubjectRange } from './subject.js';

export interface ExampleGeometry {
  readonly n: number;
  readonly subject: SubjectRange;
}

/** The resolved set, or an error value for an explicit index outside the prompt. */
export function tryResolvePositions(set: PositionSet, ex: ExampleGeometry): number[] | RunError {
  const { n, subject } = ex;
  if (!Number.isInteger(n) || n < 1 || !(0 <= subject.start && subject.start < subject.end && subject.end <= n)) {
    throw new InternalError(`bad example geometry n=${n}, subject=[${subject.start}, ${subject.end})`);
  }
  const r = resolve(set, ex);
  return Array.isArray(r) ? sortUnique(r) : r;
}

/** As tryResolvePositions, but an index outside the prompt throws a UserError. */
export function resolvePositions(set: PositionSet, ex: ExampleGeometry): number[] {
  const r = tryResolvePositions(set, ex);
  if (!Array.isArray(r)) throw new RunUserError(r);
  return r;
}

/** resolvePositions of one example, as the measure stage reads positions (ProbeContext.positionsOf). */
export const positionsIn = (ex: ExampleGeometry) => (set: PositionSet): number[] => resolvePositions(set, ex);

function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let i = from; i < to; i++) out.push(i);
  return out;
}

function sortUnique(xs: number[]): number[] {
  const s = [...new Set(xs)];
  s.sort((a, b) => a - b);
  return s;
}

function resolve(set: PositionSet, ex: ExampleGeometry): number[] | RunError {
  const { n, subject: { start, end } } = ex;
  switch (set.kind) {
    case 'named':
      switch (set.name) {
        case 'subject': return range(start, end);
        case 'nonsubject': return range(0, n - 1).filter((i) => i < start || i >= end);
        case 'last': return [n - 1];
        case 'subject_first': return [start];
        case 'subject_last': return [end - 1];
        case 'subject_next': return end <= n - 1 ? [end] : [];
        case 'all': return range(0, n);
        default: throw new InternalError(`unknown position set ${(set as { name: string }).name}`);
      }
    case 'indices': {
      const out: number[] = [];
      for (const i of set.indices) {
        const j = i < 0 ? n + i : i;
        if (!Number.isInteger(i) || j < 0 || j >= n) {
          return runError('positions', `position ${i} is outside a prompt of ${n} tokens (valid: ${-n}..${n - 1})`);
        }
        out.push(j);
      }
      return out;
    }
    case 'union': case 'difference': {
      const l = resolve(set.left, ex);
      if (!Array.isArray(l)) return l;
      const r = resolve(set.right, ex);
      if (!Array.isArray(r)) return r;
      if (set.kind === 'union') return [...l, ...r];
      const drop = new Set(r);
      return l.filter((i) => !drop.has(i));
    }
    case 'var':
      throw new InternalError(`position variable ${set.name} reached the runner unsubstituted`);
    default:
      throw new InternalError(`unknown position set kind ${(set as { kind: string }).kind}`);
  }
}
