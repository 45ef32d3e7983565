// The checker: AST + `--set` overrides + the model's shape → the checked Program.
// It resolves parameters and names, types every use, validates ranges against the model,
// and collects every error it can find in one pass (it never throws for user errors).

import { dirname, resolve } from 'node:path';
import type * as A from './ast.js';
import { allChoices, choicesInForce, describeValues, findChoice, type ChoiceOption, type Choices } from './choices.js';
import { closest, commandLineFile, didYouMean, error, hasErrors, relativePathsHint, sortDiagnostics, warning } from './diagnostics.js';
import { extremes, layersOf, span as inclusiveRange, type Binding, type Extreme } from './evaluate.js';
import { probeNames, siteNames, siteProbe, siteProbesThat, type SiteName, type SiteProbe, type SiteProbeName } from './probes.js';
import { defaultRowLimits, formatCount, maxIntegrationSteps, maxNesting, maxOverrideLayer, maxRowsFlag, type RowLimits } from './limits.js';
import {
  measureNames, namedPositionSets, overridableSites,
  type AttributesSpec, type BosPolicy, type DatasetFields, type DatasetSpec, type Diagnostic, type Experiment, type ExtractionSummary,
  type FactFilter, type HeadMappingsSpec, type IntExpr, type Intervention, type LayerSet, type MeasureName, type ModelShape,
  type NamedPositionSet, type PositionSet, type OverridableSite, type Probe, type Program, type Site, type SiteOverrideSpec, type SourceSpan,
  type Sweep, type AttributionProbe, type IntegrationBaseline, integrationBaselines,
} from './program.js';

/**
 * Reads the model's shape, detecting its sites with the file's `site` overrides, and with the
 * tokenizer (when the file names one) the tokens a projection ranks. An error caused by one
 * override gives its index, so that it is reported at that statement.
 */
export type ShapeOf = (onnxPath: string, sites: readonly SiteOverrideSpec[], tokenizerPath: string | undefined) => ModelShape | { error: string; site?: number };

export interface CheckOptions {
  /** The .dissect source text (experiments quote their own lines). */
  readonly source: string;
  /** `--set name=value` overrides. */
  readonly overrides: Readonly<Record<string, string>>;
  /** Reads the model's shape; called once, with the resolved model path, if it resolved. */
  readonly shapeOf: ShapeOf;
  /** Rows the experiments may give per fact (the total is checked once the facts are read). */
  readonly rowLimits?: RowLimits;
}

export interface CheckResult {
  readonly program?: Program;
  readonly diagnostics: Diagnostic[];
}

export const datasetFormats = ['counterfact', 'known', 'jsonl', 'csv'] as const;
export const factFilters: readonly FactFilter[] = ['known', 'none'];
export const bosPolicies: readonly BosPolicy[] = ['none', 'prepend'];
export const datasetFieldNames = ['prompt', 'subject', 'target', 'corrupted'] as const;
/** The fields every fields clause names (`corrupted` is optional). */
const requiredFieldNames = ['prompt', 'subject', 'target'] as const;
/** The options `integrated_gradients` takes after its site, and the steps it takes when `steps` is not written. */
export const integrationOptions = ['steps', 'baseline'] as const;
export const defaultIntegrationSteps = 64;
/** A site as a probe's syntax hint writes it. */
const siteSyntax = (site: SiteName): string => (site === 'subject_embeddings' ? site : `${site} <n>`);
export const attributesFormats = ['json', 'paragraphs'] as const;
export const attributesOptions = ['candidates', 'keep', 'min_length', 'stopwords'] as const;
export const stopwordLists = ['english', 'none'] as const;
export const summaryNames = ['extraction'] as const;
/** The paper's settings, used when the attributes statement leaves an option out. */
export const attributesDefaults = { candidates: 500, keep: 50, minLength: 3, stopwords: 'english' } as const;

interface ParamInfo {
  readonly name: string;
  value: number | string;
  readonly decl: A.ParamStmt;
}

type SweepVar =
  | { readonly kind: 'layers' | 'hidden'; readonly stmt: A.ForStmt; readonly values: readonly number[]; readonly low: number; readonly high: number }
  | { readonly kind: 'positions'; readonly stmt: A.ForStmt };

function intSweepVar(kind: 'layers' | 'hidden', stmt: A.ForStmt, values: readonly number[]): SweepVar {
  let low = Infinity;
  let high = -Infinity;
  for (const v of values) { low = Math.min(low, v); high = Math.max(high, v); }
  return { kind, stmt, values, low, high };
}

/** An inclusive range of integers, not listed. */
interface IntRange { readonly from: number; readonly to: number }

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

/** The sweep variables visible where a name is used. */
interface Scope {
  readonly vars: ReadonlyMap<string, SweepVar>;
  /** Names used, to warn about unused sweep variables. */
  readonly used: Set<string>;
  /** Inside a sweep's own values sweep variables are not allowed. */
  readonly inSweepValues: boolean;
  /** Inside `summarize ... in layers R` sweep variables are not allowed either. */
  readonly inSummary?: boolean;
}

const emptyScope: Scope = { vars: new Map(), used: new Set(), inSweepValues: false };

/** What an integer must index: a block (0..L-1), a hidden state (0..L), or a block input (patch, 0..L-1). */
type IndexKind = 'layer' | 'hidden' | 'patch';

/** A binding as the evaluator reads it. */
function valueIn(b: Binding): (variable: string) => number {
  return (variable) => b.get(variable) ?? NaN;
}

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

const namedSetList = namedPositionSets.join(', ');
const positionHint = `position sets: ${namedSetList}, [indices], a + b, a - b, or a name defined with 'positions'`;

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** A checked `site` statement and the statement, for errors found once the model is read. */
interface CheckedSite { readonly spec: SiteOverrideSpec; readonly stmt: A.SiteStmt }

function overlaps(a: 'all' | readonly number[], b: 'all' | readonly number[]): boolean {
  return a === 'all' || b === 'all' || a.some((l) => b.includes(l));
}

class Checker {
  readonly diagnostics: Diagnostic[] = [];
  readonly params = new Map<string, ParamInfo>();
  readonly positionDefs = new Map<string, A.PositionsStmt>();
  readonly resolvedDefs = new Map<string, PositionSet | null>();
  readonly resolving: string[] = [];
  shape: ModelShape | undefined;
  /** Set once the statements are known: whether the file has an attributes statement. */
  hasAttributes = false;
  /** The dataset has a corrupted prompt per fact (a `corrupted` field mapping). */
  hasCorrupted = false;
  /** Whether some experiment measures attributes_rate (else the attributes statement is unused). */
  usesAttributes = false;
  readonly dir: string;
  readonly absFile: string;
  readonly rowLimits: RowLimits;
  /** The source's lines (experiments keep their own). */
  readonly lines: readonly string[];
  /** Unions and differences being checked, inside definitions resolved on the way too: the stack grows with them. */
  openPositionOperators = 0;
  /** How deep each position set built here nests, definitions inlined: the planner and the run recurse that deep. */
  readonly setDepths = new WeakMap<PositionSet, number>();
  /** What `window(c, k)` covers: the choice in force, set first thing in run(). */
  windowRule!: ChoiceOption<'knockout_window'>;

  constructor(readonly doc: A.Document, readonly options: CheckOptions) {
    this.absFile = resolve(doc.file);
    this.dir = dirname(this.absFile);
    this.rowLimits = options.rowLimits ?? defaultRowLimits;
    this.lines = options.source.split(/\r?\n|\r/);
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
      const digits = lit.text.replace('-', '').length;
      const shown = digits > 24 ? `${lit.text.slice(0, 20)}… (${digits} digits)` : lit.text;
      this.error(lit.span, `integer ${shown} is too large`, `integers must be at most ${Number.MAX_SAFE_INTEGER}`);
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

  model(sites: readonly CheckedSite[]): Program['model'] | undefined {
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
      const shape = this.options.shapeOf(onnx, sites.map((s) => s.spec), tokenizer);
      const culprit = 'error' in shape && shape.site !== undefined ? sites[shape.site] : undefined;
      if ('error' in shape && culprit) {
        this.error(culprit.stmt.tensor.span, shape.error.replace(/\s*\n\s*/g, ' '),
          'a site override names a tensor of the graph; `dissect inspect MODEL` lists the tensors detection found');
      } else if ('error' in shape) {
        this.error(m.onnx.span, `cannot read the model ${onnx}: ${shape.error.replace(/\s*\n\s*/g, ' ')}`,
          relativePathsHint(this.absFile));
      } else {
        this.shape = shape;
      }
    }
    if (onnx === undefined || tokenizer === undefined) return undefined;
    return { onnx, tokenizer, tokenizerSpan: this.span(m.tokenizer!.span), span: this.span(m.span) };
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
    const pathSpan = this.span(d.path.span);
    if (format === 'counterfact' || format === 'known') {
      if (d.fields) {
        this.error(d.fieldsSpan!, `a ${format} dataset takes no fields clause`,
          `${format} files have fixed fields; 'fields' is for jsonl and csv datasets`);
        return undefined;
      }
      return path === undefined ? undefined : { format, path, pathSpan, span };
    }
    if (format === 'jsonl' || format === 'csv') {
      if (!d.fields) {
        this.error(d.span, `a ${format} dataset needs a fields clause`,
          'add: fields prompt = "<column>", subject = "<column>", target = "<column>"');
        return undefined;
      }
      const fields = this.fields(d.fields, d.fieldsSpan!);
      return path === undefined || fields === undefined ? undefined : { format, path, pathSpan, fields, span };
    }
    const best = closest(format, datasetFormats);
    this.error(d.format.span, `unknown dataset format '${format}'`,
      `${best ? `did you mean '${best}'? ` : ''}formats: ${datasetFormats.join(', ')}`);
    return undefined;
  }

  fields(assigns: readonly A.FieldAssign[], fieldsSpan: A.Span): DatasetFields | undefined {
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
    const missing = requiredFieldNames.filter((n) => !seen.has(n));
    if (missing.length > 0) {
      this.error(fieldsSpan, `missing field${missing.length > 1 ? 's' : ''} ${missing.map((m) => `'${m}'`).join(', ')}`,
        'a fields clause names all of prompt, subject and target (and optionally corrupted)');
      ok = false;
    }
    return ok ? { prompt: out.prompt!, subject: out.subject!, target: out.target!, ...(out.corrupted !== undefined ? { corrupted: out.corrupted } : {}) } : undefined;
  }

  attributes(): AttributesSpec | undefined {
    const a = this.single('attributes');
    if (!a) return undefined;
    let ok = true;
    const format = a.format.name;
    if (!(attributesFormats as readonly string[]).includes(format)) {
      const best = closest(format, attributesFormats);
      this.error(a.format.span, `unknown attributes format '${format}'`,
        `${best ? `did you mean '${best}'? ` : ''}formats: json (a map from subject to strings), paragraphs (a CSV with columns subject, paragraphs)`);
      ok = false;
    }
    const path = this.path(a.path, 'a path to the attributes file');
    if (path === undefined) ok = false;
    const values: { candidates: number; keep: number; minLength: number; stopwords: 'english' | 'none' } = { ...attributesDefaults };
    const seen = new Map<string, A.AttributesStmt['options'][number]>();
    for (const o of a.options) {
      const name = o.name.name;
      if (!(attributesOptions as readonly string[]).includes(name)) {
        const best = closest(name, attributesOptions);
        this.error(o.name.span, `unknown attributes option '${name}'`,
          `${best ? `did you mean '${best}'? ` : ''}options: candidates <n>, keep <n>, min_length <n>, stopwords english | none`);
        ok = false;
        continue;
      }
      const first = seen.get(name);
      if (first) {
        this.error(o.name.span, `attributes option '${name}' is given twice`, `the first is at line ${first.span.line}, column ${first.span.column}; keep one`);
        ok = false;
        continue;
      }
      seen.set(name, o);
      if (name === 'stopwords') {
        const v = o.value;
        const word = v.kind === 'ref' ? v.name : v.text;
        if (v.kind !== 'ref' || !(stopwordLists as readonly string[]).includes(word)) {
          const best = closest(word, stopwordLists);
          this.error(v.span, `unknown stopword list '${word}'`,
            `${best ? `did you mean '${best}'? ` : ''}allowed: english (NLTK's English stopwords), none (no stopword filter)`);
          ok = false;
          continue;
        }
        values.stopwords = word as 'english' | 'none';
        continue;
      }
      const n = o.value.kind === 'int' ? this.literal(o.value) : this.paramUse(o.value, 'integer', `an integer for ${name}`) as number | undefined;
      if (n === undefined) { ok = false; continue; }
      if (name === 'min_length') { values.minLength = n; continue; }
      if (n < 1) {
        this.error(o.value.span, `${name} must be at least 1, got ${n}`,
          name === 'candidates' ? 'candidates is how many top tokens of the projection are cleaned (the paper: 500)' : 'keep is how many cleaned candidates are compared (the paper: 50)');
        ok = false;
        continue;
      }
      if (name === 'candidates') values.candidates = n;
      else values.keep = n;
    }
    // The default too: 500 candidates are more than a small model's vocabulary.
    const given = seen.get('candidates');
    if (ok && !this.fitsVocabulary(`candidates ${values.candidates}${given ? '' : ' (the default)'}`, values.candidates, given ? given.value.span : a.span,
      (vocab) => `the projection ranks ${vocab} tokens; ${given ? 'write' : 'add'} candidates ${vocab} or fewer (the paper takes 500 of GPT-2's 50257)`)) {
      ok = false;
    }
    if (ok && values.keep > values.candidates) {
      const at = seen.get('keep') ?? a;
      this.warn(at.span, `keep ${values.keep} is more than candidates ${values.candidates}: at most ${values.candidates} candidates can be kept`,
        'raise candidates or lower keep');
    }
    if (!ok) return undefined;
    return {
      format: format as AttributesSpec['format'],
      path: path!,
      pathSpan: this.span(a.path.span),
      candidates: values.candidates,
      keep: values.keep,
      minLength: values.minLength,
      stopwords: values.stopwords,
      span: this.span(a.span),
    };
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

  choices(): Choices {
    const chosen: Record<string, string> = {};
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
    return choicesInForce(chosen);
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

  /** Reports a position set nested deeper than maxNesting, at `at`. */
  tooDeep(at: A.Span): undefined {
    this.error(at, `position set nested too deeply: more than ${maxNesting} levels`,
      'each pair of parentheses, each + or - and each positions definition used inside another is a level; write it with fewer terms');
    return undefined;
  }

  posExpr(e: A.PosExpr, scope: Scope): PositionSet | undefined {
    switch (e.kind) {
      case 'binary': {
        if (this.openPositionOperators >= maxNesting) return this.tooDeep(e.span);
        this.openPositionOperators++;
        const left = this.posExpr(e.left, scope);
        const right = this.posExpr(e.right, scope);
        this.openPositionOperators--;
        if (!left || !right) return undefined;
        const depth = 1 + Math.max(this.setDepths.get(left) ?? 0, this.setDepths.get(right) ?? 0);
        if (depth > maxNesting) return this.tooDeep(e.span);
        const set: PositionSet = { kind: e.op === '+' ? 'union' : 'difference', left, right };
        this.setDepths.set(set, depth);
        return set;
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
      if (v.kind !== 'positions') {
        this.error(ref.span, `sweep variable '${name}' ranges over ${v.kind === 'layers' ? 'layers' : 'hidden states'}, but a position set is expected here`,
          `'${name}' is bound by 'for ${name} in ${v.kind}' at line ${v.stmt.span.line}; ${positionHint}`);
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

  // ---- integers, layers and heads ----------------------------------------------------------

  /** The source text under a span, runs of whitespace collapsed. */
  text(s: A.Span): string {
    return this.options.source.slice(s.offset, s.endOffset).replace(/\s+/g, ' ');
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

  // ---- interventions -----------------------------------------------------------------------

  intervention(item: A.BlockStmt | A.CancelStmt | A.PatchStmt, scope: Scope): Intervention | undefined {
    const span = this.span(item.span);
    switch (item.kind) {
      case 'block': {
        const source = this.posExpr(item.source, scope);
        const target = this.posExpr(item.target, scope);
        const layers = this.layers(item.layers, scope);
        const heads = this.heads(item.heads, scope);
        if (!source || !target || !layers || !heads) return undefined;
        return { kind: 'block', source, target, layers, heads, span };
      }
      case 'cancel': {
        const name = item.sublayer.name;
        const sublayer = name === 'mlp' || name === 'attention' ? name : undefined;
        if (!sublayer) {
          this.error(item.sublayer.span, `unknown sublayer '${name}'`, didYouMean(name, ['mlp', 'attention'], 'write cancel mlp or cancel attention'));
        }
        const layers = this.layers(item.layers, scope);
        const positions: PositionSet | undefined = item.positions ? this.posExpr(item.positions, scope) : { kind: 'named', name: 'all' };
        if (!sublayer || !layers || !positions) return undefined;
        return { kind: 'cancel', sublayer, layers, positions, span };
      }
      case 'patch': {
        const layer = this.intExpr(item.layer, scope, 'a hidden-state index');
        const okLayer = this.checkIndex(layer, item.layer, scope, 'patch');
        const positions = this.posExpr(item.positions, scope);
        const index = this.intExpr(item.source, scope, 'a hidden-state index');
        const okIndex = this.checkIndex(index, item.source, scope, 'hidden');
        let okSource = true;
        if (item.corrupted && !this.hasCorrupted && this.statements('dataset').length > 0) {
          this.error(item.span, 'patch with corrupted hidden needs a corrupted prompt per fact, but the dataset has no corrupted field',
            'use a jsonl or csv dataset and map the corrupted prompt: fields prompt = "...", subject = "...", target = "...", corrupted = "<column>"');
          okSource = false;
        }
        if (!layer || !okLayer || !positions || !index || !okIndex || !okSource) return undefined;
        const kind = item.corrupted ? 'corrupted_hidden' : item.mean ? 'mean_hidden' : 'hidden';
        return { kind: 'patch', layer, positions, source: { kind, index }, span };
      }
    }
  }

  // ---- measures and probes -----------------------------------------------------------------

  /** The site a probe reads; `allowed`: the sites that probe can read. */
  site(s: A.SiteExpr, scope: Scope, probe: string, allowed: readonly SiteName[]): Site | undefined {
    const kind = s.kind.name;
    if (kind === 'subject_embeddings' && s.index) {
      this.intExpr(s.index, scope, 'a layer');
      this.error(s.index.span, 'subject_embeddings takes no index',
        'write: <probe> of subject_embeddings (the mean token embedding of the subject, read before any block)');
      return undefined;
    }
    if (kind !== 'subject_embeddings' && !s.index) throw new Error(`internal: site '${kind}' without an index passed the parser`);
    const index = s.index && this.intExpr(s.index, scope, kind === 'hidden' ? 'a hidden-state index' : 'a layer');
    if (!(siteNames as readonly string[]).includes(kind)) {
      this.error(s.kind.span, `unknown site '${kind}'`,
        didYouMean(kind, siteNames, 'sites: hidden <n> (a hidden state), attention <n>, mlp <n>, heads <n> (a block\'s update), subject_embeddings'));
      return undefined;
    }
    const known = kind as SiteName;
    if (!allowed.includes(known)) {
      this.error(s.kind.span, `${probe} cannot read ${known}`,
        `${known} is read by ${siteProbesThat((p) => p.sites.includes(known)).join(', ')}; ${probe} reads ${allowed.join(', ')}`);
      return undefined;
    }
    if (known === 'subject_embeddings') return { kind: known };
    if (!this.checkIndex(index, s.index!, scope, known === 'hidden' ? 'hidden' : 'layer') || !index) return undefined;
    return known === 'hidden' ? { kind: known, index } : { kind: known, layer: index };
  }

  probe(item: A.MeasureItem, scope: Scope): Probe | undefined {
    const label = item.text;
    const span = this.span(item.span);
    if (item.kind === 'attention_weight') {
      const source = this.posExpr(item.source, scope);
      const target = this.posExpr(item.target, scope);
      const layer = this.intExpr(item.layer, scope, 'a layer');
      const okLayer = this.checkIndex(layer, item.layer, scope, 'layer');
      let heads: 'all' | 'each' | undefined = 'all';
      if (item.heads && item.heads.name !== 'all' && item.heads.name !== 'each') {
        this.error(item.heads.span, `unknown heads mode '${item.heads.name}' for attention_weight`,
          `${closest(item.heads.name, ['all', 'each']) ? `did you mean '${closest(item.heads.name, ['all', 'each'])}'? ` : ''}heads all (the mean over heads) or heads each (one value per head)`);
        heads = undefined;
      } else if (item.heads) {
        heads = item.heads.name as 'all' | 'each';
      }
      if (!source || !target || !layer || !okLayer || !heads) return undefined;
      return { kind: 'attention_weight', source, target, layer, heads, label, span };
    }
    if (item.name.name === 'attention_weight') {
      this.error(item.name.span, 'attention_weight needs source and target positions and a layer',
        'syntax: attention_weight <positions> -> <positions> at layer <n> [heads all | each]');
      return undefined;
    }
    if (item.name.name === 'attribution' || item.name.name === 'integrated_gradients') return this.attributionProbe(item, item.name.name, scope);
    const probe = siteProbe(item.name.name as SiteProbeName);
    const name = probe.name;
    const syntax = `syntax: ${name}${probe.topTokens === 'count' ? ' <k>' : ''} of ${probe.sites.map(siteSyntax).join(' | ')} [at <positions>]`;
    if (item.options) {
      this.error(item.options[0]!.span, `${name} takes no options`, 'options (steps, baseline) belong to integrated_gradients');
      return undefined;
    }
    let ok = true;
    if (probe.topTokens === 'candidates') {
      this.usesAttributes = true;
      if (!this.hasAttributes) {
        this.error(item.name.span, `${name} needs an attributes statement`,
          'add an attributes statement, e.g. attributes json "attributes.json" (a map from subject to attribute strings)');
        ok = false;
      }
    }
    let k: number | undefined;
    if (probe.topTokens === 'count') {
      if (!item.count) {
        this.error(item.name.span, `${name} needs a count`, syntax);
        ok = false;
      } else {
        k = this.count(item.count, scope);
        if (k !== undefined && k < 1) {
          this.error(item.count.span, `${name} needs at least 1 token, got ${k}`, syntax);
          k = undefined;
        } else if (k !== undefined && !this.fitsVocabulary(`${name} ${k}`, k, item.count.span, () => 'the projection ranks every vocabulary token once')) {
          k = undefined;
        }
        if (k === undefined) ok = false;
      }
    } else if (item.count) {
      this.error(item.count.span, `${name} takes no count`,
        `only ${siteProbesThat((p) => p.topTokens === 'count').join(', ')} takes a count: top_tokens <k> of <site>`);
      ok = false;
    }
    if (!item.site) {
      this.error(item.name.span, `${name} needs a site`, syntax);
      if (item.at) this.posExpr(item.at, scope);
      return undefined;
    }
    const site = this.site(item.site, scope, name, probe.sites);
    if (item.site.kind.name === 'subject_embeddings' && (item.at || item.without)) {
      const extraSpan = item.at ? item.at.span : item.without!.span;
      this.error(extraSpan, `subject_embeddings takes no ${item.at ? 'at' : 'without'} clause`,
        'subject_embeddings is read over the subject\'s positions: write <probe> of subject_embeddings');
      return undefined;
    }
    // subject_embeddings averages over the subject's positions: its `at` is `subject`
    const implicitAt: PositionSet = { kind: 'named', name: item.site.kind.name === 'subject_embeddings' ? 'subject' : 'last' };
    const at: PositionSet | undefined = item.at ? this.posExpr(item.at, scope) : implicitAt;
    let without: PositionSet | undefined;
    if (item.without) {
      without = this.posExpr(item.without, scope);
      if (!this.withoutAllowed(item, probe, at)) ok = false;
    }
    if (!ok || !site || !at || (item.without && !without)) return undefined;
    return { kind: name, ...(k !== undefined ? { k } : {}), site, at, ...(without ? { without } : {}), label, span };
  }

  /**
   * `attribution of hidden h [at P]` and `integrated_gradients of hidden h [steps n] [baseline
   * mean | zero] [at P]`: a hidden state (no count, no without), every position by default.
   */
  attributionProbe(item: Extract<A.MeasureItem, { kind: 'named' }>, name: AttributionProbe['kind'], scope: Scope): AttributionProbe | undefined {
    const label = item.text;
    const span = this.span(item.span);
    const syntax = name === 'attribution' ? 'syntax: attribution of hidden <n> [at <positions>]'
      : 'syntax: integrated_gradients of hidden <n> [steps <n>] [baseline mean | zero] [at <positions>]';
    let ok = true;
    if (item.count) {
      this.error(item.count.span, `${name} takes no count`, syntax);
      ok = false;
    }
    if (!item.site) {
      this.error(item.name.span, `${name} needs a site`, syntax);
      return undefined;
    }
    if (item.site.kind.name !== 'hidden') {
      if (item.site.index) this.intExpr(item.site.index, scope, 'a layer');
      this.error(item.site.kind.span, `${name} reads hidden states only, not ${item.site.kind.name}`,
        `${syntax}  (the gradient is taken with respect to the residual stream)`);
      return undefined;
    }
    const site = this.site(item.site, scope, name, ['hidden']);
    if (item.without) {
      this.error(item.without.span, `${name} takes no without clause`, syntax);
      ok = false;
    }
    const at = item.at ? this.posExpr(item.at, scope) : { kind: 'named', name: 'all' } as const;
    if (name === 'attribution') {
      if (item.options) {
        this.error(item.options[0]!.span, 'attribution takes no options', 'steps and baseline are options of integrated_gradients');
        ok = false;
      }
      return ok && site?.kind === 'hidden' && at ? { kind: name, site, at, label, span } : undefined;
    }
    const options = this.integrationOptions(item.options ?? [], scope);
    return ok && site?.kind === 'hidden' && at && options ? { kind: name, site, at, ...options, label, span } : undefined;
  }

  /** `steps n` (1 … maxIntegrationSteps, default defaultIntegrationSteps) and `baseline mean | zero` (default mean), each at most once. */
  integrationOptions(options: readonly A.NameValueOption[], scope: Scope): { steps: number; baseline: IntegrationBaseline } | undefined {
    let steps = defaultIntegrationSteps;
    let baseline: IntegrationBaseline = 'mean';
    let ok = true;
    const seen = new Set<string>();
    for (const o of options) {
      const name = o.name.name;
      if (!(integrationOptions as readonly string[]).includes(name)) {
        this.error(o.name.span, `unknown option '${name}' for integrated_gradients`,
          didYouMean(name, integrationOptions, 'options: steps <n> (the integration points), baseline mean | zero'));
        ok = false;
        continue;
      }
      if (seen.has(name)) {
        this.error(o.name.span, `option '${name}' is given twice`, 'give each option once');
        ok = false;
        continue;
      }
      seen.add(name);
      if (name === 'baseline') {
        const value = o.value.kind === 'ref' ? o.value.name : o.value.text;
        if ((integrationBaselines as readonly string[]).includes(value)) {
          baseline = value as IntegrationBaseline;
        } else {
          this.error(o.value.span, `unknown baseline '${value}'`,
            didYouMean(value, integrationBaselines, 'baselines: mean (the dataset\'s mean hidden state) or zero'));
          ok = false;
        }
        continue;
      }
      const n = this.count(o.value, scope);
      if (n === undefined) {
        ok = false;
      } else if (n < 1 || n > maxIntegrationSteps) {
        this.error(o.value.span, `integrated_gradients takes 1 to ${maxIntegrationSteps} steps, got ${n}`,
          `each step is one forward and backward pass per fact; the completeness gap shrinks with steps (64 keeps it within 1% on the test models)`);
        ok = false;
      } else {
        steps = n;
      }
    }
    return ok ? { steps, baseline } : undefined;
  }

  /**
   * `without S` recomputes block l's attention update at the last position: it needs
   * `attention <l>`, no `at` other than last, and a probe that reads the projection's top
   * tokens or the target's rank.
   */
  withoutAllowed(item: Extract<A.MeasureItem, { kind: 'named' }>, probe: SiteProbe, at: PositionSet | undefined): boolean {
    const syntax = `syntax: ${siteProbesThat((p) => p.without).map((n) => (siteProbe(n).topTokens === 'count' ? `${n} <k>` : n)).join(' | ')} ` +
      'of attention <l> without <positions>';
    if (!probe.without) {
      this.error(item.name.span, `${probe.name} cannot read a recomputed attention update (without)`, syntax);
      return false;
    }
    if (item.site!.kind.name !== 'attention') {
      this.error(item.site!.kind.span, `without recomputes an attention update; it cannot read ${item.site!.kind.name}`,
        `${syntax}  (the keys are removed from block l's attention at the last position)`);
      return false;
    }
    const atLast = at === undefined || (at.kind === 'named' && at.name === 'last') ||
      (at.kind === 'indices' && at.indices.length === 1 && at.indices[0] === -1);
    if (item.at && !atLast) {
      this.error(item.at.span, 'a recomputed attention update exists at the last position only',
        'drop the at clause (or write at last): without recomputes the last position\'s update');
      return false;
    }
    return true;
  }

  /**
   * Whether `count` top tokens (`written` in the message) are at most the tokens a projection
   * ranks (ModelShape.vocab); else an error at `at`. The compiled projections and head mappings
   * refuse a larger count, so this is where `check` finds it.
   */
  fitsVocabulary(written: string, count: number, at: A.Span, hint: (vocab: number) => string): boolean {
    if (!this.shape || count <= this.shape.vocab) return true;
    this.error(at, `${written} is larger than the vocabulary (${this.shape.vocab})`, hint(this.shape.vocab));
    return false;
  }

  /** top_tokens' count: an integer literal or an integer parameter (not a sweep variable). */
  count(v: A.IntValue, scope: Scope): number | undefined {
    if (v.kind === 'ref' && scope.vars.has(v.name)) {
      scope.used.add(v.name);
      this.error(v.span, `sweep variable '${v.name}' cannot be a count`, 'a count is an integer or an integer parameter');
      return undefined;
    }
    const e = this.intValue(v, emptyScope, 'a count');
    return e?.kind === 'int' ? e.value : undefined;
  }

  measures(x: A.ExperimentStmt, scope: Scope): { measures: MeasureName[]; probes: Probe[] } | undefined {
    const stmts = x.items.filter((i): i is A.MeasureStmt => i.kind === 'measure');
    if (stmts.length === 0) {
      this.error(x.name.span, `experiment '${x.name.name}' has no measure statement`, `add: measure ${measureNames.join(', ')}`);
      return undefined;
    }
    const measures: MeasureName[] = [];
    const probes: Probe[] = [];
    const labels = new Set<string>();
    let ok = true;
    for (const m of stmts.flatMap((s) => s.items)) {
      if (m.kind === 'named' && (measureNames as readonly string[]).includes(m.name.name)) {
        const extra = m.count?.span ?? m.site?.span;
        if (extra) {
          this.error(extra, `measure '${m.name.name}' reads the model's output and takes no ${m.count ? 'count' : 'site'}`,
            `write: measure ${m.name.name}; probes of internal sites are ${probeNames.join(', ')}`);
          ok = false;
          continue;
        }
        if (measures.includes(m.name.name as MeasureName)) {
          this.error(m.span, `measure '${m.name.name}' is listed twice`, 'list each measure once');
          ok = false;
          continue;
        }
        measures.push(m.name.name as MeasureName);
        continue;
      }
      if (m.kind === 'named' && !(probeNames as readonly string[]).includes(m.name.name)) {
        const best = closest(m.name.name, [...measureNames, ...probeNames]);
        this.error(m.name.span, `unknown measure '${m.name.name}'`,
          `${best ? `did you mean '${best}'? ` : ''}measures: ${measureNames.join(', ')}; probes: ${probeNames.join(', ')}`);
        ok = false;
        continue;
      }
      const probe = this.probe(m, scope);
      if (!probe) { ok = false; continue; }
      if (labels.has(probe.label)) {
        this.error(m.span, `probe '${probe.label}' is listed twice`, 'list each probe once');
        ok = false;
        continue;
      }
      labels.add(probe.label);
      if ('without' in probe && probe.without) {
        const first = probes.find((p) => 'without' in p && p.without !== undefined);
        if (first && 'without' in first && JSON.stringify(first.without) !== JSON.stringify(probe.without)) {
          this.error(m.span, `an experiment recomputes with one removed set per row, but '${probe.label}' and '${first.label}' remove different sets`,
            'sweep the set instead: for s in positions subject, last ... and measure ... without s (or use two experiments)');
          ok = false;
          continue;
        }
      }
      if (probe.kind === 'integrated_gradients') {
        const first = probes.find((p) => p.kind === 'integrated_gradients');
        if (first) {
          this.error(m.span, 'an experiment has one integrated_gradients probe at most: its rows replace the hidden state they integrate along',
            `the first is '${first.label}'; sweep the hidden state instead (for h in hidden all) or use another experiment`);
          ok = false;
          continue;
        }
      }
      probes.push(probe);
    }
    return ok ? { measures, probes } : undefined;
  }

  summary(s: A.SummarizeStmt, sweeps: readonly Sweep[], probes: readonly Probe[] | undefined, scope: Scope): ExtractionSummary | undefined {
    const what = s.what.name;
    if (!(summaryNames as readonly string[]).includes(what)) {
      this.error(s.what.span, `unknown summary '${what}'`, didYouMean(what, summaryNames, `summaries: ${summaryNames.join(', ')}`));
      return undefined;
    }
    const layerSweeps = sweeps.filter((w): w is Extract<Sweep, { kind: 'layers' | 'hidden' }> => w.kind === 'layers');
    let ok = true;
    if (layerSweeps.length === 0) {
      this.error(s.span, 'summarize extraction needs a layer sweep in its experiment',
        'add: for l in layers all, and measure extraction of attention l (the summary counts events over the layers of l)');
      ok = false;
    } else if (layerSweeps.length > 1) {
      this.error(s.span, `summarize extraction needs exactly one layer sweep, but this experiment has ${layerSweeps.length} (${layerSweeps.map((w) => `'${w.variable}'`).join(', ')})`,
        'the summary counts events over the layers of one sweep; move the other sweep to another experiment');
      ok = false;
    }
    if (probes !== undefined && !probes.some((p) => p.kind === 'extraction')) {
      this.error(s.span, 'summarize extraction needs an extraction probe in its experiment',
        'add: measure extraction of attention l (or mlp l, heads l, hidden l)');
      ok = false;
    }
    let layers: LayerSet | undefined;
    if (s.layers) {
      layers = this.layerSet(s.layers, { ...scope, inSummary: true });
      if (!layers) return undefined;
      const sweep = layerSweeps[0];
      if (ok && sweep && this.shape && layerSweeps.length === 1) {
        const counted = layersOf(layers, valueIn(new Map()), this.shape.layers, this.windowRule);
        if (!counted.some((l) => sweep.values.includes(l))) {
          this.warn(s.layers.span, `the summary counts no layer: none of ${this.text(s.layers.span)} is in the sweep over '${sweep.variable}'`,
            `the sweep over '${sweep.variable}' is at line ${sweep.span.line}`);
        }
      }
    }
    if (!ok) return undefined;
    return { kind: 'extraction', ...(layers ? { layers } : {}), span: this.span(s.span) };
  }

  // ---- experiments -------------------------------------------------------------------------

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
      const summary = this.summary(s, sweeps, measured?.probes, scope);
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

  // ---- site overrides ----------------------------------------------------------------------

  /**
   * The `site` statements, checked before the model is read because detection needs them; their
   * layers are checked against the model once its shape is known (siteLayersInRange).
   */
  siteOverrides(): CheckedSite[] {
    const out: CheckedSite[] = [];
    for (const stmt of this.statements('site')) {
      const name = stmt.name.name;
      const site = (overridableSites as readonly string[]).includes(name) ? name as OverridableSite : undefined;
      if (!site) this.error(stmt.name.span, `unknown site '${name}'`, didYouMean(name, overridableSites, `sites: ${overridableSites.join(', ')}`));
      const layers = this.overrideLayers(stmt.layers);
      const tensor = this.stringValue(stmt.tensor, 'a tensor name');
      const placeholder = tensor?.match(/\{(?!layer\})[^}]*\}/)?.[0];
      if (placeholder) {
        this.error(stmt.tensor.span, `unknown placeholder ${placeholder} in the tensor name`, 'the only placeholder is {layer}, the layer number');
      }
      if (!site || !layers || tensor === undefined || placeholder) continue;
      const clash = out.find((o) => o.spec.site === site && overlaps(o.spec.layers, layers));
      if (clash) {
        this.error(stmt.span, `site ${site} is overridden twice for the same layer`, `the other override is at line ${clash.stmt.span.line}; give each layer one tensor`);
        continue;
      }
      out.push({ spec: { site, layers, tensor, span: this.span(stmt.span) }, stmt });
    }
    return out;
  }

  /** all, a constant layer or a constant range: what can be read before the model is. */
  overrideLayers(l: A.LayerExpr): 'all' | number[] | undefined {
    if (l.kind === 'all') return 'all';
    const set = l.kind === 'single' || l.kind === 'range' ? this.layerSet(l, emptyScope) : undefined;
    if (l.kind !== 'single' && l.kind !== 'range') {
      this.error(l.span, 'a site override takes all, a layer or a range a..b', 'write e.g. site mlp_act at layers 0..11 = "..."');
    }
    if (set?.kind === 'single' && set.layer.kind === 'int') return [set.layer.value];
    if (set?.kind === 'range' && set.from.kind === 'int' && set.to.kind === 'int') {
      const beyond = [set.from.value, set.to.value].find((v) => v < 0 || v > maxOverrideLayer);
      if (beyond === undefined) return inclusiveRange(set.from.value, set.to.value);
      this.error(l.span, `layer ${beyond} is out of range: a site override names layers 0..${maxOverrideLayer}`,
        'layers are numbered from 0 (the first block); no model has that many');
    }
    return undefined;
  }

  siteLayersInRange(sites: readonly CheckedSite[]): void {
    if (!this.shape) return;
    const L = this.shape.layers;
    for (const { spec, stmt } of sites) {
      const beyond = spec.layers === 'all' ? undefined : spec.layers.find((l) => l >= L);
      if (beyond !== undefined) {
        this.error(stmt.layers.span, `layer ${beyond} is out of range: the model has ${plural(L, 'layer')} (0..${L - 1})`,
          'layers are numbered from 0 (the first block)');
      }
    }
  }

  // ---- head mappings -----------------------------------------------------------------------

  headMappings(): HeadMappingsSpec | undefined {
    const h = this.single('head_mappings');
    if (!h) return undefined;
    let ok = true;
    const layers = new Set<number>();
    for (const item of h.layers) {
      const set = this.layerSet(item, emptyScope);
      if (!set) { ok = false; continue; }
      if (!this.shape) continue;
      const listed = layersOf(set, valueIn(new Map()), this.shape.layers, this.windowRule);
      if (listed.length === 0) {
        this.error(item.span, `layer set ${this.text(item.span)} holds no layer`, 'head_mappings needs at least one layer; widen the set');
        ok = false;
        continue;
      }
      for (const l of listed) layers.add(l);
    }
    const hint = 'syntax: head_mappings layers <layers> top <k>, where each head reports its k largest token → token entries';
    const top = this.intValue(h.top, emptyScope, 'a count');
    let k: number | undefined = top?.kind === 'int' ? top.value : undefined;
    if (k !== undefined && k < 1) {
      this.error(h.top.span, `head_mappings top must be at least 1, got ${k}`, hint);
      k = undefined;
    } else if (k !== undefined && !this.fitsVocabulary(`head_mappings top ${k}`, k, h.top.span,
      () => 'each head reports at most as many pairs as the vocabulary has tokens')) {
      k = undefined;
    }
    if (!ok || k === undefined) return undefined;
    return { layers: [...layers].sort((a, b) => a - b), top: k, span: this.span(h.span) };
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

  run(): CheckResult {
    const choices = this.choices();
    this.windowRule = choices.knockout_window;
    this.resolveParams();
    this.collectPositionDefs();
    const sites = this.siteOverrides();
    const model = this.model(sites);
    this.siteLayersInRange(sites);
    const dataset = this.dataset();
    // From the statement, so a dataset with other errors does not add this one too.
    this.hasCorrupted = (this.statements('dataset')[0]?.fields ?? []).some((f) => f.name.name === 'corrupted');
    const attributesStmt = this.statements('attributes')[0];
    this.hasAttributes = attributesStmt !== undefined;
    const attributes = this.attributes();
    const filter = this.enumValue(this.single('filter'), factFilters, 'known');
    const bos = this.enumValue(this.single('bos'), bosPolicies, 'none');
    const headMappings = this.headMappings();
    // Definitions no experiment uses are still checked.
    for (const [name, def] of this.positionDefs) this.positionDef(name, { kind: 'ref', name, span: def.name.span });
    const experiments = this.experiments();
    if (attributesStmt && !this.usesAttributes) {
      this.warn(attributesStmt.span, 'the attributes statement is not used: no experiment measures attributes_rate',
        'attribute sets are read only for attributes_rate; remove the statement or add the probe');
    }
    const diagnostics = sortDiagnostics(this.diagnostics);
    if (hasErrors(diagnostics) || !model || !dataset) return { diagnostics };
    const params: Record<string, number | string> = {};
    for (const p of this.params.values()) params[p.name] = p.value;
    return {
      program: {
        file: this.absFile, model, dataset, ...(attributes ? { attributes } : {}), filter, bos, choices, params, experiments,
        ...(headMappings ? { headMappings } : {}),
        siteOverrides: sites.map((s) => s.spec),
      },
      diagnostics,
    };
  }
}

/** Checks a parsed document. The model's shape comes from `options.shapeOf`. */
export function check(doc: A.Document, options: CheckOptions): CheckResult {
  return new Checker(doc, options).run();
}
