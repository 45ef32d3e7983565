// onnxruntime's telemetry is off: a run leaves nothing in the home folder (its event
// database under ~/.cache) or the temp folder (mat-debug-<pid>.log).

import test from 'ava';
import { readdirSync } from 'node:fs';
import { program, Sandbox } from './sandbox.js';

test('a run writes nothing into HOME or TMPDIR, only into --out', (t) => {
  const s = new Sandbox();
  const r = s.dissect('run', s.write('x.dissect', program({})), '--out', s.out, '--limit', '1');
  t.is(r.code, 0, r.stderr);
  t.deepEqual(readdirSync(s.path('home')), []);
  t.deepEqual(readdirSync(s.path('tmp')), [], 'no mat-debug-<pid>.log');
  t.deepEqual(r.touched, []);
  t.true(readdirSync(s.out).includes('results.json'));
});
