// `dissect merge`: the whole run assembled from the folders of its shards (`run --shard k/n`)
// alone. A finished shard's folder holds everything a merge needs: results.json (the program's
// text, params and choices, the model's shape, the head mappings, the shard's facts in
// selection order) and journal.jsonl (every fact's raw numbers). The model, tokenizer and
// dataset are not read and nothing is run, so the merge needs no machine beyond the shared
// storage. Every reason a set of folders is not one whole run is refused before anything is
// written: a folder that is not a finished shard, a shard of another run or another split, a
// shard given twice, a missing shard.

import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UserError } from '../errors.js';
import type { ExampleRecord } from '../measure/record.js';
import type { ExampleId, Results, ResultsExample, ResultsHeadMappings } from '../measure/schema.js';
import { refuseLocked } from '../output/folder.js';
import { readResultsFile } from '../report/html/index.js';
import { RESULTS_JSON } from '../report/write.js';
import { version } from '../version.js';
import { changedParts, JOURNAL_FILE, readJournalRecords, type JournalRecords } from './journal.js';

type Rows = NonNullable<Results['provenance']['rows']>;

interface Shard {
  readonly dir: string;
  readonly results: Results;
  readonly index: number;
  readonly count: number;
  /** Facts per batch: a shard runs every n-th batch of the whole run. */
  readonly batch: number;
  readonly facts: readonly ExampleId[];
  readonly journal: JournalRecords<ExampleRecord>;
}

/** The whole run, as the shards hold it. */
export interface MergedShards {
  /** The first shard's results: program, params, choices, model and CI settings, which every shard shares. */
  readonly base: Results;
  /** Fact ids of the whole selection with their records, as one run lists them: the first of each id in order, then the repeats. */
  readonly ids: readonly ExampleId[];
  readonly records: readonly ExampleRecord[];
  /** How the shards ran their rows, their counts summed. */
  readonly rows?: Rows;
  readonly withoutAttributes?: number;
  /** The head mappings (the same in every shard) flagged with every shard's facts, in the order of `examples`. */
  headMappings(examples: readonly ResultsExample[]): ResultsHeadMappings | undefined;
}

const shardHint = 'give the --out folders of `dissect run … --shard k/n`, one for each k';
const resumeHint = 'run its command again: it resumes from its journal, runs only the facts that are missing and writes results.json';
const label = (s: Pick<Shard, 'index' | 'count'>) => `${s.index}/${s.count}`;

/** Reads and checks the shard folders `dirs`; throws a UserError naming the folder and what is wrong. */
export function readShards(dirs: readonly string[]): MergedShards {
  const shards = dirs.map((d) => readShard(resolve(d)));
  const first = shards[0];
  if (!first) throw new UserError('no shard folder to merge', shardHint);
  for (const s of shards.slice(1)) {
    if (s.journal.fingerprint.hash !== first.journal.fingerprint.hash) {
      const changed = changedParts(first.journal.fingerprint.parts, s.journal.fingerprint);
      throw new UserError(`${s.dir} is a shard of a different run than ${first.dir} (changed: ${changed.join(', ') || 'the run settings'})`,
        'merge only the shards of one run: the same program, params, model, tokenizer, data, choices, selection, device and dissect version');
    }
    if (s.count !== first.count) {
      throw new UserError(`${s.dir} is shard ${label(s)} but ${first.dir} is shard ${label(first)}: shards of different splits overlap`,
        `merge the shards of one split: ${first.count} folders, from --shard 0/${first.count} to ${first.count - 1}/${first.count}`);
    }
  }
  const byIndex = new Map<number, Shard>();
  for (const s of shards) {
    const twin = byIndex.get(s.index);
    if (twin) {
      throw new UserError(`${twin.dir} and ${s.dir} are both shard ${label(s)}`,
        twin.dir === s.dir ? 'give each shard\'s folder once' : 'keep one of the two folders (they hold the same facts)');
    }
    byIndex.set(s.index, s);
  }
  const missing = Array.from({ length: first.count }, (_, k) => k).filter((k) => !byIndex.has(k));
  if (missing.length) {
    throw new UserError(`shard${missing.length === 1 ? '' : 's'} ${missing.map((k) => `${k}/${first.count}`).join(', ')} ${missing.length === 1 ? 'is' : 'are'} missing`,
      `run ${missing.length === 1 ? 'it' : 'them'} (--shard ${missing[0]}/${first.count} …) and merge all ${first.count} folders`);
  }
  const ordered = [...byIndex.keys()].sort((a, b) => a - b).map((k) => byIndex.get(k)!);
  return wholeRun(ordered);
}

function readShard(dir: string): Shard {
  if (!existsSync(dir)) throw new UserError(`${dir}: no such folder`, shardHint);
  refuseLocked(dir); // a shard still being written is not finished
  const resultsFile = join(dir, RESULTS_JSON);
  const journal = readJournalRecords<ExampleRecord>(dir);
  if (!existsSync(resultsFile)) {
    if (journal) throw new UserError(`${dir}: the shard is not finished (it has a ${JOURNAL_FILE} but no ${RESULTS_JSON})`, resumeHint);
    throw new UserError(`${dir} is not a shard's output folder (it holds no ${RESULTS_JSON} and no ${JOURNAL_FILE})`, shardHint);
  }
  const results = readResultsFile(resultsFile);
  const shard = results.data.shard;
  if (!shard) throw new UserError(`${dir} holds a whole run, not a shard (it ran without --shard)`, `its ${RESULTS_JSON} is complete as it is; ${shardHint}`);
  if (results.tool.version !== version || !shard.facts || !shard.batch) {
    throw new UserError(`${dir} was written by dissect ${results.tool.version}; this is dissect ${version}`, 'run the shards and the merge with one version of dissect');
  }
  if (!journal || journal.fingerprint.hash !== results.fingerprint) {
    throw new UserError(`${dir}: the shard is not finished (its ${JOURNAL_FILE} ${journal ? 'was started again after its results.json was written' : 'is missing'})`, resumeHint);
  }
  return { dir, results, index: shard.index, count: shard.count, batch: shard.batch, facts: shard.facts, journal };
}

/**
 * The whole run from its shards (in index order): batch c of the run is batch ⌊c/n⌋ of shard
 * c mod n, and the j-th repeated id is the shard j mod n's ⌊j/n⌋-th.
 */
function wholeRun(shards: readonly Shard[]): MergedShards {
  const [first] = shards as [Shard, ...Shard[]];
  const other = shards.find((s) => s.batch !== first.batch);
  if (other) {
    throw new UserError(`${other.dir} ran batches of ${other.batch} facts but ${first.dir} of ${first.batch}, so their batches are not one run's`,
      'run every shard with the same --batch and --batch-memory');
  }
  const firsts = interleave(shards.map((s) => s.facts), first.batch);
  const repeats = interleave(shards.map((s) => s.results.data.droppedFacts.filter((f) => f.reason === 'duplicate_id').map((f) => f.id)), 1);
  if (!firsts || !repeats) throw new UserError(`the facts of shards ${shards.map((s) => s.dir).join(', ')} do not make up one run's selection`, shardHint);
  const unfinished = shards.map((s) => s.facts.filter((id) => !s.journal.get(id)).length);
  const lacking = unfinished.findIndex((count) => count > 0);
  if (lacking >= 0) {
    throw new UserError(`${shards[lacking]!.dir}: the shard is not finished (${unfinished[lacking]} of its facts are not in its ${JOURNAL_FILE})`, resumeHint);
  }
  const record = new Map(shards.flatMap((s) => s.facts.map((id) => [JSON.stringify(id), s.journal.get(id)!] as const)));
  const withoutAttributes = first.results.data.withoutAttributes !== undefined
    ? shards.reduce((sum, s) => sum + (s.results.data.withoutAttributes ?? 0), 0) : undefined;
  const rows = summedRows(shards);
  return {
    base: first.results,
    ids: [...firsts, ...repeats],
    records: [...firsts.map((id) => record.get(JSON.stringify(id))!), ...repeats.map((): ExampleRecord => ({ status: 'dropped', reason: 'duplicate_id' }))],
    ...(rows ? { rows } : {}),
    ...(withoutAttributes !== undefined ? { withoutAttributes } : {}),
    headMappings: (examples) => flaggedByAll(shards, examples),
  };
}

/**
 * Blocks of `block` items taken from the lists in turn (list c mod n gives the c-th block) until
 * a block falls short; undefined when that leaves items over, as no split of one list would.
 */
function interleave<T>(lists: readonly (readonly T[])[], block: number): T[] | undefined {
  const taken = lists.map(() => 0);
  const out: T[] = [];
  for (let c = 0; ; c++) {
    const k = c % lists.length;
    const start = taken[k]!;
    const part = lists[k]!.slice(start, start + block);
    taken[k] = start + part.length;
    out.push(...part);
    if (part.length < block) break;
  }
  return taken.every((n, k) => n === lists[k]!.length) ? out : undefined;
}

const ROW_COUNTS = ['lastPositionRows', 'fullRows', 'cleanPassRows', 'journalFacts', 'journalRows'] as const;

/** The shards' row provenance: their mode if they agree (else `full`, saying how each ran), their counts summed, their clean stream and start layer if they agree. */
function summedRows(shards: readonly Shard[]): Rows | undefined {
  const each = shards.flatMap((s) => (s.results.provenance.rows ? [{ shard: s, rows: s.results.provenance.rows }] : []));
  const first = each[0]?.rows;
  if (!first) return undefined;
  const agree = each.every(({ rows }) => rows.mode === first.mode && rows.reason === first.reason);
  const how = agree ? { mode: first.mode, reason: first.reason } : {
    mode: 'full' as const,
    reason: `the shards ran their rows differently: ${each.map(({ shard, rows }) => `shard ${label(shard)} ${rows.mode} (${rows.reason})`).join('; ')}`,
  };
  const counts: Partial<Record<(typeof ROW_COUNTS)[number], number>> = {};
  for (const name of ROW_COUNTS) {
    if (each.some(({ rows }) => rows[name] !== undefined)) counts[name] = each.reduce((sum, { rows }) => sum + (rows[name] ?? 0), 0);
  }
  // where the clean stream ran and whether rows began at their first block, when every shard
  // says the same; the cost per prompt is a shard's own (its prompts' mean length), not summed
  const agreed = <K extends 'cleanStream' | 'startLayer'>(key: K): Partial<Pick<Rows, K>> => {
    const value = JSON.stringify(first[key]);
    return first[key] !== undefined && each.every(({ rows }) => JSON.stringify(rows[key]) === value) ? { [key]: first[key] } as Partial<Pick<Rows, K>> : {};
  };
  return { ...how, ...agreed('cleanStream'), ...counts, ...agreed('startLayer') };
}

/** Each head's facts flagged by any shard, in the order of the whole run's examples. */
function flaggedByAll(shards: readonly Shard[], examples: readonly ResultsExample[]): ResultsHeadMappings | undefined {
  const mappings = shards[0]!.results.headMappings;
  if (!mappings) return undefined;
  return {
    ...mappings,
    heads: mappings.heads.map((head, h) => {
      const flagged = new Set(shards.flatMap((s) => s.results.headMappings!.heads[h]!.subjectAttributeFacts.map((id) => JSON.stringify(id))));
      return { ...head, subjectAttributeFacts: examples.filter((e) => flagged.has(JSON.stringify(e.id))).map((e) => e.id) };
    }),
  };
}

/** Refuses an --out that is a run's folder (a shard's, say): the merge would leave its journal beside results of another run. */
export function refuseRunFolder(out: string): void {
  if (existsSync(join(out, JOURNAL_FILE))) {
    throw new UserError(`--out ${out} holds a run's ${JOURNAL_FILE} (a shard's folder, or a run's)`,
      'merge into a new folder, or into the folder of an earlier merge');
  }
}
