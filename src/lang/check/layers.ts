// Integer expressions of sweep variables and the indices they must stay within (over every
// binding, without listing them); layer sets, windows, layer sweeps and heads.
// A section of the checker (src/lang/checker.ts), a class extending the section it builds on.

import type * as A from '../ast.js';
import { didYouMean, sourceText } from '../diagnostics.js';
import { extremes, layersOf, type Binding, type Extreme } from '../evaluate.js';
import { formatCount, maxNesting } from '../limits.js';
import type { IntExpr, LayerSet } from '../program.js';
import { emptyScope, valueIn, type IntRange, type Scope } from './base.js';
import { plural } from '../../plural.js';
import { PositionChecks } from './positions.js';

/** What an integer must index: a block (0..L-1), a hidden state (0..L), or a block input (patch, 0..L-1). */
type IndexKind = 'layer' | 'hidden' | 'patch';

function intVars(e: IntExpr | undefined, out: Set<string>): Set<string> {
  if (!e) return out;
  if (e.kind === 'var') out.add(e.name);
  if (e.kind === 'add' || e.kind === 'sub') { intVars(e.left, out); intVars(e.right, out); }
  return out;
}

function layerSetVars(l: LayerSet, out = new Set<string>()): Set<string> {
  switch (l.kind) {
    case 'all': return out;
    case 'single': return intVars(l.layer, out);
    case 'range': return intVars(l.to, intVars(l.from, out));
    case 'window': return intVars(l.size, intVars(l.center, out));
    case 'within': return intVars(l.to, intVars(l.from, layerSetVars(l.set, out)));
  }
}

/** "l = 3, src = 5" */
function describeBinding(b: Binding): string {
  return [...b].map(([k, v]) => `${k} = ${v}`).join(', ');
}

export abstract class LayerChecks extends PositionChecks {
  /** The source text under a span, runs of whitespace collapsed. */
  text(s: A.Span): string {
    return sourceText(this.options.source, s);
  }

  /** An integer literal, an integer parameter, or a layer or hidden sweep variable. */
  intValue(v: A.IntValue, scope: Scope, what: string): IntExpr | undefined {
    if (v.kind === 'int') {
      const n = this.literal(v);
      return n === undefined ? undefined : { kind: 'int', value: n };
    }
    const sv = scope.vars.get(v.name);
    if (sv) {
      scope.used.add(v.name);
      if (scope.inSweepValues) {
        this.error(v.span, `sweep variable '${v.name}' cannot be used in a sweep's values`,
          'the values of a sweep must be integers or integer parameters');
        return undefined;
      }
      if (scope.inSummary) {
        this.error(v.span, `sweep variable '${v.name}' cannot be used in a summary's layers`,
          'the summary counts layers of the sweep itself; write constant layers');
        return undefined;
      }
      if (sv.kind === 'positions') {
        this.error(v.span, `sweep variable '${v.name}' ranges over position sets, but ${what} is expected here`,
          `'${v.name}' is bound by 'for ${v.name} in positions' at line ${sv.stmt.span.line}`);
        return undefined;
      }
      return { kind: 'var', name: v.name };
    }
    if (!this.params.has(v.name)) {
      const candidates = [
        ...[...this.params.values()].filter((p) => typeof p.value === 'number').map((p) => p.name),
        ...[...scope.vars].filter(([, s]) => s.kind !== 'positions').map(([n]) => n),
      ];
      this.error(v.span, `unknown name '${v.name}'`,
        didYouMean(v.name, candidates, `expected ${what}: an integer, an integer parameter or a layer or hidden sweep variable`));
      return undefined;
    }
    const value = this.paramUse(v, 'integer', what);
    return value === undefined ? undefined : { kind: 'int', value: value as number };
  }

  /** `a + b - c`, at most maxNesting operators (the stages after the checker recurse once per operator). */
  intExpr(e: A.IntExpr, scope: Scope, what: string): IntExpr | undefined {
    let operators = 0;
    for (let x = e; x.kind === 'binary'; x = x.left) operators++;
    if (operators > maxNesting) {
      this.error(e.span, `integer expression nested too deeply: ${formatCount(operators)} operators, more than ${maxNesting}`,
        'each + or - is a level; write the value with fewer terms');
      return undefined;
    }
    return this.foldIntExpr(e, scope, what);
  }

  /** Constant parts are folded, so `first + 1` with a parameter is an int. */
  foldIntExpr(e: A.IntExpr, scope: Scope, what: string): IntExpr | undefined {
    if (e.kind !== 'binary') return this.intValue(e, scope, what);
    const left = this.foldIntExpr(e.left, scope, what);
    const right = this.intValue(e.right, scope, what);
    if (!left || !right) return undefined;
    if (left.kind === 'int' && right.kind === 'int') {
      return { kind: 'int', value: e.op === '+' ? left.value + right.value : left.value - right.value };
    }
    return { kind: e.op === '+' ? 'add' : 'sub', left, right };
  }

  /** Every binding of the named layer and hidden sweep variables, outermost sweep first. */
  *bindings(names: ReadonlySet<string>, scope: Scope): Generator<Binding> {
    const vars: [string, readonly number[]][] = [];
    for (const [name, v] of scope.vars) if (names.has(name) && v.kind !== 'positions') vars.push([name, v.values]);
    const current = new Map<string, number>();
    function* rec(i: number): Generator<Binding> {
      if (i === vars.length) { yield new Map(current); return; }
      const [name, values] = vars[i]!;
      for (const value of values) {
        current.set(name, value);
        yield* rec(i + 1);
      }
    }
    yield* rec(0);
  }

  /** The smallest and largest value `e` takes over the sweeps of `scope`, each with a binding giving it. */
  extremes(e: IntExpr, scope: Scope): { low: Extreme; high: Extreme } {
    const bounds = new Map<string, { low: number; high: number }>();
    for (const [name, v] of scope.vars) if (v.kind !== 'positions') bounds.set(name, v);
    return extremes(e, bounds);
  }

  /**
   * Checks that `e` is a valid index for every binding of the sweep variables it uses; reports
   * a binding that is not (the lowest value if that is too low, else the highest), once, at
   * the expression. False when it reported.
   */
  checkIndex(e: IntExpr | undefined, written: A.IntExpr, scope: Scope, kind: IndexKind): boolean {
    if (!e || !this.shape) return true;
    const L = this.shape.layers;
    const hi = kind === 'hidden' ? L : L - 1;
    const { low, high } = this.extremes(e, scope);
    const bad = low.value < 0 ? low : high.value > hi ? high : undefined;
    if (!bad) return true;
    const v = bad.value;
    const when = bad.binding.size > 0 ? ` when ${describeBinding(bad.binding)}` : '';
    const param = written.kind === 'ref' ? this.params.get(written.name) : undefined;
    const fromParam = param ? `parameter '${param.name}' (line ${param.decl.span.line}) is ${v}; ` : '';
    if (kind === 'layer') {
      this.error(written.span, `layer ${v} is out of range${when}: the model has ${plural(L, 'layer')} (0..${L - 1})`,
        `${fromParam}layers are numbered from 0 (the first block)`);
    } else if (kind === 'hidden') {
      this.error(written.span, `hidden ${v} is out of range${when}: hidden states are 0..${L} (0 = the embedding output)`,
        `${fromParam}hidden l is the input of block l; hidden ${L} is the output of the last block`);
    } else {
      this.error(written.span, `hidden ${v} cannot be patched${when}: only block inputs, hidden 0..${L - 1}, can be patched`,
        `${fromParam}patch hidden l replaces the input of block l; hidden ${L} is the output of the last block and feeds no block`);
    }
    return false;
  }

  /**
   * A layer set. Under `within` (clipped) the inner layers may leave 0..L-1: the planner
   * clips them to the `within` range, which itself must be valid layers.
   */
  layerSet(l: A.LayerExpr, scope: Scope, clipped = false): LayerSet | undefined {
    switch (l.kind) {
      case 'all':
        return { kind: 'all' };
      case 'single': {
        const layer = this.intExpr(l.layer, scope, 'a layer');
        const ok = clipped || this.checkIndex(layer, l.layer, scope, 'layer');
        return ok && layer ? { kind: 'single', layer } : undefined;
      }
      case 'range': {
        const from = this.intExpr(l.from, scope, 'a layer');
        const to = this.intExpr(l.to, scope, 'a layer');
        const okFrom = clipped || this.checkIndex(from, l.from, scope, 'layer');
        const okTo = clipped || this.checkIndex(to, l.to, scope, 'layer');
        if (from?.kind === 'int' && to?.kind === 'int' && from.value > to.value) {
          this.error(l.span, `empty layer range ${from.value}..${to.value}`, 'a range a..b includes a and b; write the smaller layer first');
          return undefined;
        }
        return okFrom && okTo && from && to ? { kind: 'range', from, to } : undefined;
      }
      case 'window': {
        const center = this.intExpr(l.center, scope, 'a layer');
        const size = this.intExpr(l.size, scope, 'a window size');
        const okCenter = clipped || this.checkIndex(center, l.center, scope, 'layer');
        if (size && !this.checkWindowSize(size, l.size, scope)) return undefined;
        return okCenter && center && size ? { kind: 'window', center, size } : undefined;
      }
      case 'within': {
        const set = this.layerSet(l.set, scope, true);
        const from = this.intExpr(l.from, scope, 'a layer');
        const to = this.intExpr(l.to, scope, 'a layer');
        const okFrom = this.checkIndex(from, l.from, scope, 'layer');
        const okTo = this.checkIndex(to, l.to, scope, 'layer');
        if (from?.kind === 'int' && to?.kind === 'int' && from.value > to.value) {
          this.error(l.from.span, `empty layer range ${from.value}..${to.value}`,
            "'within a..b' keeps the layers from a to b; write the smaller layer first");
          return undefined;
        }
        return okFrom && okTo && set && from && to ? { kind: 'within', set, from, to } : undefined;
      }
    }
  }

  checkWindowSize(size: IntExpr, written: A.IntExpr, scope: Scope): boolean {
    const { low } = this.extremes(size, scope);
    if (low.value >= 1) return true;
    if (size.kind === 'var') {
      this.error(written.span, `window size must be at least 1, but sweep variable '${size.name}' takes the value ${low.value}`,
        `start the sweep at line ${scope.vars.get(size.name)!.stmt.span.line} at 1 or more`);
    } else {
      const when = low.binding.size > 0 ? ` when ${describeBinding(low.binding)}` : '';
      this.error(written.span, `window size must be at least 1, got ${low.value}${when}`, 'window(center, size) covers size layers centred on center');
    }
    return false;
  }

  /** A layer set of a statement: checked, then a warning if it is empty for some binding. */
  layers(l: A.LayerExpr, scope: Scope): LayerSet | undefined {
    const set = this.layerSet(l, scope);
    if (!set || !this.shape || (set.kind !== 'range' && set.kind !== 'within')) return set;
    const vars = layerSetVars(set);
    if (set.kind === 'range' && vars.size === 0) return set; // a constant empty range is an error already
    for (const b of this.bindings(vars, scope)) {
      if (layersOf(set, valueIn(b), this.shape.layers, this.windowRule).length > 0) continue;
      const when = b.size > 0 ? ` when ${describeBinding(b)}` : '';
      this.warn(l.span, `${set.kind === 'within' ? 'layer set' : 'layer range'} ${this.text(l.span)} is empty${when}`,
        'in such rows the statement acts on no layer; narrow the sweep if that is not intended');
      break;
    }
    return set;
  }

  /** The values of a layer sweep (0..L-1) or a hidden sweep (0..L), as ranges: counted before they are listed. */
  sweepRanges(items: readonly A.LayerExpr[], kind: 'layers' | 'hidden', scope: Scope): IntRange[] | undefined {
    const noun = kind === 'layers' ? 'layer' : 'hidden';
    const index: IndexKind = kind === 'layers' ? 'layer' : 'hidden';
    const what = kind === 'layers' ? 'a layer' : 'a hidden-state index';
    const out: IntRange[] = [];
    let ok = true;
    for (const item of items) {
      if (item.kind === 'window') {
        this.error(item.span, `a ${noun} sweep cannot use window(...)`,
          `sweep over ${kind === 'layers' ? 'layers' : 'hidden states'} with all, <n> or <a>..<b>; use window(...) in block or cancel`);
        ok = false;
        continue;
      }
      if (item.kind === 'within') {
        this.error(item.withinSpan, `a ${noun} sweep cannot use within`,
          'sweep values are constants; list the values you want, and use within in block or cancel');
        ok = false;
        continue;
      }
      if (item.kind === 'all') {
        if (!this.shape) { ok = false; continue; }
        out.push({ from: 0, to: kind === 'layers' ? this.shape.layers - 1 : this.shape.layers });
        continue;
      }
      if (item.kind === 'single') {
        const e = this.intExpr(item.layer, scope, what);
        if (e?.kind === 'int' && this.checkIndex(e, item.layer, scope, index)) out.push({ from: e.value, to: e.value });
        else ok = false;
        continue;
      }
      const from = this.intExpr(item.from, scope, what);
      const to = this.intExpr(item.to, scope, what);
      const inRange = [this.checkIndex(from, item.from, scope, index), this.checkIndex(to, item.to, scope, index)].every(Boolean);
      if (from?.kind !== 'int' || to?.kind !== 'int' || !inRange) { ok = false; continue; }
      if (from.value > to.value) {
        this.error(item.span, `empty ${noun} range ${from.value}..${to.value}`, 'a range a..b includes a and b; write the smaller value first');
        ok = false;
        continue;
      }
      out.push({ from: from.value, to: to.value });
    }
    return ok ? out : undefined;
  }

  heads(h: A.BlockStmt['heads'], scope: Scope): readonly number[] | 'all' | undefined {
    if (!h || h.kind === 'all') return 'all';
    const out: number[] = [];
    let ok = true;
    for (const v of h.heads) {
      if (v.kind === 'ref' && scope.vars.has(v.name)) {
        scope.used.add(v.name);
        this.error(v.span, `sweep variable '${v.name}' cannot select heads`, 'heads are integers or integer parameters');
        ok = false;
        continue;
      }
      const e = this.intValue(v, emptyScope, 'a head');
      if (!e || e.kind !== 'int') { ok = false; continue; }
      if (this.shape && e.value > this.shape.heads - 1) {
        const H = this.shape.heads;
        this.error(v.span, `head ${e.value} is out of range: the model has ${plural(H, 'head')} per layer (0..${H - 1})`,
          'heads are numbered from 0');
        ok = false;
        continue;
      }
      out.push(e.value);
    }
    return ok ? out : undefined;
  }
}
