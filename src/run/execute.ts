// The run stage's driver: a checked Program and its Plan become raw numbers per example,
// journaled as each example completes, then measures and results. Work per example:
// one clean pass (its top-1 token is the target), then one row per plan row, batched
// across examples and configurations.

import type { Program } from '../lang/program.js';
import { knockoutExampleRows, type CleanOutput, type KeyedRowOutput, type ValueRow } from '../measure/knockout.js';
import { aggregateSeries, sweepAxes } from '../measure/aggregate.js';
import { defaultCi, type CiOptions } from '../measure/stats.js';
import type { BuiltVariant } from '../onnx/compile.js';
import { VariantNames } from '../onnx/variant.js';
import type { Plan } from '../plan/plan.js';
import type { ResultsExample, ResultsExperiment } from '../report/schema.js';
import type { Journal } from '../report/journal.js';
import { buildFeeds, type BatchRow } from './batch.js';
import { isRunError, RunUserError } from './errors.js';
import { prepareExample, type Example } from './example.js';
import type { Fact } from './dataset.js';
import { buildKnockoutMask } from './knockout-mask.js';
import type { RunSession } from './session.js';
import type { Tokenizer } from './tokenizer.js';

/** What the journal keeps per example: enough to rebuild every measure without the model. */
export type ExampleRecord =
  | { readonly status: 'dropped'; readonly reason: DropReason; readonly detail?: string }
  | {
      readonly status: 'kept';
      readonly example: ResultsExample;
      readonly clean: CleanOutput;
      /** Per experiment, per plan row (plan order). */
      readonly rows: readonly (readonly RowRecord[])[];
    };

/** One plan row of one example: the target's probability and rank under the intervention. */
export interface RowRecord {
  readonly pNew: number;
  readonly rank: number;
  /** Query rows (per layer and head slot) whose every causal key was blocked. */
  readonly fullyBlocked: number;
}

export type DropReason = 'not_known' | 'subject_not_found' | 'unusable_prompt' | 'position_out_of_range';

export interface ExecuteInput {
  readonly program: Program;
  readonly plan: Plan;
  readonly variant: BuiltVariant;
  readonly session: RunSession;
  readonly tokenizer: Tokenizer;
  readonly facts: readonly Fact[];
  readonly journal: Journal<ExampleRecord>;
  /** Rows per forward pass. */
  readonly batch: number;
  readonly onProgress?: (doneExamples: number, totalExamples: number) => void;
}

interface Prepared { readonly fact: Fact; readonly example: Example }

/** Runs every example not yet in the journal and journals it. */
export async function executeExamples(input: ExecuteInput): Promise<void> {
  const { facts, journal, batch } = input;
  const todo = facts.filter((f) => !journal.has(f.id));
  let done = facts.length - todo.length;
  input.onProgress?.(done, facts.length);
  // Examples go in chunks of `batch`: one clean pass per chunk, then its rows.
  for (let c = 0; c < todo.length; c += batch) {
    const chunk = todo.slice(c, c + batch);
    const prepared: Prepared[] = [];
    for (const fact of chunk) {
      const example = prepareExample(fact, input.tokenizer, input.program.bos);
      if (isRunError(example)) {
        const reason: DropReason = example.code === 'subject-not-found' ? 'subject_not_found' : 'unusable_prompt';
        journal.append(fact.id, { status: 'dropped', reason, detail: example.message });
        done++;
      } else {
        prepared.push({ fact, example });
      }
    }
    const cleans = await cleanPass(input, prepared.map((p) => p.example));
    const known: { p: Prepared; clean: CleanOutput; top1Token: string }[] = [];
    prepared.forEach((p, i) => {
      const clean = cleans[i]!;
      if (input.program.filter === 'known' && clean.targetId !== p.example.targetFirstToken) {
        journal.append(p.fact.id, { status: 'dropped', reason: 'not_known' });
        done++;
      } else {
        known.push({ p, clean, top1Token: input.tokenizer.decode(clean.targetId) });
      }
    });
    input.onProgress?.(done, facts.length);
    // Rows of every known fact of the chunk share forward passes (right-padded), then each
    // fact is journaled whole.
    const measurable: { k: (typeof known)[number]; items: RowItem[] }[] = [];
    for (const k of known) {
      try {
        measurable.push({ k, items: rowItems(input, k.p.example, k.clean.targetId) });
      } catch (e) {
        // An explicit position index beyond this prompt: the fact cannot be measured.
        if (!(e instanceof RunUserError) || e.error.code !== 'positions') throw e;
        journal.append(k.p.fact.id, { status: 'dropped', reason: 'position_out_of_range', detail: e.error.message });
        input.onProgress?.(++done, facts.length);
      }
    }
    const outputs = await runRows(input, measurable.flatMap((m) => m.items));
    let next = 0;
    for (const { k, items } of measurable) {
      const rows = input.plan.experiments.map((exp) => new Array<RowRecord>(exp.rows.length));
      for (const it of items) rows[it.exp]![it.row] = { ...outputs[next++]!, fullyBlocked: it.fullyBlocked };
      journal.append(k.p.fact.id, {
        status: 'kept',
        example: resultsExample(k.p, k.clean, k.top1Token, input.tokenizer),
        clean: k.clean,
        rows,
      });
      input.onProgress?.(++done, facts.length);
    }
  }
}

async function cleanPass(input: ExecuteInput, examples: readonly Example[]): Promise<CleanOutput[]> {
  const out: CleanOutput[] = [];
  for (let i = 0; i < examples.length; i += input.batch) {
    const rows = examples.slice(i, i + input.batch).map((e): BatchRow => ({ ids: e.ids, lastIndex: e.lastIndex, target: 0 }));
    const r = await input.session.run(buildFeeds(input.variant.manifest, rows));
    const top1 = numbers(r[VariantNames.top1]!.data);
    const prob = numbers(r[VariantNames.top1Prob]!.data);
    rows.forEach((_, j) => out.push({ targetId: top1[j]!, p0: prob[j]! }));
  }
  return out;
}

interface RowItem { readonly exp: number; readonly row: number; readonly batchRow: BatchRow; readonly fullyBlocked: number }

/** One item per plan row of every experiment for one example. */
function rowItems(input: ExecuteInput, example: Example, target: number): RowItem[] {
  const { plan, variant } = input;
  return plan.experiments.flatMap((exp, e) => exp.rows.map((row, r): RowItem => {
    const mask = buildKnockoutMask(row.knockouts, example, variant.manifest.layers, plan.knockoutHeads, example.n);
    return {
      exp: e, row: r, fullyBlocked: mask.fullyBlockedRows,
      batchRow: { ids: example.ids, lastIndex: example.lastIndex, target, ...(plan.variant.knockout ? { knockout: mask } : {}) },
    };
  }));
}

/** The target's probability and rank for every item, `batch` rows per forward pass. */
async function runRows(input: ExecuteInput, items: readonly RowItem[]): Promise<{ pNew: number; rank: number }[]> {
  const out: { pNew: number; rank: number }[] = [];
  for (let i = 0; i < items.length; i += input.batch) {
    const slice = items.slice(i, i + input.batch);
    const r = await input.session.run(buildFeeds(input.variant.manifest, slice.map((it) => it.batchRow)));
    const prob = numbers(r[VariantNames.targetProb]!.data);
    const rank = numbers(r[VariantNames.targetRank]!.data);
    slice.forEach((_, j) => out.push({ pNew: prob[j]!, rank: rank[j]! }));
  }
  return out;
}

function resultsExample(p: Prepared, clean: CleanOutput, top1Token: string, tokenizer: Tokenizer): ResultsExample {
  return {
    id: p.fact.id,
    prompt: p.fact.prompt,
    subject: p.fact.subject,
    target: p.fact.target,
    tokens: p.example.ids.map((id) => tokenizer.tokenString(id)),
    subjectRange: [p.example.subject.start, p.example.subject.end],
    subjectAtZero: p.example.subjectAtZero,
    cleanTop1: { id: clean.targetId, token: top1Token, prob: clean.p0 },
  };
}

function numbers(data: ArrayLike<number | bigint>): number[] {
  return Array.from(data as ArrayLike<number | bigint>, (v) => Number(v));
}

export interface MeasuredRun {
  readonly examples: ResultsExample[];
  readonly dropped: Record<string, number>;
  readonly experiments: ResultsExperiment[];
}

/** From journaled records (dataset order) to the measured experiments. Needs no model. */
export function measureRecords(
  program: Program, plan: Plan, records: readonly ExampleRecord[], ci: CiOptions = defaultCi,
): MeasuredRun {
  const examples: ResultsExample[] = [];
  const dropped: Record<string, number> = {};
  for (const r of records) {
    if (r.status === 'dropped') dropped[r.reason] = (dropped[r.reason] ?? 0) + 1;
    else examples.push(r.example);
  }
  const kept = records.filter((r): r is ExampleRecord & { status: 'kept' } => r.status === 'kept');
  const experiments = plan.experiments.map((exp, e): ResultsExperiment => {
    const axes = sweepAxes(program.experiments[e]!.sweeps);
    const values: ValueRow[] = [];
    let fullyBlockedRows = 0;
    for (const r of kept) {
      const rows: KeyedRowOutput[] = exp.rows.map((row, i) => ({ key: row.key, ...r.rows[e]![i]! }));
      fullyBlockedRows += r.rows[e]!.filter((x) => x.fullyBlocked > 0).length;
      values.push(...knockoutExampleRows(r.example.id, r.clean, rows, exp.measures));
    }
    return {
      name: exp.name,
      source: exp.source,
      sweeps: axes,
      measures: exp.measures,
      forwardPasses: kept.length * exp.rows.length,
      fullyBlockedRows,
      series: aggregateSeries(axes, exp.measures, values, ci),
      values,
    };
  });
  return { examples, dropped, experiments };
}
