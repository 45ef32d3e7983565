// Writing a run's results: results.json (validated first) and a long-format results.csv
// beside it, each atomically (see OutputFolder.write).

import type { OutputFolder } from '../output/folder.js';
import { RESULTS_FORMAT, validateResults, type Results } from '../measure/schema.js';

export const RESULTS_JSON = 'results.json';
export const RESULTS_CSV = 'results.csv';

/** The results object does not match its schema: a bug in dissect, not a user error. */
export class ResultsValidationError extends Error {
  override readonly name = 'ResultsValidationError';
  readonly internal = true;
  constructor(readonly errors: readonly string[]) {
    const shown = errors.slice(0, 20).join('\n  ');
    const more = errors.length > 20 ? `\n  … and ${errors.length - 20} more` : '';
    super(`internal error: the results failed validation against the ${RESULTS_FORMAT} schema, so nothing was written:\n  ${shown}${more}`);
  }
}

export interface WrittenResults {
  readonly json: string;
  readonly csv: string;
}

/** Nesting depth: 0 for a primitive, 1 for an object or array of primitives, … */
function depth(v: unknown): number {
  if (v === null || typeof v !== 'object') return 0;
  let d = 0;
  for (const x of Object.values(v as object)) d = Math.max(d, depth(x));
  return d + 1;
}

/**
 * JSON text, indented for reading, with two kinds of values kept on one line: anything
 * whose one-line form fits in `width` characters, and array elements nested at most two
 * deep (table rows: one line per example, per series point, per value row).
 */
export function formatJson(value: unknown, width = 100): string {
  const out: string[] = [];
  const write = (v: unknown, indent: string, prefixLen: number, inArray = false): void => {
    const flat = JSON.stringify(v);
    if (flat === undefined) throw new TypeError('value is not representable in JSON');
    if (v === null || typeof v !== 'object' || indent.length + prefixLen + flat.length <= width || (inArray && depth(v) <= 2)) {
      out.push(flat);
      return;
    }
    const inner = indent + '  ';
    if (Array.isArray(v)) {
      if (v.length === 0) return void out.push('[]');
      out.push('[');
      v.forEach((item, i) => {
        out.push('\n' + inner);
        write(item === undefined ? null : item, inner, 1, true);
        if (i < v.length - 1) out.push(',');
      });
      out.push('\n' + indent + ']');
      return;
    }
    const entries = Object.entries(v as Record<string, unknown>).filter(
      ([, x]) => x !== undefined && typeof x !== 'function' && typeof x !== 'symbol',
    );
    if (entries.length === 0) return void out.push('{}');
    out.push('{');
    entries.forEach(([k, x], i) => {
      const keyText = JSON.stringify(k) + ': ';
      out.push('\n' + inner + keyText);
      write(x, inner, keyText.length + 1);
      if (i < entries.length - 1) out.push(',');
    });
    out.push('\n' + indent + '}');
  };
  write(value, '', 0);
  return out.join('') + '\n';
}

/** One CSV field, quoted (RFC 4180) when it holds a comma, quote, CR or LF, or edge spaces. */
export function csvField(v: string | number | null | undefined): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'number' ? String(v) : v;
  return /[",\r\n]|^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

const fixedColumns = ['experiment', 'example_id', 'measure', 'value'];

/**
 * Long format: one line per (experiment, example, binding, measure). Columns: experiment,
 * example_id, one column per sweep variable (union over experiments, first appearance
 * order, empty where an experiment lacks it), measure, value. A sweep variable whose name
 * clashes with a fixed column gets the prefix `sweep_`.
 */
export function resultsCsv(results: Results): string {
  const vars: string[] = [];
  for (const x of results.experiments) for (const s of x.sweeps) if (!vars.includes(s.variable)) vars.push(s.variable);
  const taken = new Set(fixedColumns);
  const column = new Map<string, string>();
  for (const v of vars) {
    let name = v;
    while (taken.has(name)) name = `sweep_${name}`;
    taken.add(name);
    column.set(v, name);
  }
  const lines: string[] = [['experiment', 'example_id', ...vars.map((v) => column.get(v)!), 'measure', 'value'].map(csvField).join(',')];
  for (const x of results.experiments) {
    for (const row of x.values) {
      const sweepCells = vars.map((v) => csvField(Object.prototype.hasOwnProperty.call(row.key, v) ? row.key[v] : null));
      for (const { id } of x.measures) {
        const value = row.values[id];
        if (value === undefined) continue;
        lines.push([csvField(x.name), csvField(row.example), ...sweepCells, csvField(id), csvField(value)].join(','));
      }
    }
  }
  return lines.join('\n') + '\n';
}

/** Validate, then write results.json and results.csv into the output folder. */
export function writeResults(out: OutputFolder, results: Results): WrittenResults {
  const errors = validateResults(results);
  if (errors.length > 0) throw new ResultsValidationError(errors);
  return { json: out.write(RESULTS_JSON, formatJson(results)), csv: out.write(RESULTS_CSV, resultsCsv(results)) };
}
