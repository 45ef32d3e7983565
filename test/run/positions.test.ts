import test from 'ava';
import type { PositionSet } from '../../src/lang/program.js';
import { InternalError, isRunError, RunUserError } from '../../src/run/errors.js';
import { resolvePositions, tryResolvePositions, type ExampleGeometry } from '../../src/run/positions.js';

const named = (name: 'subject' | 'nonsubject' | 'last' | 'subject_first' | 'subject_last' | 'subject_next'): PositionSet => ({ kind: 'named', name });
const idx = (...indices: number[]): PositionSet => ({ kind: 'indices', indices });

// "The mother tongue of Danielle Darrieux is": subject = tokens 4..7, N = 9
const mid: ExampleGeometry = { n: 9, subject: { start: 4, end: 8 } };
// "Beats Music is owned by": subject = 0..2, N = 6
const atZero: ExampleGeometry = { n: 6, subject: { start: 0, end: 3 } };
// the subject ends the prompt
const atEnd: ExampleGeometry = { n: 5, subject: { start: 3, end: 5 } };

test('named sets', (t) => {
  t.deepEqual(resolvePositions(named('subject'), mid), [4, 5, 6, 7]);
  t.deepEqual(resolvePositions(named('nonsubject'), mid), [0, 1, 2, 3]);
  t.deepEqual(resolvePositions(named('last'), mid), [8]);
  t.deepEqual(resolvePositions(named('subject_first'), mid), [4]);
  t.deepEqual(resolvePositions(named('subject_last'), mid), [7]);
  t.deepEqual(resolvePositions(named('subject_next'), mid), [8]); // = last, as e_range[-1]+1 in the paper

  t.deepEqual(resolvePositions(named('subject'), atZero), [0, 1, 2]);
  t.deepEqual(resolvePositions(named('nonsubject'), atZero), [3, 4]);
  t.deepEqual(resolvePositions(named('subject_next'), atZero), [3]);

  t.deepEqual(resolvePositions(named('nonsubject'), atEnd), [0, 1, 2]);
  t.deepEqual(resolvePositions(named('subject'), atEnd), [3, 4]);
  t.deepEqual(resolvePositions(named('subject_last'), atEnd), [4]);
  t.deepEqual(resolvePositions(named('last'), atEnd), [4]);
  t.deepEqual(resolvePositions(named('subject_next'), atEnd), []); // nothing follows the subject
});

test('a one-token prompt', (t) => {
  const one: ExampleGeometry = { n: 1, subject: { start: 0, end: 1 } };
  t.deepEqual(resolvePositions(named('nonsubject'), one), []);
  t.deepEqual(resolvePositions(named('last'), one), [0]);
  t.deepEqual(resolvePositions(named('subject_next'), one), []);
});

test('indices: negative from the end, sorted and unique', (t) => {
  t.deepEqual(resolvePositions(idx(0, -1), mid), [0, 8]);
  t.deepEqual(resolvePositions(idx(-1, 8, 3, 3, -9), mid), [0, 3, 8]);
  t.deepEqual(resolvePositions(idx(), mid), []);
});

test('indices out of range: error value, or UserError from resolvePositions', (t) => {
  for (const i of [9, -10, 100]) {
    const r = tryResolvePositions(idx(0, i), mid);
    t.true(isRunError(r));
    if (isRunError(r)) {
      t.is(r.code, 'positions');
      t.is(r.message, `position ${i} is outside a prompt of 9 tokens (valid: -9..8)`);
    }
    t.throws(() => resolvePositions(idx(i), mid), { instanceOf: RunUserError });
  }
  const nested = tryResolvePositions({ kind: 'union', left: named('last'), right: idx(42) }, mid);
  t.true(isRunError(nested));
});

test('union and difference', (t) => {
  const u: PositionSet = { kind: 'union', left: named('subject_last'), right: named('last') };
  t.deepEqual(resolvePositions(u, mid), [7, 8]);
  const d: PositionSet = { kind: 'difference', left: named('subject'), right: named('subject_last') };
  t.deepEqual(resolvePositions(d, mid), [4, 5, 6]);
  const nested: PositionSet = { kind: 'difference', left: { kind: 'union', left: named('nonsubject'), right: named('last') }, right: idx(0, -1) };
  t.deepEqual(resolvePositions(nested, mid), [1, 2, 3]);
  t.deepEqual(resolvePositions({ kind: 'union', left: named('subject'), right: named('subject') }, mid), [4, 5, 6, 7]);
});

test('a sweep variable or a broken geometry is an internal error', (t) => {
  t.throws(() => resolvePositions({ kind: 'var', name: 'blocked' }, mid), { instanceOf: InternalError, message: /blocked/ });
  t.throws(() => resolvePositions(named('last'), { n: 3, subject: { start: 2, end: 4 } }), { instanceOf: InternalError });
  t.throws(() => resolvePositions(named('last'), { n: 3, subject: { start: 1, end: 1 } }), { instanceOf: InternalError });
});
