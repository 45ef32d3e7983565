// Resumable runs. Every finished example is appended to `journal.jsonl` in the output
// folder as one JSON line holding all its raw numbers, written with one write call and
// fsync'd, so a killed run loses at most the example in flight. The first line is a
// header with the run's fingerprint; rerunning the same command reloads the finished
// examples and skips them, while a run with a different fingerprint is refused.
//
// File format (JSON Lines, UTF-8, '\n' after every line):
//   line 1: {"format":"dissect-journal/2","fingerprint":"<sha256>","parts":{...},"createdAt":"…"}
//   then:   {"id":<example id>,"data":<raw numbers>}
// Format 2 keys every value by its measure descriptor's id (src/measure/record.ts); a journal
// of another format is refused, not read into numbers it does not hold.
// Numbers JSON cannot hold are encoded as {"$num":"NaN"|"Infinity"|"-Infinity"} and
// BigInts (onnxruntime's int64) as {"$bigint":"123"}; both are decoded on reading. Typed
// arrays are stored as plain arrays and read back as arrays.
//
// A last line without its '\n' (or that does not parse) is a write cut short by a kill:
// it is ignored and cut off before new lines are appended. A bad line anywhere else is
// corruption and stops the run.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../errors.js';
import type { ExampleId } from '../measure/schema.js';

export const JOURNAL_FILE = 'journal.jsonl';
const JOURNAL_FORMAT = 'dissect-journal/2' as const;

/** Everything that decides a run's numbers. Two runs may share a journal only if all agree. */
export interface FingerprintInputs {
  readonly sourceText: string;
  readonly params: Readonly<Record<string, number | string>>;
  readonly choices: Readonly<Record<string, string>>;
  readonly modelSha256: string;
  readonly tokenizerSha256: string;
  readonly datasetSha256: string;
  /** Example selection: filter, bos, limit, sample, seed, … */
  readonly selection: Readonly<Record<string, unknown>>;
  /** Anything else that changes the raw numbers (e.g. tool version, device). */
  readonly extra?: Readonly<Record<string, unknown>>;
}

export interface Fingerprint {
  /** sha256 over the parts. */
  readonly hash: string;
  /** sha256 of each input, so a mismatch can say what changed. */
  readonly parts: Readonly<Record<string, string>>;
}

/** JSON with object keys sorted at every level: equal values give equal text. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') {
    const s = JSON.stringify(v);
    if (s === undefined) throw new TypeError(`cannot fingerprint a ${typeof v}`);
    return s;
  }
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : canonicalJson(x))).join(',')}]`;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
}

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

export function runFingerprint(inputs: FingerprintInputs): Fingerprint {
  const parts: Record<string, string> = {
    source: sha256(inputs.sourceText),
    params: sha256(canonicalJson(inputs.params)),
    choices: sha256(canonicalJson(inputs.choices)),
    model: inputs.modelSha256,
    tokenizer: inputs.tokenizerSha256,
    dataset: inputs.datasetSha256,
    selection: sha256(canonicalJson(inputs.selection)),
    extra: sha256(canonicalJson(inputs.extra ?? {})),
  };
  return { hash: sha256(canonicalJson(parts)), parts };
}

const journalHint = 'choose another output folder with --out, or pass --fresh to discard the journal and start over.';

/** The output folder holds a journal of a different run. A user error: they pick. */
export class JournalMismatchError extends UserError {
  constructor(readonly file: string, readonly changed: readonly string[]) {
    const what = changed.length > 0 ? changed.join(', ') : 'the run settings';
    super(`${file} belongs to a different run (changed: ${what}), so it cannot be resumed`, journalHint);
    this.name = 'JournalMismatchError';
  }
}

/** The journal was written by a dissect whose records this one cannot read. */
export class JournalFormatError extends UserError {
  constructor(readonly file: string, readonly format: string) {
    super(`${file} is a ${format} journal of an older dissect; this version reads ${JOURNAL_FORMAT} only, so it cannot be resumed or merged`,
      'pass --fresh to discard it and run again (or choose another output folder with --out)');
    this.name = 'JournalFormatError';
  }
}

/** The journal cannot be read (not a journal, or a damaged line before the end). */
export class JournalCorruptError extends UserError {
  constructor(readonly file: string, detail: string) {
    super(`${file} is damaged (${detail}), so it cannot be resumed`, journalHint);
    this.name = 'JournalCorruptError';
  }
}

function replacer(_key: string, v: unknown): unknown {
  if (typeof v === 'number' && !Number.isFinite(v)) return { $num: String(v) };
  if (typeof v === 'bigint') return { $bigint: v.toString() };
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) return Array.from(v as unknown as ArrayLike<unknown>);
  return v;
}

function reviver(_key: string, v: unknown): unknown {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    const keys = Object.keys(v);
    if (keys.length === 1) {
      const o = v as Record<string, unknown>;
      if (typeof o['$num'] === 'string') return Number(o['$num']);
      if (typeof o['$bigint'] === 'string') return BigInt(o['$bigint']);
    }
  }
  return v;
}

/** Encode one journal line (without the newline). */
export function encodeLine(value: unknown): string {
  return JSON.stringify(value, replacer);
}

/** Decode one journal line. */
export function decodeLine(line: string): unknown {
  return JSON.parse(line, reviver);
}

interface Header {
  readonly format: typeof JOURNAL_FORMAT;
  readonly fingerprint: string;
  readonly parts: Readonly<Record<string, string>>;
  readonly createdAt: string;
}

export interface JournalOptions {
  /** Discard an existing journal and start a new one. */
  readonly fresh?: boolean;
  /** 'fsync' (default): each line reaches the disk before append returns; 'flush': the OS only. */
  readonly durability?: 'fsync' | 'flush';
}

function isExampleId(x: unknown): x is ExampleId {
  return typeof x === 'string' || (typeof x === 'number' && Number.isInteger(x));
}

/** What a journal file holds: its header (absent when not even that line was finished) and entries. */
interface JournalContents<T> {
  readonly header?: Header;
  readonly loaded: { id: ExampleId; data: T }[];
  /** Bytes of whole lines; a torn last line lies beyond. */
  readonly keep: number;
  readonly size: number;
  readonly discarded: boolean;
}

function readJournal<T>(file: string): JournalContents<T> {
  const buf = fs.readFileSync(file);
  const lastNewline = buf.lastIndexOf(0x0a);
  if (lastNewline < 0) return { loaded: [], keep: 0, size: buf.length, discarded: buf.length > 0 };
  const complete = buf.subarray(0, lastNewline).toString('utf8').split('\n');
  let keep = lastNewline + 1;
  let discarded = keep < buf.length;

  let header: Header;
  try {
    header = decodeLine(complete[0]!) as Header;
  } catch {
    throw new JournalCorruptError(file, 'its first line is not a journal header');
  }
  const format: unknown = header !== null && typeof header === 'object' ? (header as { format?: unknown }).format : undefined;
  if (typeof format === 'string' && format.startsWith('dissect-journal/') && format !== JOURNAL_FORMAT) throw new JournalFormatError(file, format);
  if (format !== JOURNAL_FORMAT || typeof header.fingerprint !== 'string') {
    throw new JournalCorruptError(file, `not a ${JOURNAL_FORMAT} file`);
  }

  const loaded: { id: ExampleId; data: T }[] = [];
  let offset = Buffer.byteLength(complete[0]!, 'utf8') + 1;
  for (let i = 1; i < complete.length; i++) {
    const line = complete[i]!;
    const lineStart = offset;
    offset += Buffer.byteLength(line, 'utf8') + 1;
    if (line.trim() === '') continue;
    let entry: unknown;
    try {
      entry = decodeLine(line);
    } catch {
      entry = undefined;
    }
    const ok = entry !== null && typeof entry === 'object' && isExampleId((entry as { id?: unknown }).id) && 'data' in (entry as object);
    if (!ok) {
      if (i === complete.length - 1 && !discarded) {
        // A torn final line that happens to end in '\n' bytes (e.g. zero-filled after a crash).
        keep = lineStart;
        discarded = true;
        break;
      }
      throw new JournalCorruptError(file, `line ${i + 1} is not a journal entry`);
    }
    loaded.push(entry as { id: ExampleId; data: T });
  }
  return { header, loaded, keep, size: buf.length, discarded };
}

/** The parts of `fingerprint` that `earlier` (a journal's header parts) does not share: what changed between two runs. */
export function changedParts(earlier: Readonly<Record<string, string>> | undefined, fingerprint: Fingerprint): string[] {
  const old = earlier ?? {};
  return Object.keys(fingerprint.parts).filter((k) => old[k] !== fingerprint.parts[k]);
}

/** A journal as `dissect merge` reads it: the run's fingerprint and each fact's record. */
export interface JournalRecords<T> {
  readonly fingerprint: Fingerprint;
  /** The record of `id` (a later line for the same id wins, as on resuming). */
  get(id: ExampleId): T | undefined;
}

/** Reads the journal in `dir` whole, without opening it for writing; undefined when it has none (or not even a header). */
export function readJournalRecords<T>(dir: string): JournalRecords<T> | undefined {
  const file = path.join(dir, JOURNAL_FILE);
  if (!fs.existsSync(file)) return undefined;
  const read = readJournal<T>(file);
  if (!read.header) return undefined;
  const records = new Map(read.loaded.map((e) => [keyOf(e.id), e.data]));
  return { fingerprint: { hash: read.header.fingerprint, parts: read.header.parts }, get: (id) => records.get(keyOf(id)) };
}

/**
 * How many facts the journal in `dir` holds (distinct ids; a torn last line is not one), or
 * undefined when the folder has no journal or it cannot be read.
 */
export function journaledFacts(dir: string): number | undefined {
  const file = path.join(dir, JOURNAL_FILE);
  if (!fs.existsSync(file)) return undefined;
  try {
    return new Set(readJournal(file).loaded.map((e) => keyOf(e.id))).size;
  } catch (e) {
    if (e instanceof UserError) return undefined;
    throw e;
  }
}

/** The journal of one run in one output folder. `T` is whatever the runner stores per example. */
export class Journal<T> {
  /** Examples finished by earlier attempts of this run, in journal order. */
  readonly resumed: number;
  /** True when a cut-off last line was found and discarded. */
  readonly discardedPartialLine: boolean;
  private readonly done = new Map<string, { id: ExampleId; data: T }>();
  private fd: number | undefined;

  private constructor(
    readonly file: string,
    fd: number,
    loaded: { id: ExampleId; data: T }[],
    discarded: boolean,
    private readonly durability: 'fsync' | 'flush',
    private readonly fingerprint: Fingerprint,
  ) {
    this.fd = fd;
    for (const e of loaded) {
      this.done.delete(keyOf(e.id)); // a later line for the same id wins
      this.done.set(keyOf(e.id), e);
    }
    this.resumed = this.done.size;
    this.discardedPartialLine = discarded;
  }

  /**
   * Open (creating the journal if needed) for a run with `fingerprint`, in a folder the
   * caller holds (OutputFolder). Throws JournalMismatchError or JournalCorruptError.
   */
  static open<T>(dir: string, fingerprint: Fingerprint, options: JournalOptions = {}): Journal<T> {
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, JOURNAL_FILE);
    const durability = options.durability ?? 'fsync';
    if (options.fresh === true || !fs.existsSync(file)) return Journal.create<T>(file, fingerprint, durability);
    const read = readJournal<T>(file);
    // Not even the header was finished: nothing to resume.
    if (!read.header) return Journal.create<T>(file, fingerprint, durability, read.size > 0);
    if (read.header.fingerprint !== fingerprint.hash) throw new JournalMismatchError(file, changedParts(read.header.parts, fingerprint));
    if (read.keep < read.size) fs.truncateSync(file, read.keep);
    const fd = fs.openSync(file, 'a');
    return new Journal<T>(file, fd, read.loaded, read.discarded, durability, fingerprint);
  }

  private static create<T>(file: string, fingerprint: Fingerprint, durability: 'fsync' | 'flush', discarded = false): Journal<T> {
    const fd = fs.openSync(file, 'w');
    const header: Header = { format: JOURNAL_FORMAT, fingerprint: fingerprint.hash, parts: fingerprint.parts, createdAt: new Date().toISOString() };
    const j = new Journal<T>(file, fd, [], discarded, durability, fingerprint);
    j.writeLine(encodeLine(header));
    return j;
  }

  private writeLine(text: string): void {
    if (this.fd === undefined) throw new Error(`journal ${this.file} is closed`);
    const bytes = Buffer.from(text + '\n', 'utf8');
    let written = 0;
    while (written < bytes.length) written += fs.writeSync(this.fd, bytes, written, bytes.length - written);
    if (this.durability === 'fsync') fs.fsyncSync(this.fd);
  }

  get size(): number {
    return this.done.size;
  }

  has(id: ExampleId): boolean {
    return this.done.has(keyOf(id));
  }

  get(id: ExampleId): T | undefined {
    return this.done.get(keyOf(id))?.data;
  }

  /** Every finished example (earlier attempts and this one), in journal order. */
  entries(): { id: ExampleId; data: T }[] {
    return [...this.done.values()];
  }

  /** Record one finished example. Re-recording an id replaces it (the later line wins on reload too). */
  append(id: ExampleId, data: T): void {
    if (!isExampleId(id)) throw new TypeError(`example id must be a string or an integer, got ${String(id)}`);
    this.writeLine(encodeLine({ id, data }));
    const entry = { id, data: decodeLine(encodeLine(data)) as T };
    this.done.delete(keyOf(id));
    this.done.set(keyOf(id), entry);
  }

  /**
   * Copies into this journal the finished examples of another folder's journal of the same run
   * (a shard run with --shard, whose fingerprint is this run's); returns how many were new.
   */
  importFrom(dir: string): number {
    const file = path.join(dir, JOURNAL_FILE);
    if (!fs.existsSync(file)) throw new UserError(`${dir} holds no ${JOURNAL_FILE} to merge`, 'merge the --out folders of earlier runs of this program (e.g. its shards)');
    const read = readJournal<T>(file);
    if (!read.header) return 0;
    if (read.header.fingerprint !== this.fingerprint.hash) {
      const changed = changedParts(read.header.parts, this.fingerprint);
      throw new UserError(`${file} is the journal of a different run (changed: ${changed.join(', ') || 'the run settings'}), so it cannot be merged`,
        'merge only runs of the same program, model, data, choices and selection; --shard does not count');
    }
    let added = 0;
    for (const e of read.loaded) {
      if (this.has(e.id)) continue;
      this.append(e.id, e.data);
      added++;
    }
    return added;
  }

  /** Close the file. Safe to call twice. */
  close(): void {
    if (this.fd !== undefined) {
      fs.closeSync(this.fd);
      this.fd = undefined;
    }
  }
}

function keyOf(id: ExampleId): string {
  return JSON.stringify(id);
}
