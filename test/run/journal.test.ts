import test from 'ava';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  canonicalJson,
  decodeLine,
  encodeLine,
  Journal,
  JOURNAL_FILE,
  JournalCorruptError,
  JournalFormatError,
  JournalMismatchError,
  journaledFacts,
  runFingerprint,
  type FingerprintInputs,
} from '../../src/run/journal.js';
import { UserError } from '../../src/errors.js';
import { tempDir } from '../temp.js';

const tmp = () => tempDir('journal');

const inputs: FingerprintInputs = {
  sourceText: 'experiment knockout { … }\n',
  params: { window: 9, layers: 48 },
  choices: { knockout_window: 'centred_clipped' },
  modelSha256: 'a'.repeat(64),
  tokenizerSha256: 'b'.repeat(64),
  datasetSha256: 'c'.repeat(64),
  selection: { filter: 'known', bos: 'none', limit: null, sample: null, seed: null },
};
const fp = runFingerprint(inputs);

interface Raw { p0: number; pNew: number[]; rank: number[] }
const raw = (i: number): Raw => ({ p0: 0.5 / (i + 1), pNew: [0.25, 0.125 * i], rank: [i, 0] });

function lines(dir: string): string[] {
  return fs.readFileSync(path.join(dir, JOURNAL_FILE), 'utf8').split('\n');
}

test('fingerprints: key order does not matter, every input does', (t) => {
  t.is(canonicalJson({ b: 1, a: [1, { d: 2, c: null }] }), '{"a":[1,{"c":null,"d":2}],"b":1}');
  t.is(runFingerprint({ ...inputs, params: { layers: 48, window: 9 } }).hash, fp.hash);
  t.regex(fp.hash, /^[0-9a-f]{64}$/);
  const changed: Partial<FingerprintInputs>[] = [
    { sourceText: 'x' }, { params: { window: 5, layers: 48 } }, { choices: {} }, { modelSha256: 'd'.repeat(64) },
    { tokenizerSha256: 'e'.repeat(64) }, { datasetSha256: 'f'.repeat(64) }, { selection: { ...inputs.selection, limit: 10 } },
    { extra: { device: 'cuda' } },
  ];
  const hashes = new Set([fp.hash, ...changed.map((c) => runFingerprint({ ...inputs, ...c }).hash)]);
  t.is(hashes.size, changed.length + 1);
});

test('non-JSON numbers, BigInts and typed arrays survive a line', (t) => {
  const v = { a: Number.NaN, b: Number.POSITIVE_INFINITY, c: -Infinity, d: 12n, e: new Float32Array([0.5, 0.25]), f: [1, null] };
  const line = encodeLine(v);
  t.false(line.includes('\n'));
  t.deepEqual(decodeLine(line), { a: Number.NaN, b: Infinity, c: -Infinity, d: 12n, e: [0.5, 0.25], f: [1, null] });
});

test('write, close, resume: finished examples are reloaded', (t) => {
  const dir = tmp();
  const j = Journal.open<Raw>(dir, fp);
  t.is(j.resumed, 0);
  for (let i = 0; i < 3; i++) j.append(i, raw(i));
  j.append('ex-x', raw(9));
  j.close();
  t.is(lines(dir).length, 1 + 4 + 1); // header, 4 entries, final ''
  t.deepEqual(JSON.parse(lines(dir)[1]!), { id: 0, data: { p0: 0.5, pNew: [0.25, 0], rank: [0, 0] } });

  const again = Journal.open<Raw>(dir, fp);
  t.is(again.resumed, 4);
  t.false(again.discardedPartialLine);
  t.true(again.has(2) && again.has('ex-x'));
  t.false(again.has('2')); // ids keep their type
  t.deepEqual(again.get(2), raw(2));
  t.deepEqual(again.entries().map((e) => e.id), [0, 1, 2, 'ex-x']);
  again.append(3, raw(3));
  again.close();
  t.is(Journal.open<Raw>(dir, fp).size, 5);
});

test('kill mid-write: a cut-off last line is ignored and cut away before appending', (t) => {
  const dir = tmp();
  const j = Journal.open<Raw>(dir, fp);
  j.append(0, raw(0));
  j.append(1, raw(1));
  j.close();
  const file = path.join(dir, JOURNAL_FILE);
  const full = fs.statSync(file).size;
  fs.truncateSync(file, full - 7); // the second entry loses its end and its newline

  const r = Journal.open<Raw>(dir, fp);
  t.is(r.resumed, 1);
  t.true(r.discardedPartialLine);
  t.true(r.has(0));
  t.false(r.has(1));
  r.append(1, raw(1));
  r.close();
  const ls = lines(dir);
  t.is(ls.length, 4);
  for (const l of ls.slice(0, 3)) t.notThrows(() => JSON.parse(l));
  t.is(fs.statSync(file).size, full);
});

test('journaledFacts (what Ctrl-C reports): distinct ids, a torn last line not counted; undefined without a journal', (t) => {
  const dir = tmp();
  t.is(journaledFacts(dir), undefined);
  const j = Journal.open<Raw>(dir, fp);
  for (const id of [0, 1, 1, 'ex-x']) j.append(id, raw(0)); // an id written again on resuming counts once
  j.close();
  t.is(journaledFacts(dir), 3);
  const file = path.join(dir, JOURNAL_FILE);
  fs.truncateSync(file, fs.statSync(file).size - 7);
  t.is(journaledFacts(dir), 2);
});

test('kill while writing the header: start afresh', (t) => {
  const dir = tmp();
  fs.writeFileSync(path.join(dir, JOURNAL_FILE), '{"format":"dissect-jour');
  const j = Journal.open<Raw>(dir, fp);
  t.is(j.resumed, 0);
  t.true(j.discardedPartialLine);
  j.close();
  t.is(JSON.parse(lines(dir)[0]!).fingerprint, fp.hash);
});

test('a real SIGKILL in the middle of a run loses nothing but the example in flight', async (t) => {
  const dir = tmp();
  const mod = new URL('../../src/run/journal.js', import.meta.url).href;
  const script = `
    import { Journal } from ${JSON.stringify(mod)};
    const fp = JSON.parse(process.argv[2]);
    const j = Journal.open(process.argv[1], fp, { durability: 'flush' });
    for (let i = 0; ; i++) j.append(i, { i, pad: 'x'.repeat(5000) });
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, dir, JSON.stringify(fp)], { stdio: 'ignore' });
  const file = path.join(dir, JOURNAL_FILE);
  for (let k = 0; k < 200; k++) {
    await new Promise((r) => setTimeout(r, 25));
    if (fs.existsSync(file) && fs.statSync(file).size > 200_000) break;
  }
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));

  const j = Journal.open<{ i: number; pad: string }>(dir, fp);
  t.true(j.resumed >= 30, `resumed ${j.resumed}`);
  t.deepEqual(j.entries().map((e) => e.data.i), [...Array(j.resumed).keys()]);
  j.close();
});

test('a different run is refused with a clear message', (t) => {
  const dir = tmp();
  const j = Journal.open<Raw>(dir, fp);
  j.append(0, raw(0));
  j.close();
  const other = runFingerprint({ ...inputs, params: { window: 5, layers: 48 }, datasetSha256: 'f'.repeat(64) });
  const e = t.throws(() => Journal.open<Raw>(dir, other), { instanceOf: JournalMismatchError });
  t.deepEqual(e!.changed, ['params', 'dataset']);
  t.regex(e!.message, /belongs to a different run \(changed: params, dataset\)/);
  t.true(e instanceof UserError); // the CLI prints message + hint, no stack
  t.regex(e!.hint!, /another output folder with --out, or pass --fresh/);
  // --fresh discards it.
  const fresh = Journal.open<Raw>(dir, other, { fresh: true });
  t.is(fresh.resumed, 0);
  fresh.close();
  t.is(lines(dir).length, 2);
  t.is(Journal.open<Raw>(dir, other).resumed, 0);
});

test('damage before the last line is an error, not silently skipped', (t) => {
  const dir = tmp();
  const j = Journal.open<Raw>(dir, fp);
  j.append(0, raw(0));
  j.append(1, raw(1));
  j.close();
  const ls = lines(dir);
  ls[1] = '{"id":0,"da';
  fs.writeFileSync(path.join(dir, JOURNAL_FILE), ls.join('\n'));
  t.throws(() => Journal.open<Raw>(dir, fp), { instanceOf: JournalCorruptError, message: /line 2 is not a journal entry/ });
  fs.writeFileSync(path.join(dir, JOURNAL_FILE), 'hello\n');
  t.throws(() => Journal.open<Raw>(dir, fp), { instanceOf: JournalCorruptError, message: /first line/ });
});

test('a journal of the old format (labels, not measure descriptors) is refused for resuming and merging, pointing at --fresh', (t) => {
  const dir = tmp();
  const j = Journal.open<Raw>(dir, fp);
  j.append(0, raw(0));
  j.close();
  const ls = lines(dir);
  ls[0] = ls[0]!.replace('"dissect-journal/2"', '"dissect-journal/1"');
  fs.writeFileSync(path.join(dir, JOURNAL_FILE), ls.join('\n'));
  const refused = t.throws(() => Journal.open<Raw>(dir, fp), { instanceOf: JournalFormatError });
  t.regex(refused!.message, /is a dissect-journal\/1 journal of an older dissect; this version reads dissect-journal\/2 only/);
  t.regex(refused!.hint!, /--fresh/);
  const other = Journal.open<Raw>(tmp(), fp);
  t.throws(() => other.importFrom(dir), { instanceOf: JournalFormatError });
  other.close();
  // --fresh starts over
  const fresh = Journal.open<Raw>(dir, fp, { fresh: true });
  t.is(fresh.resumed, 0);
  fresh.close();
});
