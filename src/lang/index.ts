// The front end of the language: text → checked Program, with diagnostics.

import type * as A from './ast.js';
import { buildAst } from './build-ast.js';
import { check, type ShapeOf } from './checker.js';
import { error, sortDiagnostics } from './diagnostics.js';
import { tokenize } from './lexer.js';
import { formatCount, maxNesting, maxSourceLength, type RowLimits } from './limits.js';
import { parseTokens, tooDeepParenthesis } from './parser.js';
import type { Diagnostic, Program } from './program.js';

export type { Document } from './ast.js';
export type { ShapeOf } from './checker.js';
export type { Diagnostic, ModelShape, Program, SourceSpan } from './program.js';
export { allChoices, defaultChoices, findChoice, type Choice, type ChoiceName, type ChoiceOption, type Choices, type ChoiceValue } from './choices.js';
export { commandLineFile, formatDiagnostics, hasErrors } from './diagnostics.js';
export { keywords } from './lexer.js';
export { defaultRowLimits, maxNesting, rankedTokens, totalRowsError, type RowLimits } from './limits.js';

/** A UTF-8 byte-order mark is not part of the text (columns on line 1 stay right). */
function withoutBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

export interface ParseOutput {
  /** Present when the file has no lexical or syntax errors. */
  readonly ast?: A.Document;
  readonly diagnostics: Diagnostic[];
}

/** Lexes and parses; reports every lexical and syntax error found in one pass. */
export function parseDissect(text: string, file: string): ParseOutput {
  const source = withoutBom(text);
  if (source.length > maxSourceLength) {
    const line = source.slice(0, maxSourceLength).split(/\r?\n|\r/).length;
    return {
      diagnostics: [error({ file, line, column: 1 }, `the file is too long: ${formatCount(source.length)} characters, more than ${formatCount(maxSourceLength)}`,
        `the limit is reached on this line; a .dissect file states experiments, and a few thousand characters are plenty`)],
    };
  }
  const lexed = tokenize(source);
  const diagnostics: Diagnostic[] = lexed.errors.map((e) => error({ file, line: e.line, column: e.column }, e.message, e.hint));
  const deep = tooDeepParenthesis(lexed.tokens);
  if (deep) {
    diagnostics.push(error({ file, line: deep.startLine ?? 1, column: deep.startColumn ?? 1 },
      `too deeply nested: more than ${maxNesting} parentheses open here`, 'write the expression with fewer parentheses; the file is not parsed further'));
    return { diagnostics: sortDiagnostics(diagnostics) };
  }
  const lines = source.split(/\r?\n|\r/);
  const parsed = parseTokens(lexed.tokens, lines.length, (lines[lines.length - 1]?.length ?? 0) + 1);
  for (const e of parsed.errors) diagnostics.push(error({ file, line: e.line, column: e.column }, e.message, e.hint));
  if (diagnostics.length > 0) return { diagnostics: sortDiagnostics(diagnostics) };
  return { ast: buildAst(parsed.cst!, source, file), diagnostics };
}

export interface FrontEndOptions {
  /** `--set name=value` overrides; each value is typed like the parameter's default. */
  readonly overrides?: Readonly<Record<string, string>>;
  /** Reads the shape of the model at an absolute .onnx path. */
  readonly shapeOf: ShapeOf;
  /** The rows the experiments may give per fact (default: defaultRowLimits). */
  readonly rowLimits?: RowLimits;
}

export interface FrontEndOutput {
  /** Present when there are no errors (warnings allowed). */
  readonly program?: Program;
  readonly diagnostics: Diagnostic[];
}

/**
 * Parses and checks a .dissect file. `file` names it in diagnostics and locates relative
 * paths (model, tokenizer, dataset are resolved against its folder). Never throws for
 * mistakes in the file or the overrides.
 */
export function frontEnd(text: string, file: string, options: FrontEndOptions): FrontEndOutput {
  const source = withoutBom(text);
  const parsed = parseDissect(source, file);
  if (!parsed.ast) return { diagnostics: parsed.diagnostics };
  return check(parsed.ast, {
    source, overrides: options.overrides ?? {}, shapeOf: options.shapeOf, ...(options.rowLimits ? { rowLimits: options.rowLimits } : {}),
  });
}
