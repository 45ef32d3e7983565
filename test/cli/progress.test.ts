// Progress without a terminal: a line every 10 s (never silent), the time left only once a fact
// of this invocation has finished; and Ctrl-C says what was saved and frees the folder.

import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { progressReporter } from '../../src/cli/progress.js';
import { LOCK_FILE } from '../../src/output/folder.js';
import { JOURNAL_FILE } from '../../src/run/journal.js';
import { tempDir } from '../temp.js';
import { cli } from './helpers.js';

test('without a terminal a progress line every 10 s, with the time left once it can be estimated', (t) => {
  let clock = 0;
  const lines: string[] = [];
  const p = progressReporter({ tty: false, write: (l) => lines.push(l), now: () => clock });
  p.update(5, 100); // resumed facts: no estimate from them
  clock = 4_000;
  p.update(5, 100);
  t.deepEqual(lines, [], 'nothing before 10 s');
  clock = 10_000;
  p.update(5, 100);
  t.deepEqual(lines, ['progress: 5/100 facts (5%), 10 s elapsed\n'], 'no time left before a fact finishes');
  clock = 20_000;
  p.update(15, 100); // 10 facts in 20 s: 85 left take 170 s
  t.is(lines[1], 'progress: 15/100 facts (15%), 20 s elapsed, about 2 min 50 s left\n');
  clock = 25_000;
  p.update(20, 100);
  t.is(lines.length, 2, 'at most one line per 10 s');
});

const example = fileURLToPath(new URL('../../../examples/information-flow.dissect', import.meta.url));

test('Ctrl-C prints what was saved and how to resume, and removes the lock for the rerun', async (t) => {
  const dir = tempDir('interrupt');
  const out = join(dir, 'out');
  const child = spawn(process.execPath, [cli, 'run', example, '--out', out, '--batch', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
  const journal = join(out, JOURNAL_FILE);
  for (let i = 0; i < 600; i++) {
    await new Promise((r) => setTimeout(r, 50));
    if (existsSync(journal) && readFileSync(journal, 'utf8').split('\n').filter(Boolean).length >= 3) break;
  }
  child.kill('SIGINT');
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  t.is(code, 130);
  const saved = readFileSync(journal, 'utf8').split('\n').filter(Boolean).length - 1;
  t.true(saved >= 2);
  t.regex(stderr, new RegExp(`interrupted: \\d+ finished facts saved in .*${JOURNAL_FILE}; run the same command again to resume from there`));
  t.false(existsSync(join(out, LOCK_FILE)), 'the folder is free for the rerun');
});
