// The run stage's driver: a checked Program and its Plan become raw numbers per example,
// journaled as each example completes. Work per example: one clean pass (its top-1 token
// is the target; its hidden states feed patches; rows that change nothing are read from it),
// then one row per other plan row. Rows of several examples share right-padded forward passes.

import type { Program } from '../lang/program.js';
import type { CleanOutput } from '../measure/knockout.js';
import type { BuiltVariant } from '../onnx/compile.js';
import { OWN_TOP1_TARGET, VariantNames } from '../onnx/variant.js';
import { mayRunLastPosition, readsCleanPass, sharedGradientRun, startLayerOf, type AttributionPlan, type GateCancel, type Plan, type PlanRow } from '../plan/plan.js';
import { attributionValues, evaluateProbes, type ProbeContext, type ProbeResult } from '../measure/probes.js';
import type { DropReason, ExampleRecord, RowRecord } from '../measure/record.js';
import type { ResultsExample } from '../measure/schema.js';
import type { Journal } from './journal.js';
import type { AttributeSets } from './attributes.js';
import { cleanCache, type BatchRow, type CleanCache, type PastOfRow, type StartOfRow } from './batch.js';
import { InternalError, isRunError, RunUserError } from './errors.js';
import { prepareExample, type Example } from './example.js';
import { passIO } from './io-plan.js';
import type { Fact } from './dataset.js';
import { buildKnockoutMask, type KnockoutMask } from './knockout-mask.js';
import { positionsIn, resolvePositions } from './positions.js';
import { projectionPositions, recomputeMask, subjectWeights } from './probes.js';
import type { DecodedTensor, RunSession } from './session.js';
import type { Tokenizer } from './tokenizer.js';

export interface ExecuteInput {
  readonly program: Program;
  readonly plan: Plan;
  readonly variant: BuiltVariant;
  readonly session: RunSession;
  /** The attribution variant and its session (Plan.attributionVariant): the rows of experiments that take gradients run there. */
  readonly attribution?: { readonly variant: BuiltVariant; readonly session: RunSession };
  readonly tokenizer: Tokenizer;
  readonly facts: readonly Fact[];
  readonly journal: Journal<ExampleRecord>;
  readonly attributes?: AttributeSets;
  /** Dataset means of hidden states, by hidden-state index (for `with mean hidden`). */
  readonly meanHidden?: ReadonlyMap<number, Float32Array>;
  /** Rows per forward pass. */
  readonly batch: number;
  /** Rows per forward pass of last-position rows, one token each (default: batch). */
  readonly lastPositionBatch?: number;
  /** Prompts per clean pass that returns keys and values or hidden states (default: batch; BatchSize.cleanPass). */
  readonly cleanBatch?: number;
  /** Rows per forward pass of the rows that take gradients (default: batch). */
  readonly gradientBatch?: number;
  /** The most tokens the model takes (ModelLimits.positions); longer prompts are dropped. */
  readonly positions?: { readonly count: number; readonly table: string };
  /** Run rows that change only the last position's attention as that token alone, against the clean run's cache. */
  readonly lastPosition?: boolean;
  /** Read rows that change nothing (readsCleanPass) from each fact's clean pass instead of running them. */
  readonly shareClean?: boolean;
  /** Begin each row at the first block it changes or reads (startLayerOf), from the clean run's hidden state (the variant takes dissect_start_layer). */
  readonly startLayer?: boolean;
  readonly onProgress?: (doneExamples: number, totalExamples: number) => void;
}

interface Prepared { readonly fact: Fact; readonly example: Example }
interface Clean extends CleanOutput {
  /** The clean run's hidden states, when patches, integrated gradients or start blocks read them. */
  readonly hidden?: HiddenStates;
  /** Where the clean run's keys and values are, for last-position rows. */
  readonly past?: Omit<PastOfRow, 'position'>;
  /**
   * The hidden states of the clean run of the fact's corrupted prompt (same BOS policy), when
   * a patch needs them and that prompt has the same token count n.
   */
  readonly corruptedHidden?: HiddenStates;
  /** The records of the rows read from this pass (CleanRow), null where a row's positions lie outside the prompt. */
  readonly read?: readonly (RowRecord | null)[];
}

/** A plan row whose probes are read from the clean pass. */
interface CleanRow { readonly exp: number; readonly row: number; readonly plan: PlanRow }

function cleanRows(input: Pick<ExecuteInput, 'plan' | 'shareClean'>): CleanRow[] {
  if (!input.shareClean) return [];
  return input.plan.experiments.flatMap((exp, e) => exp.rows.flatMap((row, r) => (readsCleanPass(row) ? [{ exp: e, row: r, plan: row }] : [])));
}

/** `f`'s value, or undefined when an explicit position index lies outside this prompt (the fact then gets no value there). */
function withinPrompt<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch (err) {
    if (err instanceof RunUserError && err.error.code === 'positions') return undefined;
    throw err;
  }
}

/** Prepares a chunk of facts; the unusable ones are journaled as dropped. */
function prepareChunk(input: ExecuteInput, chunk: readonly Fact[]): Prepared[] {
  const prepared: Prepared[] = [];
  for (const fact of chunk) {
    const example = prepareExample(fact, input.tokenizer, input.program.bos, input.positions);
    if (isRunError(example)) {
      const reason: DropReason = example.code === 'subject-not-found' ? 'subject_not_found'
        : example.code === 'prompt-too-long' ? 'prompt_too_long' : 'unusable_prompt';
      input.journal.append(fact.id, { status: 'dropped', reason, detail: example.message });
    } else {
      prepared.push({ fact, example });
    }
  }
  return prepared;
}

const integrationOf = (row: PlanRow): Extract<AttributionPlan, { kind: 'integrated_gradients' }> | undefined =>
  row.probes.find((p): p is Extract<AttributionPlan, { kind: 'integrated_gradients' }> => p.kind === 'integrated_gradients');
const needsHidden = (plan: Plan): boolean =>
  plan.experiments.some((e) => e.rows.some((r) => r.patch?.source.kind === 'hidden' || integrationOf(r)));
const needsCorrupted = (plan: Plan): boolean =>
  plan.experiments.some((e) => e.rows.some((r) => r.patch?.source.kind === 'corrupted_hidden'));

/**
 * The model input of an example's corrupted prompt (the same BOS policy), or undefined when
 * the fact has none, it cannot be tokenized, or its token count differs from the prompt's.
 */
function corruptedInput(ex: Example, tokenizer: Tokenizer): BatchRow | undefined {
  const text = ex.fact.corrupted;
  if (text === undefined) return undefined;
  let ids: number[];
  try {
    ids = [...tokenizer.encode(text).ids];
  } catch (e) {
    if (e instanceof RunUserError) return undefined;
    throw e;
  }
  if (ex.bos) ids = [tokenizer.bosId!, ...ids];
  return ids.length === ex.n ? { ids, lastIndex: ids.length - 1, target: 0 } : undefined;
}

/**
 * Rows this call ran, by how: its last token against the clean cache, or the whole prompt;
 * `disagreement` when the cross-check of the first last-position row failed (every row then
 * ran over its whole prompt).
 */
export interface RowCounts {
  lastPosition: number;
  full: number;
  clean: number;
  /** Prompts whose clean run a batch of last-position rows recomputed in its graph (the clean stream in the graph), summed over batches. */
  recomputed: number;
  /** Facts this call ran and kept (the measured ones). */
  examples: number;
  disagreement?: string;
}

/**
 * Runs one last-position row also over its whole prompt. A model whose masks or positions do
 * not follow the cache (say, a causal mask built from the key length without the past offset)
 * would give other numbers: then undefined is returned with what differed, and the run falls
 * back to whole prompts rather than report wrong numbers.
 */
async function crossCheck(input: ExecuteInput, item: RowItem, clean: Clean, counts: RowCounts): Promise<string | undefined> {
  const whole = rowItem({ ...input, lastPosition: false, startLayer: false }, item.example, clean, item.exp, item.row, item.plan);
  const [fast, full] = await runRows(input, [item, whole], counts);
  const tolerance = input.variant.manifest.dtype === 'float32' ? 1e-4 : 2e-3;
  if (Math.abs(fast!.pNew - full!.pNew) <= tolerance && fast!.rank === full!.rank) return undefined;
  return `fact ${item.example.fact.id}, ${input.plan.experiments[item.exp]!.name} row ${item.row}: p ${fast!.pNew} as the last token, ${full!.pNew} over the whole prompt`;
}

/** Runs every example not yet in the journal and journals it. */
export async function executeExamples(input: ExecuteInput): Promise<RowCounts> {
  const { facts, journal, batch } = input;
  const counts: RowCounts = { lastPosition: 0, full: 0, clean: 0, recomputed: 0, examples: 0 };
  const read = cleanRows(input);
  let checked = !input.lastPosition;
  const todo = facts.filter((f) => !journal.has(f.id));
  const progress = (): void => input.onProgress?.(facts.filter((f) => journal.has(f.id)).length, facts.length);
  progress();
  // Examples go in chunks of `batch`: one clean pass per chunk, then its rows.
  for (let c = 0; c < todo.length; c += batch) {
    const prepared = prepareChunk(input, todo.slice(c, c + batch));
    // with the clean stream in the graph, rows read the start block's hidden state there
    const startHidden = (input.startLayer ?? false) && !input.variant.manifest.cleanStream;
    const cleans = await cleanPass(input, prepared.map((p) => p.example), {
      hidden: needsHidden(input.plan) || startHidden, cache: input.lastPosition ?? false, rows: read,
      ...(needsCorrupted(input.plan) ? { corrupted: input.tokenizer } : {}),
    });
    const known: { p: Prepared; clean: Clean }[] = [];
    prepared.forEach((p, i) => {
      const clean = cleans[i]!;
      if (input.program.filter === 'known' && clean.targetId !== p.example.targetFirstToken) {
        journal.append(p.fact.id, { status: 'dropped', reason: 'not_known' });
      } else {
        known.push({ p, clean });
      }
    });
    progress();
    // Rows of every known fact of the chunk share forward passes, then each fact is journaled whole.
    const measurableOf = async (inp: ExecuteInput) => {
      const perFact = known.map((k) => rowItems(inp, k.p.example, k.clean));
      const integrated = await integrateIntervened(inp, perFact.flat());
      let at = 0;
      return known.map((k, i) => ({ k, items: perFact[i]!.map(() => integrated[at++]!) }));
    };
    let measurable = await measurableOf(input);
    if (!checked) {
      const first = measurable.find((m) => m.items.some((it) => it.batchRow.past));
      if (first) {
        checked = true;
        counts.disagreement = await crossCheck(input, first.items.find((it) => it.batchRow.past)!, first.k.clean, counts);
        if (counts.disagreement) {
          input = { ...input, lastPosition: false };
          measurable = await measurableOf(input);
        }
      }
    }
    // Last-position rows come first (they cannot share a batch with whole prompts), by the block
    // they start at (a batch starts at one), then by past length (less padding; a variant whose
    // positions are one row for the batch needs them equal), then by experiment, which keeps rows
    // with the same needs (projections, patches) in the same batches: onnxruntime computes every
    // output of a batch, fetched or not. Start before past length: the rows of a chunk that start
    // at one block fill whole batches across prompts of every length, where sorting by length
    // first splits them into a batch per length and block, each reading every weight of its
    // blocks for a few rows. With the clean stream in the graph a batch of last-position rows
    // recomputes the clean run of every prompt it reads: those go by what they compute
    // (projections, recomputation: a batch pays for its rows'), past length, then prompt by
    // prompt, so that a prompt's clean run is recomputed about once a need, and a batch starts
    // at the lowest block of its rows (runRows).
    const past = (it: RowItem): number => it.batchRow.past?.position ?? Infinity;
    const needs = (it: RowItem): number => (it.batchRow.projPositions?.length ? 1 : 0) + (it.batchRow.recomputeRemove ? 2 : 0);
    const keys = ({ owner, item }: { owner: number; item: RowItem }): number[] => (!item.batchRow.past ? [1, startOf(item), item.exp]
      : input.variant.manifest.cleanStream ? [0, needs(item), past(item), owner, startOf(item), item.exp] : [0, startOf(item), past(item), item.exp]);
    const order = measurable.flatMap((m, owner) => m.items.map((item) => ({ owner, item, keys: keys({ owner, item }) })))
      .sort((a, b) => lexicographic(a.keys, b.keys));
    counts.examples += measurable.length;
    const records = await runRows(input, order.map((o) => o.item), counts);
    for (const o of order) counts[o.item.batchRow.past ? 'lastPosition' : 'full']++;
    const rowsOf = measurable.map(() => input.plan.experiments.map((exp) => new Array<RowRecord | null>(exp.rows.length).fill(null)));
    order.forEach((o, i) => { rowsOf[o.owner]![o.item.exp]![o.item.row] = records[i]!; });
    measurable.forEach(({ k }, owner) => read.forEach((r, i) => {
      const record = k.clean.read![i]!;
      rowsOf[owner]![r.exp]![r.row] = record;
      if (record) counts.clean++;
    }));
    for (const [owner, { k }] of measurable.entries()) {
      const rows = rowsOf[owner]!;
      journal.append(k.p.fact.id, {
        status: 'kept',
        example: resultsExample(k.p, k.clean, input.tokenizer),
        clean: { targetId: k.clean.targetId, p0: k.clean.p0 },
        rows,
      });
    }
    progress();
  }
  return counts;
}

interface CleanPassOptions {
  /** Keep each example's hidden states (patches read them). */
  readonly hidden: boolean;
  /** Also the hidden states of each example's corrupted prompt, tokenized by this. */
  readonly corrupted?: Tokenizer;
  /** Keep each example's keys and values for last-position rows. */
  readonly cache?: boolean;
  /** Rows whose probes this pass reads (CleanRow). */
  readonly rows?: readonly CleanRow[];
}

/**
 * Clean passes of the examples. Each row's target is its own top-1 (OWN_TOP1_TARGET), so that
 * the probes of `rows` read in the same pass what a row of their own would: their positions
 * are projected together, and subject weights fed where one reads subject_embeddings.
 */
async function cleanPass(input: ProbeInput & Pick<ExecuteInput, 'session' | 'batch' | 'cleanBatch'>, examples: readonly Example[], opts: CleanPassOptions): Promise<Clean[]> {
  const out: Clean[] = [];
  const reads = opts.rows ?? [];
  const probes = reads.flatMap((r) => r.plan.probes);
  const cacheParts: Record<string, DecodedTensor>[] = [];
  const inGraph = input.variant.manifest.cleanStream === 'in-graph';
  const perPass = (opts.cache && !inGraph) || opts.hidden ? input.cleanBatch ?? input.batch : input.batch;
  for (let i = 0; i < examples.length; i += perPass) {
    const slice = examples.slice(i, i + perPass);
    // per example, each read row's projected positions, undefined where they lie outside the prompt
    const positions = slice.map((e) => reads.map((r) => withinPrompt(() => projectionPositions(r.plan.probes, e))));
    const rows = slice.map((e, j): BatchRow => {
      const projected = [...new Set(positions[j]!.flatMap((p) => p ?? []))].sort((a, b) => a - b);
      const weights = subjectWeights(probes, e);
      return {
        ids: e.ids, lastIndex: e.lastIndex, target: OWN_TOP1_TARGET,
        ...(projected.length ? { projPositions: projected } : {}),
        ...(weights ? { subjectWeights: weights } : {}),
      };
    });
    const io = passIO({ kind: 'clean', probes, hidden: opts.hidden, cache: (opts.cache ?? false) && !inGraph }, input.variant.manifest, rows);
    const r = await io.run(input.session);
    if (opts.cache && !inGraph) cacheParts.push(r);
    const top1 = numbers(r[VariantNames.top1]!.data);
    const prob = numbers(r[VariantNames.top1Prob]!.data);
    slice.forEach((e, j) => {
      const target = top1[j]!;
      const p0 = prob[j]!;
      const read = reads.map((row, k) => (positions[j]![k] === undefined ? null
        : withinPrompt(() => rowRecord(p0, 0, 0, evaluateProbes(row.plan.probes, probeContext(input, r, j, rows[j]!.projPositions ?? [], e, target)))) ?? null));
      out.push({
        targetId: target, p0,
        ...(opts.hidden ? { hidden: hiddenOfRow(r[VariantNames.hiddenStates]!, j, e.n) } : {}),
        ...(reads.length ? { read } : {}),
      });
    });
  }
  if (opts.cache) {
    // one cache for the chunk: a batch of its last-position rows feeds it whatever prompts they are of
    const cache: CleanCache = inGraph
      ? { kind: 'prompts', rows: examples.map((e) => ({ ids: e.ids, lastIndex: e.lastIndex, target: 0 })), prompts: examples.length, seq: Math.max(...examples.map((e) => e.n)) }
      : cleanCache(input.variant.manifest, cacheParts);
    out.forEach((c, prompt) => { out[prompt] = { ...c, past: { cache, prompt } }; });
  }
  if (opts.corrupted) {
    const pending = examples.flatMap((e, i) => {
      const row = corruptedInput(e, opts.corrupted!);
      return row ? [{ i, row }] : [];
    });
    for (let c = 0; c < pending.length; c += input.batch) {
      const slice = pending.slice(c, c + input.batch);
      const io = passIO({ kind: 'corrupted', probes: [], hidden: true }, input.variant.manifest, slice.map((s) => s.row));
      const r = await io.run(input.session);
      slice.forEach((s, j) => {
        out[s.i] = { ...out[s.i]!, corruptedHidden: hiddenOfRow(r[VariantNames.hiddenStates]!, j, s.row.ids.length) };
      });
    }
  }
  return out;
}

/** What evaluating a row's probes needs beyond the run's outputs. */
type ProbeInput = Pick<ExecuteInput, 'program' | 'plan' | 'variant' | 'tokenizer' | 'attributes'>;

function probeContext(
  input: ProbeInput, outputs: Record<string, DecodedTensor>, row: number, projectedPositions: readonly number[], example: Example, target: number,
): ProbeContext {
  const spec = input.program.attributes;
  return {
    outputs, row, projectedPositions, projections: input.plan.variant.projections ?? [], heads: input.variant.manifest.heads,
    positionsOf: positionsIn(example), target, decode: (id) => input.tokenizer.decode(id),
    ...(spec && input.attributes ? { attributes: { spec, subjectSet: input.attributes.get(example.fact.subject) } } : {}),
  };
}

function rowRecord(pNew: number, rank: number, fullyBlocked: number, probes: ProbeResult): RowRecord {
  return {
    pNew, rank, fullyBlocked, probes: probes.values, tokens: probes.tokens, ties: probes.ties,
    ...(probes.positionValues.length ? { positionValues: probes.positionValues } : {}),
  };
}

/** Hidden state ℓ (0 … layers) of a row of n tokens, [n, d]: a view into its pass's output. */
type HiddenStates = (layer: number) => Float32Array;

/** Batch row `row` of dissect_hidden_states [batch, layers+1, seq, d], cut to its n tokens (views, not copies: a chunk holds its clean pass's output once). */
function hiddenOfRow(t: DecodedTensor, row: number, n: number): HiddenStates {
  const [, states, seq, d] = t.dims as [number, number, number, number];
  const data = t.data as Float32Array;
  return (layer) => {
    if (!Number.isInteger(layer) || layer < 0 || layer >= states) throw new InternalError(`hidden state ${layer} of ${states}`);
    const from = (row * states + layer) * seq * d;
    return data.subarray(from, from + n * d);
  };
}

/**
 * Dataset means of the hidden states that `with mean hidden S` patches use: over every
 * token position of every fact that passes the filter. Undefined when no patch needs one.
 * Recomputed by every run (clean passes only), so a resumed run uses the same means.
 */
export async function datasetMeanHidden(
  input: Pick<ExecuteInput, 'program' | 'plan' | 'variant' | 'session' | 'tokenizer' | 'facts' | 'batch' | 'positions'>,
): Promise<Map<number, Float32Array> | undefined> {
  const indices = new Set<number>();
  for (const e of input.plan.experiments) {
    for (const r of e.rows) {
      if (r.patch?.source.kind === 'mean_hidden') indices.add(r.patch.source.index);
      const integration = integrationOf(r);
      if (integration?.baseline === 'mean') indices.add(integration.layer);
    }
  }
  if (!indices.size) return undefined;
  const d = input.variant.manifest.dModel;
  const sums = new Map([...indices].map((i) => [i, new Float64Array(d)]));
  let count = 0;
  for (let c = 0; c < input.facts.length; c += input.batch) {
    const prepared = input.facts.slice(c, c + input.batch).map((f) => prepareExample(f, input.tokenizer, input.program.bos, input.positions))
      .filter((e): e is Example => !isRunError(e));
    const cleans = await cleanPass(input, prepared, { hidden: true });
    prepared.forEach((ex, j) => {
      const clean = cleans[j]!;
      if (input.program.filter === 'known' && clean.targetId !== ex.targetFirstToken) return;
      for (const [index, sum] of sums) {
        const states = clean.hidden!(index);
        for (let p = 0; p < ex.n; p++) for (let k = 0; k < d; k++) sum[k]! += states[p * d + k]!;
      }
      count += ex.n;
    });
  }
  return new Map([...sums].map(([i, sum]) => [i, Float32Array.from(sum, (v) => v / Math.max(1, count))]));
}

interface RowItem {
  readonly exp: number;
  readonly row: number;
  readonly plan: PlanRow;
  readonly example: Example;
  readonly target: number;
  /** The row as it runs (integrated gradients: at α = 1, hidden state h itself). */
  readonly batchRow: BatchRow;
  readonly fullyBlocked: number;
  readonly integration?: Integration;
}

/**
 * Integrated gradients of one row and fact: hidden state `probe.layer` replaced at every position
 * by b + α(h − b), h the row's own run's (integrating), b the baseline. Its steps run at α = 0 and
 * at the midpoints ((k + ½) / steps); the item's own batch row is α = 1. A step's row is made
 * when its batch runs (`along`), so that a chunk holds a batch's patch values, not every step's.
 */
interface Integration {
  readonly probe: Extract<AttributionPlan, { kind: 'integrated_gradients' }>;
  /** h − b, [n, d]. */
  readonly delta: Float32Array;
  /** The α of each step after the item's own row: 0, then the midpoints. */
  readonly alphas: readonly number[];
  readonly along: (alpha: number) => BatchRow;
}

/**
 * One item per plan row of every experiment for one example. A row whose explicit
 * position index lies outside this prompt, or that patches from a corrupted prompt this
 * fact lacks (none, or a different token count), is left out: the fact gets no value there.
 */
function rowItems(input: ExecuteInput, example: Example, clean: Clean): RowItem[] {
  const items = input.plan.experiments.flatMap((exp, e) => exp.rows.map((row, r): RowItem | undefined => {
    if (input.shareClean && readsCleanPass(row)) return undefined; // read from the clean pass
    if (row.patch?.source.kind === 'corrupted_hidden' && !clean.corruptedHidden) return undefined;
    return withinPrompt(() => rowItem(input, example, clean, e, r, row));
  }));
  return items.filter((it): it is RowItem => it !== undefined);
}

function rowItem(input: ExecuteInput, example: Example, clean: Clean, e: number, r: number, row: PlanRow): RowItem {
  const { plan, variant } = input;
  const L = variant.manifest.layers;
  const mask = buildKnockoutMask(row.knockouts, example, L, plan.knockoutHeads, example.n);
  const projPositions = projectionPositions(row.probes, example);
  const n = example.n;
  if (input.lastPosition && clean.past && mayRunLastPosition(row) && onlyLastQuery(mask, example) && projPositions.every((p) => p === n - 1)) {
    const last = new Uint8Array(mask.layers * mask.heads * n);
    for (let s = 0; s < mask.layers * mask.heads; s++) last.set(mask.data.subarray((s * n + n - 1) * n, (s * n + n) * n), s * n);
    const start = rowStart(input, row, clean, n, 'last');
    const batchRow: BatchRow = {
      ids: [example.ids[n - 1]!], lastIndex: 0, target: clean.targetId,
      ...(plan.variant.knockout ? { knockout: { layers: mask.layers, heads: mask.heads, seq: 1, data: last } } : {}),
      ...(projPositions.length ? { projPositions } : {}),
      ...(row.recompute ? { recomputeRemove: recomputeMask(row.recompute, example) } : {}),
      past: { position: n - 1, ...clean.past },
      ...(start ? { start } : {}),
    };
    return { exp: e, row: r, plan: row, example, target: clean.targetId, batchRow, fullyBlocked: mask.fullyBlockedRows };
  }
  const gates = gateArrays(row.gates, example, L);
  const weights = subjectWeights(row.probes, example);
  const start = rowStart(input, row, clean, n, 'all');
  const batchRow: BatchRow = {
    ids: example.ids, lastIndex: example.lastIndex, target: clean.targetId,
    ...(plan.variant.knockout ? { knockout: mask } : {}),
    ...(gates ? { gates } : {}),
    ...(row.patch ? { patch: patchOf(input, row.patch, example, clean) } : {}),
    ...(projPositions.length ? { projPositions } : {}),
    ...(row.recompute ? { recomputeRemove: recomputeMask(row.recompute, example) } : {}),
    ...(weights ? { subjectWeights: weights } : {}),
    ...(start ? { start } : {}),
  };
  const item: RowItem = { exp: e, row: r, plan: row, example, target: clean.targetId, batchRow, fullyBlocked: mask.fullyBlockedRows };
  const probe = integrationOf(row);
  // a row that blocks or cancels integrates along its own run's hidden state: integrateIntervened reads it
  if (!probe || intervenes(row)) return item;
  if (!clean.hidden) throw new InternalError('integrated gradients without a clean hidden-state pass');
  return integrating(input, item, clean.hidden(probe.layer));
}

const intervenes = (row: PlanRow): boolean => row.knockouts.length > 0 || row.gates.length > 0;

/**
 * An integrated-gradients item: hidden state `probe.layer`, `hidden` ([n, d], the row's run's),
 * replaced at every position by b + α(h − b) through the patch inputs, the row's interventions
 * kept (those above the hidden state act on every step).
 */
function integrating(input: ExecuteInput, item: RowItem, hidden: Float32Array): RowItem {
  const probe = integrationOf(item.plan)!;
  const d = input.variant.manifest.dModel;
  const n = item.example.n;
  const baseline = probe.baseline === 'zero' ? new Float32Array(d) : input.meanHidden?.get(probe.layer);
  if (!baseline) throw new InternalError(`no dataset mean of hidden ${probe.layer}`);
  const delta = Float32Array.from(hidden, (h, i) => h - baseline[i % d]!);
  const along = (alpha: number): BatchRow => ({
    ...item.batchRow,
    patch: { layer: probe.layer, mask: new Uint8Array(n).fill(1), values: Float32Array.from(delta, (x, i) => baseline[i % d]! + alpha * x) },
  });
  const alphas = [0, ...Array.from({ length: probe.steps }, (_, k) => (k + 0.5) / probe.steps)];
  return { ...item, batchRow: along(1), integration: { probe, delta, alphas, along } };
}

/**
 * Integrated-gradients items whose rows block or cancel (left without their integration by
 * rowItem): h is read from a forward pass of the row itself in the main variant, so that the
 * interventions below the integrated hidden state shape it; then they integrate as any row.
 */
async function integrateIntervened(input: ExecuteInput, items: readonly RowItem[]): Promise<RowItem[]> {
  const pending = items.flatMap((it, i) => (integrationOf(it.plan) && !it.integration ? [i] : []));
  const out = [...items];
  for (let c = 0; c < pending.length; c += input.batch) {
    const slice = pending.slice(c, c + input.batch);
    const io = passIO({ kind: 'integration', probes: [], hidden: true }, input.variant.manifest, slice.map((i) => items[i]!.batchRow));
    const r = await io.run(input.session);
    slice.forEach((i, j) => {
      const it = items[i]!;
      out[i] = integrating(input, it, hiddenOfRow(r[VariantNames.hiddenStates]!, j, it.example.n)(integrationOf(it.plan)!.layer));
    });
  }
  return out;
}

/**
 * Where a row of an n-token prompt begins when the run starts rows at their first block: that
 * block and the clean run's hidden state entering it, at every position or the last alone (a
 * last-position row); undefined for block 0, where rows that take gradients start (startLayerOf:
 * their variant has no start layer).
 */
function rowStart(input: ExecuteInput, row: PlanRow, clean: Clean, n: number, positions: 'all' | 'last'): StartOfRow | undefined {
  if (!input.startLayer) return undefined;
  const layer = startLayerOf(row, input.variant.manifest.layers);
  if (layer === 0) return undefined;
  // the clean stream in the graph gives a last-position row its start there; a whole prompt runs from block 0
  if (input.variant.manifest.cleanStream) return positions === 'last' ? { layer } : undefined;
  if (!clean.hidden) throw new InternalError('rows starting above block 0 without the clean run\'s hidden states');
  const d = input.variant.manifest.dModel;
  const from = positions === 'last' ? n - 1 : 0;
  return { layer, hidden: clean.hidden(layer).subarray(from * d) };
}

/**
 * Last-position rows from the lowest block any of them starts at (the clean stream in the graph
 * gives each its hidden state there): a row may begin below its own first block, whose blocks
 * below change nothing.
 */
function fromLowestStart(rows: readonly BatchRow[]): BatchRow[] {
  const layer = Math.min(...rows.map((r) => r.start?.layer ?? 0));
  return rows.map(({ start: _, ...row }) => (layer ? { ...row, start: { layer } } : row));
}

/** a before b (< 0), after (> 0) or neither, entry by entry. */
function lexicographic(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** The block a row item starts at. */
const startOf = (it: RowItem): number => it.batchRow.start?.layer ?? 0;

/** Every blocked edge of the mask is the last position's: the other positions run as in the clean pass. */
function onlyLastQuery(mask: KnockoutMask, ex: Example): boolean {
  const n = mask.seq;
  if (ex.lastIndex !== ex.n - 1 || n !== ex.n) return false;
  for (let s = 0; s < mask.layers * mask.heads; s++) {
    const from = s * n * n;
    if (mask.data.subarray(from, from + (n - 1) * n).some((v) => v !== 0)) return false;
  }
  return true;
}

function gateArrays(gates: readonly GateCancel[], ex: Example, layers: number): BatchRow['gates'] {
  if (!gates.length) return undefined;
  const out: { attention?: Float32Array; mlp?: Float32Array } = {};
  for (const g of gates) {
    const a = (out[g.sublayer] ??= new Float32Array(layers * ex.n).fill(1));
    const positions = resolvePositions(g.positions, ex);
    for (const l of g.layers) for (const p of positions) a[l * ex.n + p] = 0;
  }
  return out;
}

function patchOf(input: ExecuteInput, patch: NonNullable<PlanRow['patch']>, ex: Example, clean: Clean): NonNullable<BatchRow['patch']> {
  const d = input.variant.manifest.dModel;
  const n = ex.n;
  const mask = new Uint8Array(n);
  for (const p of resolvePositions(patch.positions, ex)) mask[p] = 1;
  const values = new Float32Array(n * d);
  if (patch.source.kind === 'hidden') {
    if (!clean.hidden) throw new InternalError('patch from hidden states without a clean hidden-state pass');
    values.set(clean.hidden(patch.source.index));
  } else if (patch.source.kind === 'corrupted_hidden') {
    if (!clean.corruptedHidden) throw new InternalError('patch from a corrupted prompt without its hidden states');
    values.set(clean.corruptedHidden(patch.source.index));
  } else {
    const m = input.meanHidden?.get(patch.source.index);
    if (!m) throw new InternalError(`no dataset mean of hidden ${patch.source.index}`);
    for (let p = 0; p < n; p++) values.set(m, p * d);
  }
  return { layer: patch.layer, mask, values };
}

/** One batch row of an item: step 0 is the item's own row; integrated gradients add one per Integration.alphas as steps 1, 2, … */
interface Unit { readonly item: number; readonly step: number }

/** What integrated gradients gather from their batch rows: y at α = 1 and 0, and the sum of the gradients at the midpoints ([n, d]). */
interface IntegrationSums { yInput: number; yBaseline: number; readonly gradient: Float64Array }

/**
 * Every item's record, `batch` rows per forward pass, fetching only what the batch needs. Rows
 * of experiments that take gradients run in the attribution variant; an integrated-gradients
 * item runs several batch rows, possibly across batches, and is reduced once all have run.
 */
async function runRows(input: ExecuteInput, items: readonly RowItem[], counts: RowCounts): Promise<RowRecord[]> {
  const sharedPositions = input.variant.manifest.inputs.some((t) => t.name === VariantNames.positionIds && t.shape[0] === 1);
  const readers = sharedGradientRuns(input, items);
  const units: Unit[] = items.flatMap((it, item) => (readers.has(item)
    ? Array.from({ length: 1 + (it.integration?.alphas.length ?? 0) }, (_, step) => ({ item, step })) : []));
  const batchRow = ({ item, step }: Unit): BatchRow => {
    const it = items[item]!;
    return step === 0 ? it.batchRow : it.integration!.along(it.integration!.alphas[step - 1]!);
  };
  // a batch holds rows of one kind: rows that take gradients, last-position rows (of one past
  // length where the variant's positions are shared by the batch) or whole prompts, starting at
  // one block (last-position rows with the clean stream in the graph: at their lowest, below)
  const inGraph = input.variant.manifest.cleanStream !== undefined;
  const kinds = units.map(({ item }): string => {
    const it = items[item]!;
    if (input.plan.experiments[it.exp]!.attribution) return 'attribution';
    const rows = !it.batchRow.past ? 'whole' : sharedPositions ? `past ${it.batchRow.past.position}` : 'past';
    return inGraph && it.batchRow.past ? rows : `${rows} from ${startOf(it)}`;
  });
  const outputs: { pNew: number; rank: number; probes: ProbeResult }[] = [];
  const sums = new Map<number, IntegrationSums>();
  for (let i = 0; i < units.length;) {
    const gradients = kinds[i] === 'attribution';
    const rows = gradients ? input.gradientBatch ?? input.batch
      : items[units[i]!.item]!.batchRow.past ? input.lastPositionBatch ?? input.batch : input.batch;
    let end = Math.min(units.length, i + rows);
    for (let j = i + 1; j < end; j++) if (kinds[j] !== kinds[i]) end = j;
    const slice = units.slice(i, end);
    i = end;
    if (gradients && !input.attribution) throw new InternalError('rows that take gradients without the attribution variant');
    const { variant, session } = gradients ? input.attribution! : input;
    const probes = slice.flatMap((u) => readers.get(u.item)!.flatMap((reader) => items[reader]!.plan.probes));
    let rowsOfPass = slice.map(batchRow);
    if (variant.manifest.cleanStream && rowsOfPass[0]!.past) {
      counts.recomputed += new Set(rowsOfPass.map((r) => r.past!.prompt)).size;
      rowsOfPass = fromLowestStart(rowsOfPass);
    }
    const io = passIO({ kind: 'rows', probes }, variant.manifest, rowsOfPass);
    const r = await io.run(session);
    const prob = numbers(r[VariantNames.targetProb]!.data);
    const rank = numbers(r[VariantNames.targetRank]!.data);
    slice.forEach((u, j) => {
      const own = items[u.item]!;
      if (own.integration) addIntegrationStep(sums, u, own, r, j, variant.manifest.dModel);
      if (u.step !== 0) return;
      for (const reader of readers.get(u.item)!) {
        const it = items[reader]!;
        outputs[reader] = { pNew: prob[j]!, rank: rank[j]!, probes: evaluateProbes(it.plan.probes, probeContext(input, r, j, it.batchRow.projPositions ?? [], it.example, it.target)) };
      }
    });
  }
  for (const [item, sum] of sums) integratedGradients(items[item]!, sum, input.variant.manifest.dModel, input.program.choices.attribution_reduction, outputs[item]!.probes);
  return items.map((it, item) => {
    const { pNew, rank, probes } = outputs[item]!;
    return rowRecord(pNew, rank, it.fullyBlocked, probes);
  });
}

/**
 * Which items each run serves: item → the items that read its outputs (itself first); items
 * served by another's run are absent. The rows of a fact that plan.ts's sharedGradientRun puts
 * together (differing only in the hidden state their attribution probes read) run once, not
 * once per hidden state.
 */
function sharedGradientRuns(input: ExecuteInput, items: readonly RowItem[]): Map<number, number[]> {
  const readers = new Map<number, number[]>();
  const runOf = new Map<Example, Map<string, number>>();
  items.forEach((it, item) => {
    const shared = sharedGradientRun(input.plan.experiments[it.exp]!, it.plan);
    if (shared === undefined) {
      readers.set(item, [item]);
      return;
    }
    const key = JSON.stringify([it.exp, shared]);
    const runs = runOf.get(it.example) ?? new Map<string, number>();
    runOf.set(it.example, runs);
    const run = runs.get(key);
    if (run === undefined) {
      runs.set(key, item);
      readers.set(item, [item]);
    } else {
      readers.get(run)!.push(item);
    }
  });
  return readers;
}

/** Adds one batch row of an integrated-gradients item: y at the ends, the gradient at a midpoint. */
function addIntegrationStep(sums: Map<number, IntegrationSums>, u: Unit, it: RowItem, r: Readonly<Record<string, DecodedTensor>>, j: number, d: number): void {
  const n = it.example.n;
  let sum = sums.get(u.item);
  if (!sum) sums.set(u.item, (sum = { yInput: NaN, yBaseline: NaN, gradient: new Float64Array(n * d) }));
  const y = Number(r[VariantNames.attributionY]!.data[j]);
  if (u.step === 0) sum.yInput = y;
  else if (u.step === 1) sum.yBaseline = y;
  else {
    const g = r[VariantNames.attributionPatchGradient]!;
    const data = (g.data as Float32Array).subarray(j * g.dims[1]! * d, (j * g.dims[1]! + n) * d);
    for (let k = 0; k < n * d; k++) sum.gradient[k]! += data[k]!;
  }
}

/**
 * Integrated gradients from their sums: per position (h − b) ⊙ the mean gradient, reduced over
 * the model width as the attribution_reduction choice says; the completeness gap is
 * Σ over every position and coordinate of (h − b) ⊙ the mean gradient − (y(h) − y(b)).
 */
function integratedGradients(it: RowItem, sum: IntegrationSums, d: number, reduction: 'sum' | 'l2_norm', result: ProbeResult): void {
  const { probe, delta } = it.integration!;
  const n = it.example.n;
  const product = (p: number, k: number): number => (delta[p * d + k]! * sum.gradient[p * d + k]!) / probe.steps;
  const reduced = (p: number): number => {
    let acc = 0;
    for (let k = 0; k < d; k++) acc += reduction === 'sum' ? product(p, k) : product(p, k) ** 2;
    return reduction === 'sum' ? acc : Math.sqrt(acc);
  };
  let total = 0;
  for (let p = 0; p < n; p++) for (let k = 0; k < d; k++) total += product(p, k);
  attributionValues(probe, positionsIn(it.example), reduced, result, total - (sum.yInput - sum.yBaseline));
}

function resultsExample(p: Prepared, clean: CleanOutput, tokenizer: Tokenizer): ResultsExample {
  return {
    id: p.fact.id,
    prompt: p.fact.prompt,
    subject: p.fact.subject,
    target: p.fact.target,
    tokens: p.example.ids.map((id) => tokenizer.tokenString(id)),
    subjectRange: [p.example.subject.start, p.example.subject.end],
    subjectAtZero: p.example.subjectAtZero,
    cleanTop1: { id: clean.targetId, token: tokenizer.has(clean.targetId) ? tokenizer.decode(clean.targetId) : '', prob: clean.p0 },
  };
}

function numbers(data: ArrayLike<number | bigint>): number[] {
  return Array.from(data as ArrayLike<number | bigint>, (v) => Number(v));
}
