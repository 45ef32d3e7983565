// The checker's state and what every section uses: where diagnostics go, the statements of
// a kind, integer literals, a count against the vocabulary; the scope of sweep variables.
// A section of the checker (src/lang/checker.ts), a class extending the section it builds on.

import { dirname, resolve } from 'node:path';
import type * as A from '../ast.js';
import type { CheckOptions } from '../checker.js';
import type { ChoiceOption } from '../choices.js';
import { commandLineFile, error, suggestThen, warning } from '../diagnostics.js';
import type { Binding } from '../evaluate.js';
import { defaultRowLimits, type RowLimits } from '../limits.js';
import type { Diagnostic, ModelShape, PositionSet, SiteOverrideSpec, SourceSpan } from '../program.js';

interface ParamInfo {
  readonly name: string;
  value: number | string;
  readonly decl: A.ParamStmt;
}

export type SweepVar =
  | { readonly kind: 'layers' | 'hidden'; readonly stmt: A.ForStmt; readonly values: readonly number[]; readonly low: number; readonly high: number }
  | { readonly kind: 'positions'; readonly stmt: A.ForStmt };

/** An inclusive range of integers, not listed. */
export interface IntRange { readonly from: number; readonly to: number }

/** The sweep variables visible where a name is used. */
export interface Scope {
  readonly vars: ReadonlyMap<string, SweepVar>;
  /** Names used, to warn about unused sweep variables. */
  readonly used: Set<string>;
  /** Inside a sweep's own values sweep variables are not allowed. */
  readonly inSweepValues: boolean;
  /** Inside `summarize ... in layers R` sweep variables are not allowed either. */
  readonly inSummary?: boolean;
}

export const emptyScope: Scope = { vars: new Map(), used: new Set(), inSweepValues: false };

/** A binding as the evaluator reads it. */
export function valueIn(b: Binding): (variable: string) => number {
  return (variable) => b.get(variable) ?? NaN;
}


/** A checked `site` statement and the statement, for errors found once the model is read. */
export interface CheckedSite { readonly spec: SiteOverrideSpec; readonly stmt: A.SiteStmt }

export abstract class CheckerBase {
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

  /**
   * `name value` options by name, each known (else an error with a suggestion) and given once
   * (else an error pointing at the first); `ok` is false when one was not.
   */
  namedOptions<N extends string>(
    options: readonly A.NameValueOption[], allowed: readonly N[], what: { readonly unknown: (name: string) => string; readonly owner: string; readonly list: string },
  ): { readonly given: ReadonlyMap<N, A.NameValueOption>; readonly ok: boolean } {
    const given = new Map<N, A.NameValueOption>();
    let ok = true;
    for (const o of options) {
      const name = o.name.name;
      if (!(allowed as readonly string[]).includes(name)) {
        this.error(o.name.span, what.unknown(name), suggestThen(name, allowed, what.list));
        ok = false;
        continue;
      }
      const first = given.get(name as N);
      if (first) {
        this.error(o.name.span, `${what.owner}option '${name}' is given twice`, `the first is at line ${first.span.line}, column ${first.span.column}; keep one`);
        ok = false;
        continue;
      }
      given.set(name as N, o);
    }
    return { given, ok };
  }

  /** The word a `name value` option's value spells (a name, or an integer's text). */
  optionWord(o: A.NameValueOption): string {
    return o.value.kind === 'ref' ? o.value.name : o.value.text;
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
}
