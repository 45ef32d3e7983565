// Diagnostics: creation helpers, "did you mean" suggestions, and the text format
//   file:line:col: error: message
//     12 | the source line
//        |      ^
//     hint: ...

import { dirname } from 'node:path';
import type { Diagnostic, SourceSpan } from './program.js';

/** Pseudo file name for errors in `--set` overrides; such diagnostics have no source excerpt. */
export const commandLineFile = '<command line>';

export function error(span: SourceSpan, message: string, hint: string): Diagnostic {
  return { span, severity: 'error', message, hint };
}

export function warning(span: SourceSpan, message: string, hint: string): Diagnostic {
  return { span, severity: 'warning', message, hint };
}

export function hasErrors(diagnostics: readonly Diagnostic[]): boolean {
  return diagnostics.some((d) => d.severity === 'error');
}

/** Stable sort by line, then column (the order a reader meets them). */
export function sortDiagnostics(diagnostics: readonly Diagnostic[]): Diagnostic[] {
  return diagnostics
    .map((d, i) => ({ d, i }))
    .sort((a, b) => {
      const fa = a.d.span.file === commandLineFile ? 0 : 1;
      const fb = b.d.span.file === commandLineFile ? 0 : 1;
      return fa - fb || a.d.span.line - b.d.span.line || a.d.span.column - b.d.span.column || a.i - b.i;
    })
    .map(({ d }) => d);
}

/**
 * Edit distance counting a swap of two neighbouring letters as one edit (optimal string
 * alignment), so that `modle` is one typo from `model`, as a reader sees it.
 */
function editDistance(a: string, b: string): number {
  let before: number[] = [];
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      let d = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, before[j - 2]! + 1);
      row.push(d);
    }
    [before, prev] = [prev, row];
  }
  return prev[b.length]!;
}

/** Names longer than this get no suggestion: the distance costs the product of the two lengths. */
const longestSuggested = 100;

/** The closest candidate within a distance that scales with the word's length, if any. */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  if (word.length > longestSuggested) return undefined;
  const limit = Math.max(1, Math.floor(word.length / 3));
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    if (Math.abs(c.length - word.length) > limit) continue; // the distance is at least the difference
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance && d <= limit) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

/** The hint of a file a .dissect file names that cannot be read. */
export const relativePathsHint = (dissectFile: string): string =>
  `paths are relative to the .dissect file's folder (${dirname(dissectFile)})`;

/** "did you mean 'x'?" or, failing that, the fallback. */
export function didYouMean(word: string, candidates: Iterable<string>, fallback: string): string {
  const best = closest(word, candidates);
  return best !== undefined ? `did you mean '${best}'?` : fallback;
}

/** `list`, led by "did you mean 'x'? " when a candidate is close to `word`. */
export function suggestThen(word: string, candidates: Iterable<string>, list: string): string {
  const best = closest(word, candidates);
  return best !== undefined ? `did you mean '${best}'? ${list}` : list;
}

/** The source text under a span, runs of whitespace collapsed to one space. */
export function sourceText(source: string, span: { readonly offset: number; readonly endOffset: number }): string {
  return source.slice(span.offset, span.endOffset).replace(/\s+/g, ' ');
}

function expandTabs(text: string): string {
  let out = '';
  for (const ch of text) out += ch === '\t' ? ' '.repeat(4 - (out.length % 4)) : ch;
  return out;
}

/** Renders diagnostics as text, each with its source line and a caret under the column. */
export function formatDiagnostics(diagnostics: readonly Diagnostic[], sourceText: string): string {
  const lines = sourceText.replace(/^\uFEFF/, '').split(/\r?\n|\r/);
  const blocks: string[] = [];
  for (const d of diagnostics) {
    const { file, line, column } = d.span;
    const out = [`${file}:${line}:${column}: ${d.severity}: ${d.message}`];
    const text = file === commandLineFile ? undefined : lines[line - 1];
    if (text !== undefined) {
      const gutter = String(line);
      const pad = ' '.repeat(gutter.length);
      const caretAt = expandTabs(text.slice(0, Math.max(0, column - 1))).length;
      out.push(`  ${gutter} | ${expandTabs(text)}`.trimEnd());
      out.push(`  ${pad} | ${' '.repeat(caretAt)}^`);
    }
    if (d.hint !== undefined) out.push(`  hint: ${d.hint}`);
    blocks.push(out.join('\n'));
  }
  return blocks.length === 0 ? '' : `${blocks.join('\n')}\n`;
}
