// The fuzzer's property: a source ends in positioned diagnostics, or in a plan that stays
// inside the model and the row limit. Anything else (an exception, an unpositioned or
// missing error, a plan the run would trip over) is a finding.

import { commandLineFile, frontEnd, hasErrors, type ShapeOf } from '../../src/lang/index.js';
import { defaultRowLimits } from '../../src/lang/limits.js';
import type { Diagnostic, ModelShape } from '../../src/lang/program.js';
import { isAttribution, planProgram, type Plan } from '../../src/plan/plan.js';

/** Why a diagnostic cannot be shown at its place in `lines`, if it cannot. */
function unpositioned(d: Diagnostic, file: string, lines: readonly string[]): string | undefined {
  const { span } = d;
  if (span.file === commandLineFile) return undefined;
  if (span.file !== file) return `names the file ${span.file}`;
  const line = lines[span.line - 1];
  if (!Number.isInteger(span.line) || line === undefined) return `line ${span.line} is not in the file's ${lines.length} lines`;
  if (!Number.isInteger(span.column) || span.column < 1 || span.column > line.length + 1) return `column ${span.column} is not on line ${span.line} (${line.length} characters)`;
  if (d.message.length === 0 || d.message.includes('\n')) return 'its message is not one line';
  return undefined;
}

function outside(what: string, value: number, from: number, to: number): string | undefined {
  return Number.isInteger(value) && value >= from && value <= to ? undefined : `${what} ${value} is outside ${from}..${to}`;
}

/** What in a plan the run could not execute on a model of this shape. */
export function planProblems(plan: Plan, shape: ModelShape): string[] {
  const { layers: L, heads: H, vocab } = shape;
  const problems: (string | undefined)[] = [];
  const rows = plan.passesPerExample - 1;
  if (rows > defaultRowLimits.perFact) problems.push(`${rows} rows per fact, more than ${defaultRowLimits.perFact}`);
  for (const e of plan.experiments) {
    const expected = e.sweeps.reduce((n, s) => n * s.values.length, 1);
    if (e.rows.length !== expected) problems.push(`experiment ${e.name} has ${e.rows.length} rows, its sweeps give ${expected}`);
    for (const row of e.rows) {
      for (const k of row.knockouts) {
        problems.push(...k.layers.map((l) => outside('knockout layer', l, 0, L - 1)));
        if (k.heads !== 'all') problems.push(...k.heads.map((h) => outside('head', h, 0, H - 1)));
      }
      for (const g of row.gates) problems.push(...g.layers.map((l) => outside('cancelled layer', l, 0, L - 1)));
      if (row.patch) {
        problems.push(outside('patched block input', row.patch.layer, 0, L - 1), outside('patch source', row.patch.source.index, 0, L));
      }
      for (const p of row.probes) {
        if (p.kind === 'attention_weight') {
          problems.push(outside('attention weight layer', p.layer, 0, L - 1));
          continue;
        }
        if (isAttribution(p)) {
          problems.push(outside(`${p.kind} hidden state`, p.layer, 0, L));
          continue;
        }
        problems.push(outside(`${p.site} probe index`, p.layer, 0, p.site === 'hidden' ? L : L - 1), outside('probe k', p.k, 1, vocab));
      }
    }
  }
  return problems.filter((p): p is string => p !== undefined).slice(0, 5);
}

export type Verdict =
  | { readonly ok: true; readonly outcome: 'diagnostics' | 'plan' }
  | { readonly ok: false; readonly kind: 'uncaught' | 'unpositioned' | 'invalid plan'; readonly detail: string };

/** Parses, checks and plans one source against a model of the shape `shapeOf` reads. */
export function judge(text: string, file: string, shapeOf: ShapeOf, shape: ModelShape): Verdict {
  try {
    const out = frontEnd(text, file, { shapeOf });
    const lines = text.replace(/^\uFEFF/, '').split(/\r?\n|\r/);
    for (const d of out.diagnostics) {
      const why = unpositioned(d, file, lines);
      if (why) return { ok: false, kind: 'unpositioned', detail: `${d.span.line}:${d.span.column} ${d.message}: ${why}` };
    }
    if (!out.program) {
      return hasErrors(out.diagnostics) ? { ok: true, outcome: 'diagnostics' } : { ok: false, kind: 'unpositioned', detail: 'no program and no error' };
    }
    const problems = planProblems(planProgram(out.program, shape), shape);
    return problems.length ? { ok: false, kind: 'invalid plan', detail: problems.join('; ') } : { ok: true, outcome: 'plan' };
  } catch (e) {
    return { ok: false, kind: 'uncaught', detail: e instanceof Error ? (e.stack ?? e.message) : String(e) };
  }
}
