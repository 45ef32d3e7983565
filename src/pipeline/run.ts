// `dissect run`: a loaded program executed over its facts (src/run), measured (src/measure) and
// written (src/report) into an output folder it owns for the whole run.

import { createHash } from 'node:crypto';
import { UserError } from '../errors.js';
import { withOutputFolder, type OutputFolder } from '../output/folder.js';
import { version } from '../version.js';
import { buildVariants, orDiagnostic, refuseOverTotalRows, selectedFacts, type LoadedProgram } from './load.js';
import { findChoice, type Program, rankedTokens } from '../lang/index.js';
import {
  type CiOptions, type ExampleId, type ExampleRecord, measureRecords, type Results, RESULTS_FORMAT,
  type ResultsExample, type ResultsHeadMappings,
} from '../measure/index.js';
import {
  type BuiltVariant, lastPositionUnsupported, type ModelLimits, type ModelSites, sha256File, type SourceModel,
  VariantNames,
} from '../onnx/index.js';
import { cleanForwardEquivalents, mayRunLastPosition, type Plan, readsCleanPass, startLayerOf } from '../plan/index.js';
import {
  batchSize, type BatchSize, createVariantSession, datasetMeanHidden, doctorInfo, executeExamples, type Fact, headMappings,
  isRunError, Journal, JOURNAL_FILE, loadAttributeSets, orThrow, parseDevice, prepareExample, runFingerprint, type Selection,
  shardOf, splitDuplicateIds, type Tokenizer,
} from '../run/index.js';
import { writeReport, type WriteReportOptions, writeResults, type WrittenReport, type WrittenResults } from '../report/index.js';
import { plural } from '../plural.js';

/** How a run executes its rows, and why (recorded in results.json). */
function rowExecution(plan: Plan, sites: ModelSites, options: RunOptions): NonNullable<Results['provenance']['rows']> {
  if (plan.variant.lastPosition && !options.fullRows) {
    return {
      mode: 'last_position',
      reason: 'rows whose blocked edges and probes are all at the last position ran that token alone against the clean run\'s keys and values',
      cleanStream: plan.variant.cleanStream ?? 'host',
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
  const above = plan.experiments.some((e) => e.rows.some((r) => !readsCleanPass(r) && startLayerOf(r, layers) > 0));
  return above ? { ...plan, variant: { ...plan.variant, startLayer: true, hiddenStates: true } } : plan;
}

/**
 * Where last-position rows get the clean run's keys and values: on CUDA, by default, from a clean
 * copy in the graph of each batch (nothing returned to the host and fed back: onnxruntime-node
 * copies every feed and fetch across); elsewhere from the clean pass.
 */
export function cleanStreamFor(options: Pick<RunOptions, 'cleanStream' | 'device'>): 'host' | 'in-graph' {
  return options.cleanStream ?? (onCuda(options.device) ? 'in-graph' : 'host');
}

function onCuda(device: string): boolean {
  const parsed = parseDevice(device);
  return !isRunError(parsed) && parsed.kind === 'cuda';
}

function withCleanStream(plan: Plan, options: RunOptions): Plan {
  if (cleanStreamFor(options) === 'host' || !plan.variant.lastPosition || options.fullRows) return plan;
  return { ...plan, variant: { ...plan.variant, cleanStream: 'in-graph' } };
}

/** Whether rows begin at their first block, and why. */
function startLayerExecution(plan: Plan, variant: BuiltVariant, options: RunOptions): { used: boolean; reason: string } {
  if (variant.manifest.inputs.some((i) => i.name === VariantNames.startLayer)) {
    return {
      used: true,
      reason: variant.manifest.cleanStream
        ? 'a batch of last-position rows began at the lowest first block its rows change or read, from the clean stream\'s hidden state entering it in the graph; whole prompts from block 0'
        : 'each row began at the first block it changes or reads, from the clean run\'s hidden state entering it',
    };
  }
  const reason = options.fullRows ? '--full-rows' : options.allLayers ? '--all-layers'
    : plan.variant.startLayer ? variant.manifest.choices['startLayer']!
      : 'every row that runs changes or reads block 0, or takes gradients';
  return { used: false, reason };
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
  /** Where last-position rows get the clean run's keys and values (default: in-graph on CUDA, host elsewhere). */
  readonly cleanStream?: 'host' | 'in-graph';
}

export interface RunOutcome {
  readonly results: Results;
  readonly written: WrittenResults;
  readonly report?: WrittenReport;
  /** Examples taken from an earlier, interrupted run's journal. */
  readonly resumed: number;
  /** --batch as asked and as used (lowered when its rows would need too much memory). */
  readonly batch: BatchSize;
  /** The same for the rows that take gradients (their backward pass needs more a row), when the run has any. */
  readonly gradientBatch?: BatchSize;
  /**
   * The run's FLOPs per prompt of the kept facts' mean token count, in clean forward passes
   * (plan/cost.ts), as its rows ran. Not in results.json: a shard's would be its own prompts'.
   */
  readonly cost: {
    readonly tokens: number;
    readonly cleanForwardEquivalents: number;
    /** Of those, the clean runs recomputed in the graph per fact run (the clean stream in the graph; 0 on the host). */
    readonly recomputedCleanRuns: number;
  };
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
  const plan = withCleanStream(withStartLayer(loaded.plan, sites.layers, options), options);
  // A shard is a part of one run: the repeated ids, the batch size and the dataset means are the
  // whole selection's, and it runs whole batches of that run (every n-th), so each fact meets the
  // same facts in its batch as in one run and the merged shards equal that run bit for bit.
  const { shard, ...wholeSelection } = options.selection;
  const whole = splitDuplicateIds(selectedFacts(loaded, wholeSelection).selected);
  const longest = longestPrompt(whole.unique, tokenizer, program.bos, source.limits.positions);
  const batch = batchSize(options.batch, sites, plan, longest, options.batchMemory);
  const gradientBatch = plan.attributionVariant ? batchSize(options.batch, sites, plan, longest, options.batchMemory, true) : undefined;
  const unique = shardOf(whole.unique, shard, batch.used);
  const duplicates = shardOf(whole.duplicates, shard, 1);
  const selected = [...unique, ...duplicates];
  if (shard && selected.length === 0) {
    const batches = Math.ceil(whole.unique.length / batch.used);
    throw new UserError(`--shard ${shard.index}/${shard.count} has no facts: a shard runs whole batches, and the run's ${whole.unique.length} facts make ${plural(batches, 'batch', 'batches')} of ${batch.used}`,
      `split the run into at most ${plural(batches, 'shard')}, or lower --batch`);
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
    // the clean stream in the graph: another plan, not mixed with the host's in one journal
    extra: {
      tool: version, device: options.device, ...(plan.variant.cleanStream ? { cleanStream: plan.variant.cleanStream } : {}),
      ...(hashes.attributes ? { attributes: hashes.attributes } : {}),
    },
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
  /** Clean runs recomputed in the graph per fact run (the clean stream in the graph). */
  let recomputed = 0;
  try {
    const sessionOf = async (built: BuiltVariant) => orThrow(await createVariantSession(built, {
      device: options.device, ...(options.threads ? { threads: options.threads } : {}),
    }));
    const session = await sessionOf(variant);
    const attribution = attributionVariant ? { variant: attributionVariant, session: await sessionOf(attributionVariant) } : undefined;
    try {
      const context = {
        program, plan, variant, session, tokenizer, facts: unique, journal, batch: batch.used,
        ...(batch.lastPosition ? { lastPositionBatch: batch.lastPosition } : {}),
        ...(batch.cleanPass ? { cleanBatch: batch.cleanPass } : {}),
        ...(gradientBatch ? { gradientBatch: gradientBatch.used } : {}),
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
      recomputed = counts.examples ? counts.recomputed / counts.examples : 0;
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
      recomputedCleanRuns: recomputed,
      // with the clean stream in the graph, each prompt's clean run as often as batches recomputed
      // it, and rows counted from block 0 (a batch starts at its rows' lowest block: at most theirs)
      cleanForwardEquivalents: recomputed + cleanForwardEquivalents(plan, sites, tokens, {
        lastPosition: rows.mode === 'last_position', startLayer: startLayer.used && !plan.variant.cleanStream, shareClean: !options.fullRows,
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
    return { results, written: writeResults(out, results), resumed, batch, ...(gradientBatch ? { gradientBatch } : {}), cost };
  } finally {
    journal.close();
  }
}

/** The measures of a run's facts (`ids[i]` is the fact of `records[i]`) and its dropped facts. */
export function measureFacts(program: Program, plan: Plan, ids: readonly ExampleId[], records: readonly ExampleRecord[], ci: CiOptions) {
  const droppedFacts = records.flatMap((r, i) => (r.status === 'dropped'
    ? [{ id: ids[i]!, reason: r.reason, ...(r.detail !== undefined ? { detail: r.detail } : {}) }] : []));
  // empty tables would read as a finding: a run that keeps nothing fails, its journal kept for a rerun
  if (droppedFacts.length === records.length) throw noFactKept(droppedFacts);
  return { measured: measureRecords(program, plan, records, ci), droppedFacts };
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
