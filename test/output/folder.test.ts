// The output folder: dissect removes only files it wrote, refuses a foreign non-empty folder
// without --force, and locks the folder for a whole command (with stale locks recognised).

import test from 'ava';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FolderLockedError, ForeignFolderError, LOCK_FILE, OutputFolder, OWNERSHIP_FILE, withOutputFolder } from '../../src/output/folder.js';
import { writeReport } from '../../src/report/html/index.js';
import { makeResults } from '../report/fixture.js';
import { richResults } from '../report/html-fixture.js';
import { tempDir } from '../temp.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const tmp = () => tempDir('folder');

function dissect(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ status: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

/** Every file under `dir` with its bytes, relative paths sorted. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const rel of (fs.readdirSync(dir, { recursive: true }) as string[]).sort()) {
    const f = path.join(dir, rel);
    if (fs.statSync(f).isFile()) out[rel] = fs.readFileSync(f, 'base64');
  }
  return out;
}

/** A thesis folder: the user's own plots and text, and a results.json copied in. */
function thesis(): { dir: string; results: string } {
  const dir = tmp();
  fs.mkdirSync(path.join(dir, 'plots'));
  fs.writeFileSync(path.join(dir, 'plots', 'figure-1.png'), 'my figure');
  fs.writeFileSync(path.join(dir, 'plots', 'layers.svg'), '<svg>mine</svg>');
  fs.writeFileSync(path.join(dir, 'thesis.tex'), '\\chapter{}');
  const results = path.join(tmp(), 'results.json');
  fs.writeFileSync(results, JSON.stringify(richResults()));
  return { dir, results };
}

test('`report --out` at a folder of the user\'s own files is refused and touches nothing', async (t) => {
  const { dir, results } = thesis();
  const before = snapshot(dir);
  const r = await dissect('report', results, '--out', dir);
  t.is(r.status, 1);
  t.regex(r.stderr, /is not empty and is not a dissect output folder \(it holds thesis\.tex\)/);
  t.regex(r.stderr, /hint: .*--force/);
  t.deepEqual(snapshot(dir), before);
});

test('with --force the report is written beside the user\'s files and never removes them', async (t) => {
  const { dir, results } = thesis();
  t.is((await dissect('report', results, '--out', dir, '--force')).status, 0);
  t.true(fs.existsSync(path.join(dir, 'report.html')));
  t.is(fs.readFileSync(path.join(dir, 'plots', 'figure-1.png'), 'utf8'), 'my figure');
  t.is(fs.readFileSync(path.join(dir, 'plots', 'layers.svg'), 'utf8'), '<svg>mine</svg>');
  t.is(fs.readFileSync(path.join(dir, 'thesis.tex'), 'utf8'), '\\chapter{}');
  // A later report with fewer plots removes dissect's stale plots, and only those.
  const owned = JSON.parse(fs.readFileSync(path.join(dir, OWNERSHIP_FILE), 'utf8')) as { files: string[] };
  const plotsBefore = owned.files.filter((f) => f.startsWith('plots/'));
  t.true(plotsBefore.length > 4);
  const fewer = path.join(tmp(), 'results.json');
  fs.writeFileSync(fewer, JSON.stringify(makeResults()));
  t.is((await dissect('report', fewer, '--out', dir)).status, 0, 'a folder dissect wrote into is its output: no --force needed');
  const left = fs.readdirSync(path.join(dir, 'plots')).sort();
  t.true(left.includes('figure-1.png') && left.includes('layers.svg'));
  const ownedAfter = JSON.parse(fs.readFileSync(path.join(dir, OWNERSHIP_FILE), 'utf8')) as { files: string[] };
  for (const f of plotsBefore) t.is(fs.existsSync(path.join(dir, f)), ownedAfter.files.includes(f), f);
  t.true(plotsBefore.some((f) => !ownedAfter.files.includes(f)), 'some plot went stale');
  t.false(fs.existsSync(path.join(dir, LOCK_FILE)));
});

test('a folder of an older dissect version (no record) is accepted, and its plots are kept', async (t) => {
  const dir = tmp();
  fs.mkdirSync(path.join(dir, 'plots'));
  fs.writeFileSync(path.join(dir, 'plots', 'old.svg'), '<svg/>');
  fs.writeFileSync(path.join(dir, 'results.json'), JSON.stringify(makeResults()));
  fs.writeFileSync(path.join(dir, 'journal.jsonl'), '');
  const out = OutputFolder.open(dir);
  await writeReport(out, makeResults(), { png: false });
  out.release();
  t.true(fs.existsSync(path.join(dir, 'plots', 'old.svg')));
  t.true(fs.existsSync(path.join(dir, 'report.html')));
});

test('--out at a file, or under one, is a user error', (t) => {
  const file = path.join(tmp(), 'x.txt');
  fs.writeFileSync(file, 'x');
  t.throws(() => OutputFolder.open(file), { message: /is a file, not a folder/ });
  t.throws(() => OutputFolder.open(path.join(file, 'sub')), { message: /cannot create the output folder .*a part of the path is a file/ });
  t.throws(() => OutputFolder.open(tmp() + '/' + 'n'.repeat(300)), { message: /the name is too long/ });
  t.is(fs.readFileSync(file, 'utf8'), 'x');
});

test('a foreign folder is named with what it holds', (t) => {
  const dir = tmp();
  for (const f of ['a', 'b', 'c', 'd']) fs.writeFileSync(path.join(dir, f), '');
  const e = t.throws(() => OutputFolder.open(dir), { instanceOf: ForeignFolderError });
  t.regex(e!.message, /it holds a, b, c, … \(4 in all\)/);
  t.deepEqual(fs.readdirSync(dir).sort(), ['a', 'b', 'c', 'd']);
});

const lockOf = (dir: string, record: object) => fs.writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify(record));

test('a live holder locks the folder; the message says how to recover', (t) => {
  const dir = tmp();
  const held = OutputFolder.open(dir);
  const record = JSON.parse(fs.readFileSync(path.join(dir, LOCK_FILE), 'utf8')) as { pid: number; host: string };
  t.is(record.pid, process.pid);
  t.is(record.host, os.hostname());
  held.release();
  t.false(fs.existsSync(path.join(dir, LOCK_FILE)));

  // Our parent is alive; a lock without a start time cannot be told from it.
  lockOf(dir, { pid: process.ppid, host: os.hostname() });
  const e = t.throws(() => OutputFolder.open(dir), { instanceOf: FolderLockedError });
  t.regex(e!.message, new RegExp(`pid ${process.ppid} on ${os.hostname()}`));
  t.regex(e!.hint!, new RegExp(`the lock is stale: delete .*${LOCK_FILE} and rerun`));
  // Another machine's lock cannot be checked: it holds, with the same advice.
  lockOf(dir, { pid: 1, host: 'node-17.cluster' });
  t.throws(() => OutputFolder.open(dir), { instanceOf: FolderLockedError, message: /on node-17\.cluster/ });
});

test('a stale lock is taken over: dead pid, a pid reused by another process, another boot, an old pid-only lock', (t) => {
  const dir = tmp();
  const stale = [
    { pid: 2147483646, host: os.hostname() },
    { pid: process.ppid, host: os.hostname(), start: '1' }, // the pid is alive, but started at another time
    { pid: process.ppid, host: os.hostname(), boot: 'another-boot' },
  ];
  for (const record of stale) {
    lockOf(dir, record);
    const f = OutputFolder.open(dir);
    t.is((JSON.parse(fs.readFileSync(path.join(dir, LOCK_FILE), 'utf8')) as { pid: number }).pid, process.pid, JSON.stringify(record));
    f.release();
  }
  fs.writeFileSync(path.join(dir, LOCK_FILE), '2147483646\n');
  OutputFolder.open(dir).release();
  t.false(fs.existsSync(path.join(dir, LOCK_FILE)));
});

test('`report --out` waits for no one: a folder a run holds is refused', async (t) => {
  const dir = tmp();
  const held = OutputFolder.open(dir);
  const results = path.join(tmp(), 'results.json');
  fs.writeFileSync(results, JSON.stringify(makeResults()));
  const r = await dissect('report', results, '--out', dir);
  held.release();
  t.is(r.status, 1);
  t.regex(r.stderr, /another dissect process \(pid \d+/);
  t.false(fs.existsSync(path.join(dir, 'report.html')));
});

test('a command that fails before writing leaves no empty --out behind; a folder it did not create, or one it wrote into, stays', async (t) => {
  const fresh = path.join(tmp(), 'new', 'out');
  await t.throwsAsync(withOutputFolder(fresh, {}, () => { throw new Error('failed'); }), { message: 'failed' });
  t.false(fs.existsSync(fresh));
  t.true(fs.existsSync(path.dirname(fresh)), 'only the folder --out names is removed');
  const existing = tmp();
  await withOutputFolder(existing, {}, () => undefined);
  t.true(fs.existsSync(existing));
  const written = path.join(tmp(), 'written');
  await t.throwsAsync(withOutputFolder(written, {}, (f) => { f.write('a.txt', 'a'); throw new Error('later'); }), { message: 'later' });
  t.is(fs.readFileSync(path.join(written, 'a.txt'), 'utf8'), 'a');
});
