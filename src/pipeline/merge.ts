// `dissect merge`: a run's results assembled from its shards' folders alone, measured as one run
// measures them. Reads no model.

import { withOutputFolder } from '../output/folder.js';
import { DiagnosticsError } from './load.js';
import { measureFacts } from './run.js';
import { frontEnd, hasErrors, type Program } from '../lang/index.js';
import { planProgram } from '../plan/index.js';
import { readShards, refuseRunFolder } from '../run/index.js';
import { writeReport, type WriteReportOptions, writeResults, type WrittenReport, type WrittenResults } from '../report/index.js';
import type { Results } from '../measure/index.js';

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
