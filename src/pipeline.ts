// The stages wired together: .dissect file → checked Program → Plan → compiled variant →
// executed examples → measures → results. The CLI commands and the end-to-end tests call
// these functions; each stage is reached only through its own module's interface.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { FileSystemError, fsUserError, UserError } from './errors.js';
import { defaultRowLimits, findChoice, formatDiagnostics, frontEnd, hasErrors, rankedTokens, totalRowsError, type RowLimits } from './lang/index.js';
import type { Diagnostic, ModelShape, Program, SourceSpan } from './lang/program.js';
import type { CiOptions } from './measure/stats.js';
import {
  buildVariant, readModelGraph, readSourceModel, sha256File, SiteOverrideError, type BuiltVariant, type GraphReader, type ModelLimits, type ModelSites,
  type SiteOverride, type SourceModel,
} from './onnx/index.js';
import { mayRunLastPosition, planProgram, readsCleanPass, siteOverridesOf, startLayerOf, type Plan } from './plan/plan.js';
import { cleanForwardEquivalents } from './plan/cost.js';
import { VariantNames } from './onnx/variant.js';
import { lastPositionUnsupported } from './onnx/passes/last-position.js';
import { Journal, JOURNAL_FILE, runFingerprint } from './run/journal.js';
import { readShards, refuseRunFolder } from './run/merge.js';
import { writeReport, type WriteReportOptions, type WrittenReport } from './report/html/index.js';
import { withOutputFolder, type OutputFolder } from './output/folder.js';
import { RESULTS_FORMAT, type ExampleId, type Results, type ResultsExample, type ResultsHeadMappings } from './measure/schema.js';
import { writeResults, type WrittenResults } from './report/write.js';
import { loadFacts, selectFacts, shardOf, splitDuplicateIds, type Fact, type Selection } from './run/dataset.js';
import { isRunError, orThrow, RunUserError, type RunError } from './run/errors.js';
import { batchSize, type BatchSize } from './run/memory.js';
import { datasetMeanHidden, executeExamples } from './run/execute.js';
import type { ExampleRecord } from './measure/record.js';
import { measureRecords } from './measure/results.js';
import { loadAttributeSets } from './run/attributes.js';
import { headMappings } from './run/head-mappings.js';
import { createSession, doctorInfo } from './run/session.js';
import { bosUnavailable, prepareExample } from './run/example.js';
import { loadTokenizer, tokenizerMismatch, type Tokenizer } from './run/tokenizer.js';
import { version } from './version.js';

/** Diagnostics of a .dissect file, already formatted with file:line:col and hints. */
export class DiagnosticsError extends UserError {
  constructor(readonly diagnostics: readonly Diagnostic[], sourceText: string) {
    super(formatDiagnostics([...diagnostics], sourceText));
    this.name = 'DiagnosticsError';
  }
}

export interface LoadedProgram {
  readonly file: string;
  readonly sourceText: string;
  readonly program: Program;
  /** The model, read once: the check, the variant and the head mappings all use this one. */
  readonly source: SourceModel;
  readonly plan: Plan;
  readonly tokenizer: Tokenizer;
  /** Warnings (errors throw). */
  readonly warnings: readonly Diagnostic[];
  /** The row limits it was checked with (the total is checked against the facts a run takes). */
  readonly rowLimits: RowLimits;
}

function readSource(file: string): { path: string; sourceText: string } {
  const path = resolve(file);
  try {
    return { path, sourceText: readFileSync(path, 'utf8') };
  } catch (e) {
    throw fsUserError('read', file, e, 'check the path of the .dissect file');
  }
}

/**
 * What the checker learns from a model (the answer of its ShapeOf): the model `read` gives and
 * its shape, or, for a model dissect cannot read, why (at the site override to blame).
 */
export function readModelShape(read: () => SourceModel): { source: SourceModel; shape: ModelShape } | { error: string; site?: number } {
  try {
    const source = read();
    const { sites } = source;
    return { source, shape: { layers: sites.layers, heads: sites.heads, vocab: sites.vocab } };
  } catch (e) {
    if (e instanceof SiteOverrideError) return { error: e.message, site: e.index };
    if (e instanceof FileSystemError) return { error: e.reason };
    if (e instanceof UserError) return { error: e.message };
    throw e;
  }
}

/**
 * Reads, parses and checks a .dissect file against its model, and plans it. The model's graph
 * is read here, through `readGraph`, and nowhere else in the run.
 */
export function loadProgram(
  file: string, overrides: Readonly<Record<string, string>> = {}, rowLimits = defaultRowLimits, readGraph: GraphReader = readModelGraph,
): LoadedProgram {
  const { path, sourceText } = readSource(file);
  let source: SourceModel | undefined;
  let tokenizerRead: Tokenizer | RunError | undefined;
  const out = frontEnd(sourceText, path, {
    overrides,
    rowLimits,
    shapeOf: (onnxPath, overrides, tokenizerPath) => {
      const read = readModelShape(() => readSourceModel(onnxPath, siteOverridesOf(overrides), readGraph));
      if ('error' in read) return read;
      source = read.source;
      if (tokenizerPath === undefined) return read.shape;
      tokenizerRead = loadTokenizer(tokenizerPath);
      // a tokenizer that cannot be read is reported at its statement once the file checks
      return isRunError(tokenizerRead) ? read.shape : { ...read.shape, vocab: rankedTokens(read.shape.vocab, tokenizerRead.vocabSize) };
    },
  });
  if (hasErrors(out.diagnostics) || !out.program || !source || !tokenizerRead) throw new DiagnosticsError(out.diagnostics, sourceText);
  const tokenizer = orDiagnostic(tokenizerRead, sourceText, out.program.model.tokenizerSpan);
  const mismatch = tokenizerMismatch(tokenizer, { path: out.program.model.onnx, embeddingRows: source.limits.embeddingRows })
    ?? (out.program.bos === 'prepend' ? bosUnavailable(tokenizer) : undefined);
  if (mismatch) throw new RunUserError(mismatch);
  const plan = withLastPosition(planProgram(out.program, source.sites, tokenizer.vocabSize), source.sites);
  return { file: path, sourceText, program: out.program, source, plan, tokenizer, warnings: out.diagnostics, rowLimits };
}

/**
 * The variants a run of the program compiles (the attribution variant too, when an experiment
 * takes gradients). A model the compiler cannot rewrite for this program (a reserved tensor
 * name, an op the backward pass has no rule for, …) is an error at the model statement: `check`
 * calls this too, so it finds what `run` would refuse.
 */
export function buildVariants(loaded: LoadedProgram): { variant: BuiltVariant; attribution?: BuiltVariant } {
  const { source, plan, program } = loaded;
  try {
    const variant = buildVariant(source, plan.variant);
    return plan.attributionVariant ? { variant, attribution: buildVariant(source, plan.attributionVariant) } : { variant };
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    throw new DiagnosticsError([{
      span: program.model.span, severity: 'error', message: `the model cannot be compiled for this program: ${e.message}`,
      hint: e.hint ?? 'the program asks the model for an intervention or a measure its graph does not allow; `dissect inspect MODEL` shows what was recognised',
    }], loaded.sourceText);
  }
}

/** Refuses, at the dataset statement, a run of `facts` facts over the total row limit. */
export function refuseOverTotalRows(loaded: LoadedProgram, facts: number): void {
  const tooMany = totalRowsError(loaded.program.dataset.span, loaded.plan.passesPerExample - 1, facts, loaded.rowLimits);
  if (tooMany) throw new DiagnosticsError([tooMany], loaded.sourceText);
}

/** Asks the variant for a cache when some row may run its last token alone and the model allows it. */
function withLastPosition(plan: Plan, sites: ModelSites): Plan {
  const wanted = plan.experiments.some((e) => e.rows.some(mayRunLastPosition));
  return wanted && !lastPositionUnsupported(sites) ? { ...plan, variant: { ...plan.variant, lastPosition: true } } : plan;
}

/** How a run executes its rows, and why (recorded in results.json). */
function rowExecution(plan: Plan, sites: ModelSites, options: RunOptions): NonNullable<Results['provenance']['rows']> {
  if (plan.variant.lastPosition && !options.fullRows) {
    return {
      mode: 'last_position',
      reason: 'rows whose blocked edges and probes are all at the last position ran that token alone against the clean run\'s keys and values',
    };
  }
  const reason = options.fullRows ? '--full-rows'
    : !plan.experiments.some((e) => e.rows.some(mayRunLastPosition))
      ? 'every row cancels, patches, recomputes, or reads attention weights, subject embeddings or positions before the last'
      : lastPositionUnsupported(sites) ?? 'not requested';
  return { mode: 'full', reason };
}

/**
 * The plan a run executes: its variant also takes a start layer (and returns hidden states, the
 * clean pass's being the rows' start) when some row that runs begins above block 0 and the
 * options allow it.
 */
function withStartLayer(plan: Plan, layers: number, options: RunOptions): Plan {
  if (options.fullRows || options.allLayers) return plan;
  const above = plan.experiments.some((e) => !e.attribution && e.rows.some((r) => !readsCleanPass(r) && startLayerOf(r, layers) > 0));
  return above ? { ...plan, variant: { ...plan.variant, startLayer: true, hiddenStates: true } } : plan;
}

/** Whether rows begin at their first block, and why. */
function startLayerExecution(plan: Plan, variant: BuiltVariant, options: RunOptions): { used: boolean; reason: string } {
  if (variant.manifest.inputs.some((i) => i.name === VariantNames.startLayer)) {
    return { used: true, reason: 'each row began at the first block it changes or reads, from the clean run\'s hidden state entering it' };
  }
  const reason = options.fullRows ? '--full-rows' : options.allLayers ? '--all-layers'
    : plan.variant.startLayer ? variant.manifest.choices['startLayer']!
      : 'every row that runs changes or reads block 0, or takes gradients';
  return { used: false, reason };
}

/**
 * The model a .dissect file names and its `site` statements, without reading the model: for
 * `dissect inspect FILE.dissect`, which must work exactly when detection fails.
 */
export function modelStatementOf(file: string, overrides: Readonly<Record<string, string>> = {}): { onnx: string; siteOverrides: SiteOverride[] } {
  const { path, sourceText } = readSource(file);
  let named: { onnx: string; siteOverrides: SiteOverride[] } | undefined;
  const out = frontEnd(sourceText, path, {
    overrides,
    shapeOf: (onnx, sites) => {
      named = { onnx, siteOverrides: siteOverridesOf(sites) };
      return { error: 'not read' }; // the caller reads it
    },
  });
  if (!named) throw new DiagnosticsError(out.diagnostics, sourceText);
  return named;
}

export interface RunOptions {
  /** The output folder (opened and locked by runProgram for the whole run). */
  readonly out: string;
  /** Write into a non-empty folder that is not a dissect output. */
  readonly force?: boolean;
  /** Also write report.html and plots/ (the CLI does; most tests need only results). */
  readonly report?: WriteReportOptions | boolean;
  readonly selection: Selection;
  readonly batch: number;
  /** Bytes a batch may take beside the weights (default: BATCH_MEMORY_BUDGET, 1 GiB). */
  readonly batchMemory?: number;
  readonly device: string;
  readonly threads?: number;
  readonly fresh?: boolean;
  /** argv as typed, recorded in results.json. */
  readonly command: readonly string[];
  readonly onProgress?: (done: number, total: number) => void;
  /** Run every row over its whole prompt from block 0, each on its own (cross-checks the last-position rows, the rows read from the clean pass and the start layer). */
  readonly fullRows?: boolean;
  /** Run every row from block 0 (cross-checks rows that begin at the first block they change or read). */
  readonly allLayers?: boolean;
  /** Output folders of other runs of this run (its shards) whose finished examples are taken, not recomputed. */
  readonly merge?: readonly string[];
}

export interface RunOutcome {
  readonly results: Results;
  readonly written: WrittenResults;
  readonly report?: WrittenReport;
  /** Examples taken from an earlier, interrupted run's journal. */
  readonly resumed: number;
  /** --batch as asked and as used (lowered when its rows would need too much memory). */
  readonly batch: BatchSize;
  /**
   * The run's FLOPs per prompt of the kept facts' mean token count, in clean forward passes
   * (plan/cost.ts), as its rows ran. Not in results.json: a shard's would be its own prompts'.
   */
  readonly cost: { readonly tokens: number; readonly cleanForwardEquivalents: number };
}

/**
 * The value, or the run error as a diagnostic of the .dissect file (source line, caret and
 * hint, like the checker's) when it is about a place in it: the error's own span, else `at`.
 */
function orDiagnostic<T>(x: T | RunError, sourceText: string, at?: SourceSpan): T {
  if (!isRunError(x)) return x;
  const span = x.span ?? at;
  if (span === undefined) throw new RunUserError(x);
  throw new DiagnosticsError([{ span, severity: 'error', message: x.message, ...(x.hint !== undefined ? { hint: x.hint } : {}) }], sourceText);
}

/** Loads the facts a run measures: the dataset, then --sample / --limit. */
export function selectedFacts(loaded: Pick<LoadedProgram, 'program' | 'sourceText'>, selection: Omit<Selection, 'shard'>): { all: Fact[]; selected: Fact[] } {
  const { program } = loaded;
  const all = orDiagnostic(loadFacts(program.dataset), loaded.sourceText).facts;
  const selected = selectFacts(all, selection);
  if (selection.example !== undefined && selected.length === 0) {
    const ids = all.slice(0, 5).map((f) => f.id).join(', ');
    throw new UserError(`--example ${selection.example}: no fact has that id in ${program.dataset.path}`, `ids look like: ${ids}${all.length > 5 ? ', …' : ''}`);
  }
  return { all, selected };
}

/** `--params FILE`: a JSON object of parameter values, applied before `--set`. */
export function readParamsFile(file: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw fsUserError('read --params', file, e);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UserError(`--params ${file}: not valid JSON: ${(e as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new UserError(`--params ${file}: expected an object of parameter values`, 'e.g. {"window": 9, "model": "gpt2-xl.onnx"}');
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(json)) {
    if (typeof value !== 'string' && typeof value !== 'number') throw new UserError(`--params ${file}: ${name} must be a string or a number`);
    out[name] = String(value);
  }
  return out;
}

export async function runProgram(loaded: LoadedProgram, options: RunOptions): Promise<RunOutcome> {
  return withOutputFolder(options.out, { force: options.force ?? false }, async (out) => {
    const outcome = await runInFolder(loaded, options, out);
    if (!options.report) return outcome;
    const report = await writeReport(out, outcome.results, options.report === true ? {} : options.report);
    return { ...outcome, report };
  });
}

async function runInFolder(loaded: LoadedProgram, options: RunOptions, out: OutputFolder): Promise<RunOutcome> {
  const { program, source, tokenizer } = loaded;
  const { sites } = source;
  const plan = withStartLayer(loaded.plan, sites.layers, options);
  // A shard is a part of one run: the repeated ids, the batch size and the dataset means are the
  // whole selection's, and it runs whole batches of that run (every n-th), so each fact meets the
  // same facts in its batch as in one run and the merged shards equal that run bit for bit.
  const { shard, ...wholeSelection } = options.selection;
  const whole = splitDuplicateIds(selectedFacts(loaded, wholeSelection).selected);
  const batch = batchSize(options.batch, sites, plan, longestPrompt(whole.unique, tokenizer, program.bos, source.limits.positions), options.batchMemory);
  const unique = shardOf(whole.unique, shard, batch.used);
  const duplicates = shardOf(whole.duplicates, shard, 1);
  const selected = [...unique, ...duplicates];
  if (shard && selected.length === 0) {
    const batches = Math.ceil(whole.unique.length / batch.used);
    throw new UserError(`--shard ${shard.index}/${shard.count} has no facts: a shard runs whole batches, and the run's ${whole.unique.length} facts make ${batches} batch${batches === 1 ? '' : 'es'} of ${batch.used}`,
      `split the run into at most ${batches} shards, or lower --batch`);
  }
  refuseOverTotalRows(loaded, selected.length);
  const { variant, attribution: attributionVariant } = buildVariants({ ...loaded, plan });
  let rows = rowExecution(plan, sites, options);
  const startLayer = startLayerExecution(plan, variant, options);
  const attributes = program.attributes ? orDiagnostic(loadAttributeSets(program.attributes, tokenizer), loaded.sourceText) : undefined;
  const hashes = {
    model: variant.manifest.source.sha256,
    tokenizer: sha256File(program.model.tokenizer),
    dataset: sha256File(program.dataset.path),
    source: createHash('sha256').update(loaded.sourceText).digest('hex'),
    ...(program.attributes ? { attributes: sha256File(program.attributes.path) } : {}),
  };
  const ci = ciOptions(program, options.selection.seed ?? 0);
  const fingerprint = runFingerprint({
    sourceText: loaded.sourceText,
    params: program.params,
    choices: program.choices,
    modelSha256: hashes.model,
    tokenizerSha256: hashes.tokenizer,
    datasetSha256: hashes.dataset,
    // a shard is a part of the same run: its journal merges into the others'
    selection: { filter: program.filter, bos: program.bos, ...options.selection, shard: undefined },
    extra: { tool: version, device: options.device, ...(hashes.attributes ? { attributes: hashes.attributes } : {}) },
  });
  out.claim(JOURNAL_FILE);
  const journal = Journal.open<ExampleRecord>(out.dir, fingerprint, { fresh: options.fresh ?? false });
  let resumed = journal.resumed;
  try {
    for (const dir of options.merge ?? []) resumed += journal.importFrom(dir);
  } catch (e) {
    journal.close();
    throw e;
  }
  // facts an earlier invocation (or a merged shard) finished: their rows are not run now
  const fromJournal = new Set(unique.filter((f) => journal.has(f.id)).map((f) => f.id));
  try {
    const sessionOf = async (built: BuiltVariant) => orThrow(await createSession(built.bytes, {
      device: options.device,
      ...(options.threads ? { threads: options.threads } : {}),
      ...(built.manifest.weights.sessionConfig ? { sessionConfig: built.manifest.weights.sessionConfig } : {}),
    }));
    const session = await sessionOf(variant);
    const attribution = attributionVariant ? { variant: attributionVariant, session: await sessionOf(attributionVariant) } : undefined;
    try {
      const context = {
        program, plan, variant, session, tokenizer, facts: unique, journal, batch: batch.used,
        lastPosition: rows.mode === 'last_position',
        ...(source.limits.positions ? { positions: source.limits.positions } : {}),
        shareClean: !options.fullRows,
        startLayer: startLayer.used,
        ...(attribution ? { attribution } : {}),
      };
      const meanHidden = await datasetMeanHidden({ ...context, facts: whole.unique });
      const counts = await executeExamples({
        ...context,
        ...(attributes ? { attributes } : {}),
        ...(meanHidden ? { meanHidden } : {}),
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      });
      rows = counts.disagreement
        ? {
          mode: 'full', reason: `the cross-check of a last-position row disagreed (${counts.disagreement}): every row ran over its whole prompt`,
          lastPositionRows: 0, fullRows: counts.full, cleanPassRows: counts.clean,
        }
        : { ...rows, lastPositionRows: counts.lastPosition, fullRows: counts.full, cleanPassRows: counts.clean };
    } finally {
      await session.release();
      await attribution?.session.release();
    }
    const records: ExampleRecord[] = [
      ...unique.map((f) => journal.get(f.id)!),
      ...duplicates.map((): ExampleRecord => ({ status: 'dropped', reason: 'duplicate_id' })),
    ];
    const { measured, droppedFacts } = measureFacts(program, plan, selected.map((f) => f.id), records, ci);
    rows = { ...rows, startLayer };
    const tokens = measured.examples.reduce((n, e) => n + e.tokens.length, 0) / Math.max(1, measured.examples.length);
    const cost = {
      tokens,
      cleanForwardEquivalents: cleanForwardEquivalents(plan, sites, tokens, {
        lastPosition: rows.mode === 'last_position', startLayer: startLayer.used, shareClean: !options.fullRows,
      }),
    };
    const journalRows = unique.filter((f, i) => fromJournal.has(f.id) && records[i]!.status === 'kept').length * (plan.passesPerExample - 1);
    if (fromJournal.size) rows = { ...rows, journalFacts: fromJournal.size, journalRows };
    const mappings = program.headMappings
      ? await headMappingResults(program, source, tokenizer, measured.examples, options)
      : undefined;
    const results: Results = {
      format: RESULTS_FORMAT,
      tool: { name: 'dissect', version },
      createdAt: new Date().toISOString(),
      command: [...options.command],
      fingerprint: fingerprint.hash,
      provenance: {
        model: {
          path: program.model.onnx, sha256: hashes.model, family: sites.family,
          ...(sites.expandedFusedOps ? { expandedFusedOps: sites.expandedFusedOps } : {}),
          layers: sites.layers, heads: sites.heads, vocab: sites.vocab,
        },
        tokenizer: { path: program.model.tokenizer, sha256: hashes.tokenizer },
        dataset: { path: program.dataset.path, sha256: hashes.dataset, format: program.dataset.format },
        source: { path: loaded.file, sha256: hashes.source, text: loaded.sourceText },
        device: options.device,
        env: { NVIDIA_TF32_OVERRIDE: process.env.NVIDIA_TF32_OVERRIDE ?? null },
        onnxruntime: { version: doctorInfo().ortVersion },
        node: process.version,
        rows,
      },
      choices: program.choices,
      choiceMeanings: choiceMeanings(program.choices),
      params: program.params,
      data: {
        total: selected.length,
        kept: measured.examples.length,
        dropped: measured.dropped,
        droppedFacts,
        filter: program.filter,
        bos: program.bos,
        limit: options.selection.limit ?? null,
        sample: options.selection.sample ?? null,
        seed: options.selection.sample !== undefined ? (options.selection.seed ?? 0) : null,
        ...(shard ? { shard: { ...shard, batch: batch.used, facts: unique.map((f) => f.id) } } : {}),
        ...(attributes ? { withoutAttributes: measured.examples.filter((e) => !attributes.has(e.subject)).length } : {}),
      },
      examples: measured.examples,
      experiments: measured.experiments,
      ...(mappings ? { headMappings: mappings } : {}),
      ci: ci.method === 'none' ? { method: 'none' } : ci,
    };
    return { results, written: writeResults(out, results), resumed, batch, cost };
  } finally {
    journal.close();
  }
}

/** The measures of a run's facts (`ids[i]` is the fact of `records[i]`) and its dropped facts. */
function measureFacts(program: Program, plan: Plan, ids: readonly ExampleId[], records: readonly ExampleRecord[], ci: CiOptions) {
  const droppedFacts = records.flatMap((r, i) => (r.status === 'dropped'
    ? [{ id: ids[i]!, reason: r.reason, ...(r.detail !== undefined ? { detail: r.detail } : {}) }] : []));
  // empty tables would read as a finding: a run that keeps nothing fails, its journal kept for a rerun
  if (droppedFacts.length === records.length) throw noFactKept(droppedFacts);
  return { measured: measureRecords(program, plan, records, ci), droppedFacts };
}

export interface MergeOptions {
  /** The output folder (opened and locked by mergeShards, under the same rules as a run's). */
  readonly out: string;
  readonly force?: boolean;
  /** Also write report.html and plots/. */
  readonly report?: WriteReportOptions | boolean;
  /** argv as typed, recorded in results.json. */
  readonly command: readonly string[];
}

export interface MergeOutcome {
  readonly results: Results;
  readonly written: WrittenResults;
  readonly report?: WrittenReport;
}

/**
 * `dissect merge`: a run's results from the folders of its shards alone (src/run/merge.ts), measured
 * as one run measures them, so they equal a single run's value for value. Reads no model.
 */
export async function mergeShards(dirs: readonly string[], options: MergeOptions): Promise<MergeOutcome> {
  const shards = readShards(dirs);
  const { base } = shards;
  const program = programOfResults(base);
  const { measured, droppedFacts } = measureFacts(program, planProgram(program, base.provenance.model), shards.ids, shards.records, base.ci);
  const { shard, ...data } = base.data;
  const mappings = shards.headMappings(measured.examples);
  const results: Results = {
    ...base,
    createdAt: new Date().toISOString(),
    command: [...options.command],
    provenance: { ...base.provenance, ...(shards.rows ? { rows: shards.rows } : {}) },
    data: {
      ...data,
      total: shards.ids.length,
      kept: measured.examples.length,
      dropped: measured.dropped,
      droppedFacts,
      ...(shards.withoutAttributes !== undefined ? { withoutAttributes: shards.withoutAttributes } : {}),
    },
    examples: measured.examples,
    experiments: measured.experiments,
    ...(mappings ? { headMappings: mappings } : {}),
  };
  return withOutputFolder(options.out, { force: options.force ?? false }, async (out) => {
    refuseRunFolder(out.dir);
    const written = writeResults(out, results);
    if (!options.report) return { results, written };
    return { results, written, report: await writeReport(out, results, options.report === true ? {} : options.report) };
  });
}

/**
 * The program a run's results were measured with, checked again from the text, params and model
 * shape they record; the model is not read. The row limits were enforced when the run planned it.
 */
function programOfResults(results: Results): Program {
  const { source, model } = results.provenance;
  const overrides = Object.fromEntries(Object.entries(results.params).map(([name, value]) => [name, String(value)]));
  const out = frontEnd(source.text, source.path, {
    overrides,
    rowLimits: { perFact: Infinity, total: Infinity },
    shapeOf: () => ({ layers: model.layers, heads: model.heads, vocab: model.vocab }),
  });
  if (hasErrors(out.diagnostics) || !out.program) throw new DiagnosticsError(out.diagnostics, source.text);
  return out.program;
}

/** The error of a run whose every fact was dropped, with the first few and why. */
function noFactKept(dropped: readonly { id: ExampleId; reason: string; detail?: string }[]): UserError {
  const counts = new Map<string, number>();
  for (const d of dropped) counts.set(d.reason, (counts.get(d.reason) ?? 0) + 1);
  const first = dropped.slice(0, 3).map((d) => `${JSON.stringify(d.id)} ${d.reason}${d.detail ? `: ${d.detail}` : ''}`).join('; ');
  return new UserError(
    `no fact was kept: all ${dropped.length} dropped (${[...counts].map(([r, n]) => `${r} ${n}`).join(', ')}), so nothing was measured; first: ${first}`,
    'with `filter known` a fact is kept only where the model predicts its target; `filter none` keeps every fact whose prompt and subject can be read',
  );
}

/** Tokens of the longest prompt among the facts (those that cannot be prepared are dropped by the run). */
function longestPrompt(facts: readonly Fact[], tokenizer: Tokenizer, bos: Program['bos'], positions: ModelLimits['positions']): number {
  let longest = 1;
  for (const fact of facts) {
    const example = prepareExample(fact, tokenizer, bos, positions);
    if (!isRunError(example)) longest = Math.max(longest, example.n);
  }
  return longest;
}

/** Head mappings of the listed layers, flagged against the kept facts' subject → prediction pairs. */
async function headMappingResults(
  program: Program, source: SourceModel, tokenizer: Tokenizer, examples: readonly ResultsExample[], options: RunOptions,
): Promise<ResultsHeadMappings> {
  const { sites } = source;
  const spec = program.headMappings!;
  const side = program.choices.head_mapping_side;
  const subjectToken = program.choices.mapping_subject_token;
  const normalisation = program.choices.head_mapping_normalisation;
  const facts = examples.map((e) => {
    const ids = e.tokens.slice(e.subjectRange[0], e.subjectRange[1]).map((t) => tokenizer.tokenId(t)!);
    return { id: e.id, subjectTokens: subjectToken === 'last' ? ids.slice(-1) : ids, target: e.cleanTop1.id };
  });
  const heads = await headMappings(source, {
    layers: spec.layers, heads: sites.heads, top: spec.top, side, vocabLimit: rankedTokens(sites.vocab, tokenizer.vocabSize),
    normalisation,
    session: { device: options.device, ...(options.threads ? { threads: options.threads } : {}) },
  }, tokenizer, facts);
  return { side, subjectToken, normalisation, top: spec.top, heads };
}

function ciOptions(program: Program, seed: number): CiOptions {
  return program.choices.ci === 'none'
    ? { method: 'none' }
    : { method: 'bootstrap_percentile', resamples: 1000, level: 0.95, seed };
}

function choiceMeanings(choices: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(choices)) {
    const meaning = findChoice(name)?.values.find((v) => v.name === value)?.meaning;
    if (!meaning) throw new Error(`internal: choice ${name} = ${value} has no meaning text`);
    out[name] = meaning;
  }
  return out;
}
