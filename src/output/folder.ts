// The folder a command writes into (--out). dissect writes and removes only files it
// wrote itself: every file is recorded in OWNERSHIP_FILE, and only recorded files are
// ever replaced or removed. A non-empty folder that is not a dissect output (no record,
// and entries dissect would not write) is refused unless the user forces it, so
// `--out ~/thesis` cannot clobber or tidy away their own plots.
//
// The folder is also locked for the whole command (run, merge, report, compile), so two
// processes never write into one folder. The lock records the process (pid, host, boot,
// the process's start time), so a lock whose pid now belongs to another live process is
// still recognised as stale.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fsUserError, UserError } from '../errors.js';

export const OWNERSHIP_FILE = '.dissect-output.json';
export const LOCK_FILE = 'dissect.lock';
const OWNERSHIP_FORMAT = 'dissect-output/1';

/**
 * Entries an output folder of an earlier dissect version (before ownership was recorded)
 * can hold. Such a folder is accepted without --force; nothing in it is removed.
 */
const DISSECT_ENTRIES = new Set([
  OWNERSHIP_FILE, LOCK_FILE, 'journal.lock', 'journal.jsonl', 'results.json', 'results.csv', 'report.html', 'plots',
  'manifest.json', 'model.onnx', 'variant.onnx',
]);

export interface OpenOptions {
  /** Write into a non-empty folder that is not a dissect output (its files are still never removed). */
  readonly force?: boolean;
}

/** What the lock file holds. Older versions wrote the pid alone. */
interface LockRecord {
  readonly pid: number;
  readonly host?: string;
  readonly boot?: string;
  /** The process's start time (clock ticks since boot, Linux), to tell a reused pid. */
  readonly start?: string;
  readonly startedAt?: string;
  readonly command?: string;
}

/** Another live process holds the folder. */
export class FolderLockedError extends UserError {
  constructor(readonly file: string, readonly holder: LockRecord) {
    const where = holder.host ? ` on ${holder.host}` : '';
    const since = holder.startedAt ? `, since ${holder.startedAt}` : '';
    super(
      `another dissect process (pid ${holder.pid}${where}${since}) is writing to this output folder (${file})`,
      `wait for it to finish, or choose another output folder with --out. If no dissect process with pid ${holder.pid} ` +
        `runs${where} (e.g. it was killed on another machine), the lock is stale: delete ${file} and rerun`,
    );
    this.name = 'FolderLockedError';
  }
}

/** A non-empty folder that dissect did not write. */
export class ForeignFolderError extends UserError {
  constructor(readonly dir: string, readonly foreign: readonly string[]) {
    const shown = foreign.slice(0, 3).join(', ') + (foreign.length > 3 ? `, … (${foreign.length} in all)` : '');
    super(
      `${dir} is not empty and is not a dissect output folder (it holds ${shown})`,
      'choose a new or empty folder with --out, or pass --force to write beside those files (dissect never removes files it did not write)',
    );
    this.name = 'ForeignFolderError';
  }
}

/** Linux: this boot's id and a process's start time; undefined elsewhere. */
function bootId(): string | undefined {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return undefined;
  }
}

function processStart(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at its closing parenthesis;
    // starttime is field 22, the 20th after it.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function parseLock(text: string): LockRecord | undefined {
  try {
    const r = JSON.parse(text) as LockRecord;
    if (typeof r === 'object' && r !== null && Number.isInteger(r.pid)) return r;
    if (typeof r === 'number' && Number.isInteger(r)) return { pid: r }; // an older version's lock: the pid alone
  } catch {
    /* a lock cut short while being written: nobody holds it */
  }
  return undefined;
}

/** Whether the process that wrote `lock` may still be running. Unknowable for another host: assume it is. */
function holderAlive(lock: LockRecord): boolean {
  if (lock.host !== undefined && lock.host !== os.hostname()) return true;
  if (lock.pid === process.pid) return false;
  if (!pidAlive(lock.pid)) return false;
  const boot = bootId();
  if (lock.boot !== undefined && boot !== undefined && lock.boot !== boot) return false;
  const start = processStart(lock.pid);
  return lock.start === undefined || start === undefined || lock.start === start;
}

function ownRecord(): LockRecord {
  const boot = bootId();
  const start = processStart(process.pid);
  return {
    pid: process.pid, host: os.hostname(), ...(boot ? { boot } : {}), ...(start ? { start } : {}),
    startedAt: new Date(Date.now() - process.uptime() * 1000).toISOString(), command: process.argv.slice(1).join(' '),
  };
}

/** Throws FolderLockedError while a live process holds `dir`'s lock (a stale lock, or none, passes). */
export function refuseLocked(dir: string): void {
  const file = path.join(dir, LOCK_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return; // no lock, or released meanwhile
  }
  const held = parseLock(text);
  if (held && holderAlive(held)) throw new FolderLockedError(file, held);
}

function takeLock(dir: string): string {
  const file = path.join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, JSON.stringify(ownRecord()) + '\n', { flag: 'wx' });
      return file;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw fsUserError('lock', dir, e);
      refuseLocked(dir);
      fs.rmSync(file, { force: true }); // stale: its process is gone
    }
  }
  throw new Error(`internal: could not take the lock ${file}`);
}

function readOwnership(dir: string): Set<string> | undefined {
  let text: string;
  try {
    text = fs.readFileSync(path.join(dir, OWNERSHIP_FILE), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const o = JSON.parse(text) as { format?: string; files?: unknown };
    if (o.format === OWNERSHIP_FORMAT && Array.isArray(o.files)) return new Set(o.files.filter((f): f is string => typeof f === 'string'));
  } catch {
    /* damaged: treated as owning nothing, below */
  }
  return new Set();
}

/** Refuse a non-empty folder that is neither recorded as a dissect output nor one of an older version. */
function checkNotForeign(dir: string, marked: boolean, force: boolean): void {
  if (marked || force) return;
  const foreign = fs.readdirSync(dir).filter((e) => !DISSECT_ENTRIES.has(e)).sort();
  if (foreign.length > 0) throw new ForeignFolderError(dir, foreign);
}

/** A reader never sees a half-written file: write a temporary name, then rename. */
function writeAtomic(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw fsUserError('write', file, e);
  }
}

const toKey = (rel: string) => rel.split(path.sep).join('/');

/** Folders this process holds, so an interrupt can release their locks (see releaseOpenFolders). */
const open = new Set<OutputFolder>();

/** Releases every folder this process holds (Ctrl-C); returns their paths. */
export function releaseOpenFolders(): string[] {
  const dirs = [...open].map((f) => f.dir);
  for (const f of [...open]) f.release();
  return dirs;
}

export class OutputFolder {
  private released = false;

  /** `created`: this command made the folder, so a command that fails before writing leaves none behind. */
  private constructor(readonly dir: string, private readonly lock: string, private readonly owned: Set<string>, private readonly created: boolean) {}

  /** Create (if needed), check and lock `dir`. Every file-system problem is a UserError. */
  static open(dir: string, options: OpenOptions = {}): OutputFolder {
    const abs = path.resolve(dir);
    const created = !fs.existsSync(abs);
    try {
      if (fs.existsSync(abs) && !fs.statSync(abs).isDirectory()) throw new UserError(`--out ${dir} is a file, not a folder`, 'give a folder (new or a dissect output)');
      fs.mkdirSync(abs, { recursive: true });
    } catch (e) {
      if (e instanceof UserError) throw e;
      throw fsUserError('create the output folder', dir, e);
    }
    const owned = readOwnership(abs);
    checkNotForeign(abs, owned !== undefined, options.force === true);
    const lock = takeLock(abs);
    const folder = new OutputFolder(abs, lock, owned ?? new Set(), created);
    open.add(folder);
    return folder;
  }

  /** Absolute path of a file in the folder. */
  file(rel: string): string {
    return path.join(this.dir, rel);
  }

  /** Whether dissect wrote `rel` (a path relative to the folder). */
  owns(rel: string): boolean {
    return this.owned.has(toKey(rel));
  }

  /** Record `rel` as written by dissect, before writing it: a crash mid-write still leaves it ours to replace. */
  claim(rel: string): string {
    const key = toKey(rel);
    if (!this.owned.has(key)) {
      this.owned.add(key);
      this.saveOwnership();
    }
    return this.file(rel);
  }

  /** Write a file atomically (temporary name, then rename) and record it. */
  write(rel: string, data: string | Uint8Array): string {
    const file = this.claim(rel);
    writeAtomic(file, data);
    return file;
  }

  /** Remove the files dissect wrote under `relDir` that are not in `keep` (relative paths); nothing else. */
  removeOwnedExcept(relDir: string, keep: ReadonlySet<string>): string[] {
    const prefix = toKey(relDir) + '/';
    const kept = new Set([...keep].map(toKey));
    const removed: string[] = [];
    for (const key of [...this.owned]) {
      if (!key.startsWith(prefix) || kept.has(key)) continue;
      fs.rmSync(this.file(key), { force: true });
      this.owned.delete(key);
      removed.push(key);
    }
    if (removed.length) this.saveOwnership();
    return removed;
  }

  /** Release the lock. Safe to call twice. */
  release(): void {
    if (this.released) return;
    this.released = true;
    open.delete(this);
    fs.rmSync(this.lock, { force: true });
    if (!this.created) return;
    // a command that failed before writing anything leaves no empty --out behind; release runs
    // in a finally, so a problem here must not hide the command's own error
    try {
      if (fs.readdirSync(this.dir).length === 0) fs.rmdirSync(this.dir);
    } catch {
      /* the folder stays */
    }
  }

  private saveOwnership(): void {
    writeAtomic(path.join(this.dir, OWNERSHIP_FILE), JSON.stringify({ format: OWNERSHIP_FORMAT, files: [...this.owned].sort() }, null, 1) + '\n');
  }
}

/** Run `body` with `dir` open and locked; the lock is released however it ends. */
export async function withOutputFolder<T>(dir: string, options: OpenOptions, body: (folder: OutputFolder) => Promise<T> | T): Promise<T> {
  const folder = OutputFolder.open(dir, options);
  try {
    return await body(folder);
  } finally {
    folder.release();
  }
}
