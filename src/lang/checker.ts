// The checker: AST + `--set` overrides + the model's shape → the checked Program.
// It resolves parameters and names, types every use, validates ranges against the model,
// and collects every error it can find in one pass (it never throws for user errors).

import { dirname, resolve } from 'node:path';
import type * as A from './ast.js';
import { allChoices, defaultChoices, describeValues, findChoice } from './choices.js';
import { closest, commandLineFile, didYouMean, error, hasErrors, sortDiagnostics, warning } from './diagnostics.js';
import {
  measureNames, namedPositionSets,
  type BlockIntervention, type BosPolicy, type DatasetSpec, type Diagnostic, type Experiment, type FactFilter,
  type IntExpr, type LayerSet, type MeasureName, type ModelShape, type NamedPositionSet, type PositionSet,
  type Program, type SourceSpan, type Sweep,
} from './program.js';

export type ShapeOf = (onnxPath: string) => ModelShape | { error: string };

export interface CheckOptions {
  /** The .dissect source text (experiments quote their own lines). */
  readonly source: string;
  /** `--set name=value` overrides. */
  readonly overrides: Readonly<Record<string, string>>;
  /** Reads the model's shape; called once, with the resolved model path, if it resolved. */
  readonly shapeOf: ShapeOf;
}

export interface CheckResult {
  readonly program?: Program;
  readonly diagnostics: Diagnostic[];
}

export const datasetFormats = ['counterfact', 'known', 'jsonl', 'csv'] as const;
export const factFilters: readonly FactFilter[] = ['known', 'none'];
export const bosPolicies: readonly BosPolicy[] = ['none', 'prepend'];
export const datasetFieldNames = ['prompt', 'subject', 'target'] as const;

interface ParamInfo {
  readonly name: string;
  value: number | string;
  readonly decl: A.ParamStmt;
}

type SweepVar =
  | { readonly kind: 'layers'; readonly stmt: A.ForStmt; values: number[] }
  | { readonly kind: 'positions'; readonly stmt: A.ForStmt };

/** The sweep variables visible where a name is used. */
interface Scope {
  readonly vars: ReadonlyMap<string, SweepVar>;
  /** Names used, to warn about unused sweep variables. */
  readonly used: Set<string>;
  /** Inside a sweep's own values sweep variables are not allowed. */
  readonly inSweepValues: boolean;
}

const emptyScope: Scope = { vars: new Map(), used: new Set(), inSweepValues: false };

const namedSetList = namedPositionSets.join(', ');
const positionHint = `position sets: ${namedSetList}, [indices], a + b, a - b, or a name defined with 'positions'`;

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

class Checker {
  readonly diagnostics: Diagnostic[] = [];
  readonly params = new Map<string, ParamInfo>();
  readonly positionDefs = new Map<string, A.PositionsStmt>();
  readonly resolvedDefs = new Map<string, PositionSet | null>();
  readonly resolving: string[] = [];
  shape: ModelShape | undefined;
  readonly dir: string;
  readonly absFile: string;

  constructor(readonly doc: A.Document, readonly options: CheckOptions) {
    this.absFile = resolve(doc.file);
    this.dir = dirname(this.absFile);
  }

  span(s: A.Span): SourceSpan {
    return { file: this.doc.file, line: s.line, column: s.column };
  }
  error(s: A.Span, message: string, hint: string): void {
    this.diagnostics.push(error(this.span(s), message, hint));
  }
  warn(s: A.Span, message: string, hint: string): void {
    this.diagnostics.push(warning(this.span(s), message, hint));
  }
  commandLineError(message: string, hint: string): void {
    this.diagnostics.push(error({ file: commandLineFile, line: 1, column: 1 }, message, hint));
  }

  statements<K extends A.Statement['kind']>(kind: K): Extract<A.Statement, { kind: K }>[] {
    return this.doc.statements.filter((s): s is Extract<A.Statement, { kind: K }> => s.kind === kind);
  }

  /** Reports every statement after the first of a kind that may appear once; returns the first. */
  single<K extends A.Statement['kind']>(kind: K): Extract<A.Statement, { kind: K }> | undefined {
    const all = this.statements(kind);
    for (const dup of all.slice(1)) {
      this.error(dup.span, `duplicate '${kind}' statement`, `the first one is at line ${all[0]!.span.line}; keep one`);
    }
    return all[0];
  }

  // ---- integers --------------------------------------------------------------------------

  /** A literal's value, or undefined (reported) if it is not a safe integer. */
  literal(lit: A.IntLit): number | undefined {
    if (!Number.isSafeInteger(lit.value)) {
      this.error(lit.span, `integer ${lit.text} is too large`, `integers must be at most ${Number.MAX_SAFE_INTEGER}`);
      return undefined;
    }
    return lit.value;
  }

  // ---- parameters ------------------------------------------------------------------------

  resolveParams(): void {
    for (const p of this.statements('param')) {
      const name = p.name.name;
      const first = this.params.get(name);
      if (first) {
        this.error(p.name.span, `duplicate parameter '${name}'`, `'${name}' is already declared at line ${first.decl.span.line}`);
        continue;
      }
      const value = p.value.kind === 'string' ? p.value.value : this.literal(p.value);
      if (value === undefined) continue;
      this.params.set(name, { name, value, decl: p });
    }
    for (const [name, text] of Object.entries(this.options.overrides)) {
      const p = this.params.get(name);
      if (!p) {
        const declared = [...this.params.keys()];
        this.commandLineError(
          `unknown parameter '${name}' in --set ${name}=${text}`,
          didYouMean(name, declared, declared.length ? `this file declares: ${declared.join(', ')}` : 'this file declares no parameters'),
        );
        continue;
      }
      if (typeof p.value === 'number') {
        const n = /^[0-9]+$/.test(text.trim()) ? Number(text.trim()) : NaN;
        if (!Number.isSafeInteger(n)) {
          this.commandLineError(
            `--set ${name}=${text}: '${name}' is an integer parameter (line ${p.decl.span.line}), but '${text}' is not a non-negative integer`,
            `give a whole number, e.g. --set ${name}=${p.value}`,
          );
          continue;
        }
        p.value = n;
      } else {
        p.value = text;
      }
    }
  }

  paramUse(ref: A.Ref, expected: 'string' | 'integer', what: string): number | string | undefined {
    const p = this.params.get(ref.name);
    if (!p) {
      const candidates = [...this.params.values()]
        .filter((q) => (typeof q.value === 'string') === (expected === 'string'))
        .map((q) => q.name);
      const fallback = expected === 'string' ? 'write a "string" or declare: param name = "..."' : 'write an integer or declare: param name = 0';
      this.error(ref.span, `unknown parameter '${ref.name}'`, didYouMean(ref.name, candidates, fallback));
      return undefined;
    }
    const actual = typeof p.value === 'string' ? 'string' : 'integer';
    if (actual !== expected) {
      this.error(
        ref.span,
        `parameter '${ref.name}' is a${actual === 'integer' ? 'n' : ''} ${actual}, but ${what} is expected here`,
        `'${ref.name}' is declared at line ${p.decl.span.line} with value ${JSON.stringify(p.value)}`,
      );
      return undefined;
    }
    return p.value;
  }

  /** A string literal or a string parameter. */
  stringValue(v: A.Value, what: string): string | undefined {
    if (v.kind === 'string') return v.value;
    return this.paramUse(v, 'string', what) as string | undefined;
  }

  path(v: A.Value, what: string): string | undefined {
    const s = this.stringValue(v, what);
    return s === undefined ? undefined : resolve(this.dir, s);
  }

  // ---- model, data, options ----------------------------------------------------------------

  model(): Program['model'] | undefined {
    const m = this.single('model');
    if (!m) {
      this.error(
        { line: 1, column: 1, offset: 0, endOffset: 0, endLine: 1 },
        "missing 'model' statement",
        'add: model "path/to/model.onnx" tokenizer "path/to/tokenizer.json"',
      );
      return undefined;
    }
    const onnx = this.path(m.onnx, 'a path to an .onnx model');
    let tokenizer: string | undefined;
    if (m.tokenizer) {
      tokenizer = this.path(m.tokenizer, 'a path to a tokenizer.json');
    } else {
      this.error(m.span, 'the model statement has no tokenizer', 'add: tokenizer "path/to/tokenizer.json" after the model path');
    }
    if (onnx !== undefined) {
      const shape = this.options.shapeOf(onnx);
      if ('error' in shape) {
        this.error(m.onnx.span, `cannot read the model ${onnx}: ${shape.error.replace(/\s*\n\s*/g, ' ')}`,
          `model paths are relative to the .dissect file's folder (${this.dir})`);
      } else {
        this.shape = shape;
      }
    }
    if (onnx === undefined || tokenizer === undefined) return undefined;
    return { onnx, tokenizer, span: this.span(m.span) };
  }

  dataset(): DatasetSpec | undefined {
    const d = this.single('dataset');
    if (!d) {
      this.error(
        { line: 1, column: 1, offset: 0, endOffset: 0, endLine: 1 },
        "missing 'dataset' statement",
        `add: dataset <format> "path", where <format> is one of ${datasetFormats.join(', ')}`,
      );
      return undefined;
    }
    const format = d.format.name;
    const path = this.path(d.path, 'a path to the dataset');
    const span = this.span(d.span);
    if (format === 'counterfact' || format === 'known') {
      if (d.fields) {
        this.error(d.fieldsSpan!, `a ${format} dataset takes no fields clause`,
          `${format} files have fixed fields; 'fields' is for jsonl and csv datasets`);
        return undefined;
      }
      return path === undefined ? undefined : { format, path, span };
    }
    if (format === 'jsonl' || format === 'csv') {
      if (!d.fields) {
        this.error(d.span, `a ${format} dataset needs a fields clause`,
          'add: fields prompt = "<column>", subject = "<column>", target = "<column>"');
        return undefined;
      }
      const fields = this.fields(d.fields, d.fieldsSpan!);
      return path === undefined || fields === undefined ? undefined : { format, path, fields, span };
    }
    const best = closest(format, datasetFormats);
    this.error(d.format.span, `unknown dataset format '${format}'`,
      `${best ? `did you mean '${best}'? ` : ''}formats: ${datasetFormats.join(', ')}`);
    return undefined;
  }

  fields(assigns: readonly A.FieldAssign[], fieldsSpan: A.Span): { prompt: string; subject: string; target: string } | undefined {
    const out: Record<string, string> = {};
    const seen = new Map<string, A.FieldAssign>();
    let ok = true;
    for (const f of assigns) {
      const name = f.name.name;
      if (!(datasetFieldNames as readonly string[]).includes(name)) {
        this.error(f.name.span, `unknown field '${name}'`,
          didYouMean(name, datasetFieldNames, `the fields are ${datasetFieldNames.join(', ')}`));
        ok = false;
        continue;
      }
      if (seen.has(name)) {
        this.error(f.name.span, `field '${name}' is given twice`, `keep one of the two '${name} = ...'`);
        ok = false;
        continue;
      }
      seen.set(name, f);
      const value = this.stringValue(f.value, 'a column name (string)');
      if (value === undefined) ok = false;
      else out[name] = value;
    }
    const missing = datasetFieldNames.filter((n) => !seen.has(n));
    if (missing.length > 0) {
      this.error(fieldsSpan, `missing field${missing.length > 1 ? 's' : ''} ${missing.map((m) => `'${m}'`).join(', ')}`,
        'a fields clause names all of prompt, subject and target');
      ok = false;
    }
    return ok ? { prompt: out.prompt!, subject: out.subject!, target: out.target! } : undefined;
  }

  enumValue<T extends string>(stmt: A.FilterStmt | A.BosStmt | undefined, allowed: readonly T[], fallback: T): T {
    if (!stmt) return fallback;
    const v = stmt.value.name;
    if ((allowed as readonly string[]).includes(v)) return v as T;
    const best = closest(v, allowed);
    this.error(stmt.value.span, `unknown ${stmt.kind} value '${v}'`,
      `${best ? `did you mean '${best}'? ` : ''}allowed: ${allowed.join(', ')}`);
    return fallback;
  }

  choices(): Record<string, string> {
    const chosen = defaultChoices();
    const seen = new Map<string, A.ChooseStmt>();
    for (const c of this.statements('choose')) {
      const name = c.name.name;
      const choice = findChoice(name);
      if (!choice) {
        const names = allChoices().map((x) => x.name);
        const best = closest(name, names);
        this.error(c.name.span, `unknown choice '${name}'`, `${best ? `did you mean '${best}'? ` : ''}choices: ${names.join(', ')}`);
        continue;
      }
      const first = seen.get(name);
      if (first) {
        this.error(c.span, `choice '${name}' is chosen twice`, `the first 'choose ${name}' is at line ${first.span.line}`);
        continue;
      }
      seen.set(name, c);
      const value = c.value.name;
      if (!choice.values.some((v) => v.name === value)) {
        const best = closest(value, choice.values.map((v) => v.name));
        this.error(c.value.span, `unknown value '${value}' for choice '${name}'`,
          `${best ? `did you mean '${best}'? ` : ''}allowed: ${describeValues(choice)}`);
        continue;
      }
      chosen[name] = value;
    }
    return chosen;
  }

  // ---- position sets -----------------------------------------------------------------------

  collectPositionDefs(): void {
    for (const p of this.statements('positions')) {
      const name = p.name.name;
      if ((namedPositionSets as readonly string[]).includes(name)) {
        this.error(p.name.span, `'${name}' is a built-in position set and cannot be redefined`, 'choose another name');
        continue;
      }
      const first = this.positionDefs.get(name);
      if (first) {
        this.error(p.name.span, `duplicate position set '${name}'`, `'${name}' is already defined at line ${first.span.line}`);
        continue;
      }
      const param = this.params.get(name);
      if (param) {
        this.error(p.name.span, `'${name}' is already a parameter`, `declared at line ${param.decl.span.line}; choose another name`);
        continue;
      }
      this.positionDefs.set(name, p);
    }
  }

  /** Resolves a `positions` definition (once), inlining it; null when it has errors. */
  positionDef(name: string, use: A.Ref): PositionSet | null {
    if (this.resolvedDefs.has(name)) return this.resolvedDefs.get(name)!;
    if (this.resolving.includes(name)) {
      const cycle = [...this.resolving.slice(this.resolving.indexOf(name)), name].join(' -> ');
      this.error(use.span, `position set '${name}' is defined in terms of itself`, `the cycle is ${cycle}`);
      return null;
    }
    this.resolving.push(name);
    const result = this.posExpr(this.positionDefs.get(name)!.expr, emptyScope) ?? null;
    this.resolving.pop();
    this.resolvedDefs.set(name, result);
    return result;
  }

  posExpr(e: A.PosExpr, scope: Scope): PositionSet | undefined {
    switch (e.kind) {
      case 'binary': {
        const left = this.posExpr(e.left, scope);
        const right = this.posExpr(e.right, scope);
        if (!left || !right) return undefined;
        return { kind: e.op === '+' ? 'union' : 'difference', left, right };
      }
      case 'indices': {
        const indices: number[] = [];
        for (const v of e.values) {
          const n = this.literal(v);
          if (n === undefined) return undefined;
          indices.push(n);
        }
        return { kind: 'indices', indices };
      }
      case 'ref':
        return this.posRef(e, scope);
    }
  }

  posRef(ref: A.Ref, scope: Scope): PositionSet | undefined {
    const name = ref.name;
    const v = scope.vars.get(name);
    if (v) {
      scope.used.add(name);
      if (scope.inSweepValues) {
        this.error(ref.span, `sweep variable '${name}' cannot be used in a sweep's values`,
          'the values of a sweep must not depend on another sweep');
        return undefined;
      }
      if (v.kind === 'layers') {
        this.error(ref.span, `sweep variable '${name}' ranges over layers, but a position set is expected here`,
          `'${name}' is bound by 'for ${name} in layers' at line ${v.stmt.span.line}; ${positionHint}`);
        return undefined;
      }
      return { kind: 'var', name };
    }
    if (this.positionDefs.has(name)) {
      const set = this.positionDef(name, ref);
      return set ?? undefined;
    }
    if ((namedPositionSets as readonly string[]).includes(name)) return { kind: 'named', name: name as NamedPositionSet };
    const param = this.params.get(name);
    if (param) {
      this.error(ref.span, `'${name}' is a parameter, not a position set`, positionHint);
      return undefined;
    }
    const candidates = [
      ...namedPositionSets,
      ...this.positionDefs.keys(),
      ...[...scope.vars].filter(([, sv]) => sv.kind === 'positions').map(([n]) => n),
    ];
    this.error(ref.span, `unknown position set '${name}'`, didYouMean(name, candidates, positionHint));
    return undefined;
  }

  // ---- layers and heads --------------------------------------------------------------------

  /** An integer where a layer (or window size) is expected: literal, integer parameter or layer variable. */
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
        ...[...scope.vars].filter(([, s]) => s.kind === 'layers').map(([n]) => n),
      ];
      this.error(v.span, `unknown name '${v.name}'`,
        didYouMean(v.name, candidates, `expected ${what}: an integer, an integer parameter or a layer sweep variable`));
      return undefined;
    }
    const value = this.paramUse(v, 'integer', what);
    return value === undefined ? undefined : { kind: 'int', value: value as number };
  }

  checkLayer(e: IntExpr | undefined, written: A.IntValue): void {
    if (!e || e.kind !== 'int' || !this.shape) return;
    const L = this.shape.layers;
    if (e.value > L - 1) {
      const param = written.kind === 'ref' ? this.params.get(written.name) : undefined;
      this.error(written.span, `layer ${e.value} is out of range: the model has ${plural(L, 'layer')} (0..${L - 1})`,
        param
          ? `parameter '${param.name}' (line ${param.decl.span.line}) is ${e.value}; layers are numbered from 0 (the first block)`
          : 'layers are numbered from 0 (the first block)');
    }
  }

  layerSet(l: A.LayerExpr, scope: Scope): LayerSet | undefined {
    switch (l.kind) {
      case 'all':
        return { kind: 'all' };
      case 'single': {
        const layer = this.intValue(l.layer, scope, 'a layer');
        this.checkLayer(layer, l.layer);
        return layer && { kind: 'single', layer };
      }
      case 'range': {
        const from = this.intValue(l.from, scope, 'a layer');
        const to = this.intValue(l.to, scope, 'a layer');
        this.checkLayer(from, l.from);
        this.checkLayer(to, l.to);
        if (from?.kind === 'int' && to?.kind === 'int' && from.value > to.value) {
          this.error(l.span, `empty layer range ${from.value}..${to.value}`, 'a range a..b includes a and b; write the smaller layer first');
          return undefined;
        }
        return from && to && { kind: 'range', from, to };
      }
      case 'window': {
        const center = this.intValue(l.center, scope, 'a layer');
        const size = this.intValue(l.size, scope, 'a window size');
        this.checkLayer(center, l.center);
        if (size?.kind === 'int' && size.value < 1) {
          this.error(l.size.span, `window size must be at least 1, got ${size.value}`,
            'window(center, size) covers size layers centred on center');
          return undefined;
        }
        if (size?.kind === 'var') {
          const sv = scope.vars.get(size.name);
          const min = sv?.kind === 'layers' ? Math.min(...sv.values) : 1;
          if (min < 1) {
            this.error(l.size.span, `window size must be at least 1, but sweep variable '${size.name}' takes the value ${min}`,
              `start the sweep at line ${sv!.stmt.span.line} at 1 or more`);
            return undefined;
          }
        }
        return center && size && { kind: 'window', center, size };
      }
    }
  }

  /** The concrete layers of a layer sweep. */
  sweepLayers(items: readonly A.LayerExpr[], scope: Scope): number[] | undefined {
    const out: number[] = [];
    let ok = true;
    for (const item of items) {
      if (item.kind === 'window') {
        this.error(item.span, 'a layer sweep cannot use window(...)', 'sweep over layers with all, <n> or <a>..<b>; use window(...) in block');
        ok = false;
        continue;
      }
      if (item.kind === 'all') {
        if (!this.shape) { ok = false; continue; }
        for (let i = 0; i < this.shape.layers; i++) out.push(i);
        continue;
      }
      const set = this.layerSet(item, scope);
      if (!set) { ok = false; continue; }
      if (set.kind === 'single' && set.layer.kind === 'int') out.push(set.layer.value);
      else if (set.kind === 'range' && set.from.kind === 'int' && set.to.kind === 'int') {
        for (let i = set.from.value; i <= set.to.value; i++) out.push(i);
      } else ok = false;
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

  // ---- experiments -------------------------------------------------------------------------

  experiments(): Experiment[] {
    const out: Experiment[] = [];
    const seen = new Map<string, A.ExperimentStmt>();
    for (const x of this.statements('experiment')) {
      const first = seen.get(x.name.name);
      if (first) {
        this.error(x.name.span, `duplicate experiment '${x.name.name}'`, `'${x.name.name}' is already defined at line ${first.span.line}`);
      } else {
        seen.set(x.name.name, x);
      }
      const e = this.experiment(x);
      if (e) out.push(e);
    }
    return out;
  }

  experiment(x: A.ExperimentStmt): Experiment | undefined {
    let ok = true;
    const vars = new Map<string, SweepVar>();
    const fors = x.items.filter((i): i is A.ForStmt => i.kind === 'for');
    const sweeps: Sweep[] = [];
    const used = new Set<string>();
    const sweepScope: Scope = { vars, used, inSweepValues: true };
    for (const f of fors) {
      const name = f.variable.name;
      const clash = this.nameClash(name, vars);
      if (clash) {
        this.error(f.variable.span, clash.message, clash.hint);
        ok = false;
        continue;
      }
      if (f.domain.kind === 'layers') {
        const values = this.sweepLayers(f.domain.items, sweepScope);
        vars.set(name, { kind: 'layers', stmt: f, values: values ?? [1] });
        if (!values) { ok = false; continue; }
        const repeated = values.filter((v, i) => values.indexOf(v) !== i);
        if (repeated.length > 0) {
          this.warn(f.span, `layer ${repeated[0]} appears more than once in the sweep over '${name}'`,
            'each repetition adds identical rows; list each layer once');
        }
        sweeps.push({ kind: 'layers', variable: name, values, span: this.span(f.span) });
      } else {
        vars.set(name, { kind: 'positions', stmt: f });
        const values: { label: string; set: PositionSet }[] = [];
        for (const item of f.domain.items) {
          const set = this.posExpr(item.expr, sweepScope);
          if (set) values.push({ label: item.text, set });
          else ok = false;
        }
        sweeps.push({ kind: 'positions', variable: name, values, span: this.span(f.span) });
      }
    }
    const scope: Scope = { vars, used, inSweepValues: false };
    const interventions: BlockIntervention[] = [];
    for (const b of x.items.filter((i): i is A.BlockStmt => i.kind === 'block')) {
      const source = this.posExpr(b.source, scope);
      const target = this.posExpr(b.target, scope);
      const layers = this.layerSet(b.layers, scope);
      const heads = this.heads(b.heads, scope);
      if (!source || !target || !layers || !heads) { ok = false; continue; }
      interventions.push({ kind: 'block', source, target, layers, heads, span: this.span(b.span) });
    }
    const measures = this.measures(x);
    if (!measures) ok = false;
    for (const f of fors) {
      const name = f.variable.name;
      if (vars.get(name)?.stmt === f && !used.has(name)) {
        this.warn(f.variable.span, `sweep variable '${name}' is never used`,
          'every value of the sweep gives the same configuration; use the variable in a block statement or remove the for');
      }
    }
    if (!ok) return undefined;
    const lines = this.options.source.split(/\r?\n|\r/).slice(x.span.line - 1, x.span.endLine);
    return {
      name: x.name.name,
      sweeps,
      interventions,
      measures: measures!,
      span: this.span(x.span),
      source: lines.join('\n'),
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

  measures(x: A.ExperimentStmt): MeasureName[] | undefined {
    const stmts = x.items.filter((i): i is A.MeasureStmt => i.kind === 'measure');
    if (stmts.length === 0) {
      this.error(x.name.span, `experiment '${x.name.name}' has no measure statement`, `add: measure ${measureNames.join(', ')}`);
      return undefined;
    }
    const out: MeasureName[] = [];
    let ok = true;
    for (const m of stmts.flatMap((s) => s.names)) {
      if (!(measureNames as readonly string[]).includes(m.name)) {
        const best = closest(m.name, measureNames);
        this.error(m.span, `unknown measure '${m.name}'`, `${best ? `did you mean '${best}'? ` : ''}measures: ${measureNames.join(', ')}`);
        ok = false;
        continue;
      }
      if (out.includes(m.name as MeasureName)) {
        this.error(m.span, `measure '${m.name}' is listed twice`, 'list each measure once');
        ok = false;
        continue;
      }
      out.push(m.name as MeasureName);
    }
    return ok ? out : undefined;
  }

  run(): CheckResult {
    this.resolveParams();
    this.collectPositionDefs();
    const model = this.model();
    const dataset = this.dataset();
    const filter = this.enumValue(this.single('filter'), factFilters, 'known');
    const bos = this.enumValue(this.single('bos'), bosPolicies, 'none');
    const choices = this.choices();
    // Definitions no experiment uses are still checked.
    for (const [name, def] of this.positionDefs) this.positionDef(name, { kind: 'ref', name, span: def.name.span });
    const experiments = this.experiments();
    const diagnostics = sortDiagnostics(this.diagnostics);
    if (hasErrors(diagnostics) || !model || !dataset) return { diagnostics };
    const params: Record<string, number | string> = {};
    for (const p of this.params.values()) params[p.name] = p.value;
    return {
      program: { file: this.absFile, model, dataset, filter, bos, choices, params, experiments },
      diagnostics,
    };
  }
}

/** Checks a parsed document. The model's shape comes from `options.shapeOf`. */
export function check(doc: A.Document, options: CheckOptions): CheckResult {
  return new Checker(doc, options).run();
}
