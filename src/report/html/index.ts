// The HTML report of a run: report.html (self-contained) and every plot as a standalone
// SVG (and PNG, where resvg loads) in plots/. Built from results.json alone, so
// `dissect report` rebuilds it without the model. Deterministic: the same results give
// the same bytes.

import * as fs from 'node:fs';
import { fsUserError, UserError } from '../../errors.js';
import type { OutputFolder } from '../../output/folder.js';
import { RESULTS_FORMAT, validateResults, type Results } from '../../measure/schema.js';
import { allFigures, planFigures, type ReportPlan } from './figures.js';
import { renderPage, type RenderedFigure } from './page.js';
import { loadPngRenderer, renderSvg } from './render.js';
import { plural } from '../../plural.js';

export { planFigures, allFigures, type Figure, type ReportPlan } from './figures.js';

const REPORT_HTML = 'report.html';
export const PLOTS_DIR = 'plots';

export interface RenderedReport {
  readonly html: string;
  readonly plan: ReportPlan;
  /** In page order. */
  readonly figures: readonly RenderedFigure[];
  /** vega and vega-lite warnings (not printed). */
  readonly warnings: readonly string[];
}

/** The report in memory: the page and each figure's SVG; `reportDir` is the folder it is meant for. */
export async function renderReport(results: Results, reportDir?: string): Promise<RenderedReport> {
  const plan = planFigures(results);
  const warnings: string[] = [];
  const figures: RenderedFigure[] = [];
  for (const figure of allFigures(results, plan)) {
    const svg = await renderSvg(figure.spec, figure.id, warnings);
    figures.push({ figure, svg, file: `${PLOTS_DIR}/${figure.id}.svg` });
  }
  const html = renderPage(results, plan, new Map(figures.map((f) => [f.figure.id, f])), reportDir);
  return { html, plan, figures, warnings };
}

export interface WrittenReport {
  /** Absolute paths. */
  readonly html: string;
  readonly svgs: readonly string[];
  readonly pngs: readonly string[];
  /** Why no PNG was written, when none was. */
  readonly pngSkipped?: string;
}

export interface WriteReportOptions {
  /** Write PNG files beside the SVGs (default true; skipped where resvg does not load). */
  readonly png?: boolean;
}

/**
 * Writes report.html and plots/<figure>.svg (and .png) into the output folder, and removes
 * the plots an earlier report of this folder wrote that this one does not (they would
 * mislead). Files dissect did not write are never touched.
 */
export async function writeReport(out: OutputFolder, results: Results, options: WriteReportOptions = {}): Promise<WrittenReport> {
  const rendered = await renderReport(results, out.dir);
  const svgs: string[] = [];
  const pngs: string[] = [];
  let pngSkipped: string | undefined;
  const toPng = options.png === false ? new Error('PNG output is off') : await loadPngRenderer();
  if (toPng instanceof Error) pngSkipped = toPng.message;
  const written = new Set<string>();
  const put = (rel: string, data: string | Uint8Array, list: string[]) => {
    list.push(out.write(rel, data));
    written.add(rel);
  };
  for (const f of rendered.figures) {
    put(`${PLOTS_DIR}/${f.figure.id}.svg`, `<?xml version="1.0" encoding="UTF-8"?>\n${f.svg}\n`, svgs);
    if (!(toPng instanceof Error)) put(`${PLOTS_DIR}/${f.figure.id}.png`, toPng(f.svg), pngs);
  }
  out.removeOwnedExcept(PLOTS_DIR, written);
  const html = out.write(REPORT_HTML, rendered.html);
  return { html, svgs, pngs, ...(pngSkipped !== undefined && rendered.figures.length > 0 ? { pngSkipped } : {}) };
}

/** Reads and validates a results.json; every problem is a UserError with the file's name. */
export function readResultsFile(file: string): Results {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw fsUserError('read', file, e, 'give the results.json that `dissect run` wrote');
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${file} is not JSON: ${(e as Error).message}`, 'give the results.json that `dissect run` wrote');
  }
  const format: unknown = obj !== null && typeof obj === 'object' ? (obj as { format?: unknown }).format : undefined;
  if (typeof format === 'string' && format.startsWith('dissect-results/') && format !== RESULTS_FORMAT) {
    throw new UserError(`${file} is ${format}, written by an older dissect; this version reads ${RESULTS_FORMAT}`,
      'run the program again with `dissect run` (its journal must be discarded with --fresh) to write the results in this format');
  }
  const errors = validateResults(obj);
  if (errors.length > 0) {
    const shown = errors.slice(0, 10).map((e) => `  ${e}`).join('\n');
    const more = errors.length > 10 ? `\n  … and ${errors.length - 10} more` : '';
    throw new UserError(
      `${file} is not a valid dissect results file (${plural(errors.length, 'problem')}):\n${shown}${more}`,
      `give the results.json that \`dissect run\` wrote (format ${RESULTS_FORMAT}); \`dissect schema\` prints its JSON Schema`,
    );
  }
  return obj as Results;
}
