// Experiments: every experiment's sweeps are counted against the row limits before any is
// listed, then each body is checked; sweep variable names.
// A section of the checker (src/lang/checker.ts), a class extending the section it builds on.

import type * as A from '../ast.js';
import { span as inclusiveRange } from '../evaluate.js';
import { formatCount, maxRowsFlag } from '../limits.js';
import { namedPositionSets, type Experiment, type ExtractionSummary, type Intervention, type PositionSet, type Sweep } from '../program.js';
import type { IntRange, Scope, SweepVar } from './base.js';
import { MeasureChecks } from './measures.js';

function intSweepVar(kind: 'layers' | 'hidden', stmt: A.ForStmt, values: readonly number[]): SweepVar {
  let low = Infinity;
  let high = -Infinity;
  for (const v of values) { low = Math.min(low, v); high = Math.max(high, v); }
  return { kind, stmt, values, low, high };
}

/** A position sweep's value as written: a set, or `each a..b` (one singleton set per index). */
type PositionSweepPart = { readonly label: string; readonly set: PositionSet } | { readonly each: IntRange };

/** A checked sweep whose values are counted, not yet listed (they are, once the rows fit the limit). */
type CountedSweep =
  | { readonly kind: 'layers' | 'hidden'; readonly stmt: A.ForStmt; readonly ranges: readonly IntRange[]; readonly count: number }
  | { readonly kind: 'positions'; readonly stmt: A.ForStmt; readonly parts: readonly PositionSweepPart[]; readonly count: number };

/** An experiment whose sweeps are checked and counted; its body is checked once its rows fit. */
interface SweptExperiment {
  readonly stmt: A.ExperimentStmt;
  readonly vars: Map<string, SweepVar>;
  readonly used: Set<string>;
  readonly sweeps: readonly CountedSweep[];
  /** Rows per fact, the product of the sweeps' counts; undefined when a sweep has errors. */
  readonly rows: number | undefined;
}

function rangeSize(r: IntRange): number {
  return r.to - r.from + 1;
}

/** The first value that occurs twice, if any. */
function firstRepeated(values: readonly number[]): number | undefined {
  const seen = new Set<number>();
  for (const v of values) {
    if (seen.has(v)) return v;
    seen.add(v);
  }
  return undefined;
}

export abstract class ExperimentChecks extends MeasureChecks {
  /**
   * The experiments, within the row limit: every experiment's sweeps are checked and counted
   * first, and only experiments whose rows fit are listed and checked further. One over the
   * limit by itself is reported and left out; the one that takes the sum over it is reported,
   * and it and the experiments after it are left out.
   */
  experiments(): Experiment[] {
    const seen = new Map<string, A.ExperimentStmt>();
    for (const x of this.statements('experiment')) {
      const first = seen.get(x.name.name);
      if (first) {
        this.error(x.name.span, `duplicate experiment '${x.name.name}'`, `'${x.name.name}' is already defined at line ${first.span.line}`);
      } else {
        seen.set(x.name.name, x);
      }
    }
    const swept = this.statements('experiment').map((x) => this.countSweeps(x));
    const limit = this.rowLimits.perFact;
    const flag = maxRowsFlag(this.rowLimits, { perFact: swept.reduce((n, s) => n + (s.rows ?? 0), 0) });
    const out: Experiment[] = [];
    let rowsSoFar = 0;
    for (const [i, s] of swept.entries()) {
      const rows = s.rows ?? 0;
      if (rows > limit) {
        const sizes = s.sweeps.map((w) => `${formatCount(w.count)} (${w.stmt.variable.name})`).join(' × ');
        this.error(s.stmt.name.span, `experiment '${s.stmt.name.name}' gives ${formatCount(rows)} rows per fact, more than the limit of ${formatCount(limit)}`,
          `its sweeps give ${sizes}; narrow one, or if you mean it, raise the limit: ${flag}`);
        continue;
      }
      if (rowsSoFar + rows > limit) {
        const each = swept.slice(0, i + 1).filter((w) => (w.rows ?? 0) <= limit).map((w) => `${w.stmt.name.name} ${formatCount(w.rows ?? 0)}`).join(', ');
        this.error(s.stmt.name.span, `the experiments up to '${s.stmt.name.name}' give ${formatCount(rowsSoFar + rows)} rows per fact, more than the limit of ${formatCount(limit)}`,
          `rows per fact: ${each}; narrow a sweep, or if you mean it, raise the limit: ${flag} (the experiments from here on are checked once they fit)`);
        break;
      }
      rowsSoFar += rows;
      const e = this.experiment(s);
      if (e) out.push(e);
    }
    return out;
  }

  /** An experiment's sweeps, checked and counted; their values are listed only once the rows fit the limit. */
  countSweeps(x: A.ExperimentStmt): SweptExperiment {
    let ok = true;
    const vars = new Map<string, SweepVar>();
    const used = new Set<string>();
    const sweepScope: Scope = { vars, used, inSweepValues: true };
    const sweeps: CountedSweep[] = [];
    for (const f of x.items.filter((i): i is A.ForStmt => i.kind === 'for')) {
      const name = f.variable.name;
      const clash = this.nameClash(name, vars);
      if (clash) {
        this.error(f.variable.span, clash.message, clash.hint);
        ok = false;
        continue;
      }
      const domain = f.domain;
      if (domain.kind === 'positions') {
        vars.set(name, { kind: 'positions', stmt: f });
        const parts = this.positionSweepParts(domain.items, sweepScope);
        if (parts) sweeps.push({ kind: 'positions', stmt: f, parts, count: parts.reduce((n, p) => n + ('each' in p ? rangeSize(p.each) : 1), 0) });
        else ok = false;
        continue;
      }
      // a sweep with errors still binds its variable, so that its uses are checked
      vars.set(name, intSweepVar(domain.kind, f, [1]));
      const ranges = this.sweepRanges(domain.items, domain.kind, sweepScope);
      if (ranges) sweeps.push({ kind: domain.kind, stmt: f, ranges, count: ranges.reduce((n, r) => n + rangeSize(r), 0) });
      else ok = false;
    }
    return { stmt: x, vars, used, sweeps, rows: ok ? sweeps.reduce((n, w) => n * w.count, 1) : undefined };
  }

  /** A position sweep's values as written, `each a..b` not expanded. */
  positionSweepParts(items: readonly A.PositionSweepItem[], scope: Scope): PositionSweepPart[] | undefined {
    const parts: PositionSweepPart[] = [];
    let ok = true;
    for (const item of items) {
      if (item.kind === 'set') {
        const set = this.posExpr(item.expr, scope);
        if (set) parts.push({ label: item.text, set });
        else ok = false;
        continue;
      }
      const from = this.literal(item.from);
      const to = this.literal(item.to);
      if (from === undefined || to === undefined) { ok = false; continue; }
      if (from > to) {
        this.error(item.from.span, `empty position range ${from}..${to}`,
          'each a..b gives one row per index from a up to b; write the smaller index first, e.g. each -10..-1');
        ok = false;
        continue;
      }
      parts.push({ each: { from, to } });
    }
    return ok ? parts : undefined;
  }

  /** A counted sweep's values, listed; its variable now takes them. */
  listSweep(w: CountedSweep, vars: Map<string, SweepVar>): Sweep {
    const variable = w.stmt.variable.name;
    const span = this.span(w.stmt.span);
    if (w.kind === 'positions') {
      const values = w.parts.flatMap((p) => 'each' in p
        ? inclusiveRange(p.each.from, p.each.to).map((i) => ({ label: `[${i}]`, set: { kind: 'indices', indices: [i] } as PositionSet }))
        : [p]);
      return { kind: 'positions', variable, values, span };
    }
    const values = w.ranges.flatMap((r) => inclusiveRange(r.from, r.to));
    vars.set(variable, intSweepVar(w.kind, w.stmt, values));
    const repeated = firstRepeated(values);
    if (repeated !== undefined) {
      this.warn(w.stmt.span, `${w.kind === 'layers' ? 'layer' : 'hidden'} ${repeated} appears more than once in the sweep over '${variable}'`,
        'each repetition adds identical rows; list each value once');
    }
    return { kind: w.kind, variable, values, span };
  }

  experiment(swept: SweptExperiment): Experiment | undefined {
    const { stmt: x, vars, used } = swept;
    let ok = swept.rows !== undefined;
    const sweeps = swept.sweeps.map((w) => this.listSweep(w, vars));
    const scope: Scope = { vars, used, inSweepValues: false };
    const interventions: Intervention[] = [];
    const patches = x.items.filter((i): i is A.PatchStmt => i.kind === 'patch');
    for (const extra of patches.slice(1)) {
      this.error(extra.span, 'an experiment has one patch statement at most: each row patches one hidden state',
        `the first is at line ${patches[0]!.span.line}; put this patch in an experiment of its own`);
      ok = false;
    }
    for (const item of x.items) {
      if (item.kind !== 'block' && item.kind !== 'cancel' && item.kind !== 'patch') continue;
      const i = this.intervention(item, scope);
      if (i) interventions.push(i);
      else ok = false;
    }
    const measured = this.measures(x, scope);
    if (!measured) ok = false;
    const integrated = measured?.probes.find((p) => p.kind === 'integrated_gradients');
    if (integrated && patches.length) {
      this.error(patches[0]!.span, 'an experiment with integrated_gradients cannot patch: its rows replace the hidden state they integrate along',
        `'${integrated.label}' patches hidden states itself; put this patch in an experiment of its own`);
      ok = false;
    }
    const summaries: ExtractionSummary[] = [];
    for (const s of x.items.filter((i): i is A.SummarizeStmt => i.kind === 'summarize')) {
      const summary = this.summary(s, x, sweeps, measured?.probes, scope);
      if (summary) summaries.push(summary);
      else ok = false;
    }
    for (const f of x.items.filter((i): i is A.ForStmt => i.kind === 'for')) {
      const name = f.variable.name;
      if (vars.get(name)?.stmt === f && !used.has(name)) {
        this.warn(f.variable.span, `sweep variable '${name}' is never used`,
          'every value of the sweep gives the same configuration; use the variable in an intervention or a probe, or remove the for');
      }
    }
    if (!ok) return undefined;
    return {
      name: x.name.name,
      sweeps,
      interventions,
      measures: measured!.measures,
      probes: measured!.probes,
      summaries,
      span: this.span(x.span),
      source: this.lines.slice(x.span.line - 1, x.span.endLine).join('\n'),
    };
  }

  nameClash(name: string, vars: ReadonlyMap<string, SweepVar>): { message: string; hint: string } | undefined {
    const prior = vars.get(name);
    if (prior) return { message: `duplicate sweep variable '${name}'`, hint: `'${name}' is already bound at line ${prior.stmt.span.line}` };
    const param = this.params.get(name);
    if (param) {
      return { message: `sweep variable '${name}' has the name of a parameter`, hint: `parameter '${name}' is declared at line ${param.decl.span.line}; rename the variable` };
    }
    if ((namedPositionSets as readonly string[]).includes(name)) {
      return { message: `sweep variable '${name}' has the name of a built-in position set`, hint: 'rename the variable' };
    }
    const def = this.positionDefs.get(name);
    if (def) {
      return { message: `sweep variable '${name}' has the name of a position set`, hint: `'${name}' is defined at line ${def.span.line}; rename the variable` };
    }
    return undefined;
  }
}
