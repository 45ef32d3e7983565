// Attribute sets for the attributes rate: per subject, the decoded tokens of text about it.
// Both sources go through the model's tokenizer, as the paper's code does with its
// paragraphs: tokenize, decode each token on its own, deduplicate, clean.
//   paragraphs  CSV with columns subject,paragraphs (the paper's format)
//   json        {"subject": ["text", ...]}; each text is tokenized as if it continued a
//               sentence (a byte-level BPE sees ' ' + text, so " Paris" matches candidates)

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { relativePathsHint } from '../lang/diagnostics.js';
import type { AttributesSpec } from '../lang/program.js';
import { attributeSet } from '../measure/attributes.js';
import { runError, unreadable, type RunError } from './errors.js';
import type { Tokenizer } from './tokenizer.js';

export type AttributeSets = ReadonlyMap<string, ReadonlySet<string>>;

export function loadAttributeSets(spec: AttributesSpec, tokenizer: Tokenizer): AttributeSets | RunError {
  const fail = (message: string, hint?: string): RunError =>
    runError('dataset', `${spec.path}: ${message}`, { file: spec.path, span: spec.span, ...(hint ? { hint } : {}) });
  let text: string;
  try {
    text = readFileSync(spec.path, 'utf8').replace(/^\uFEFF/, '');
  } catch (e) {
    return unreadable('dataset', 'the attributes file', spec.path, e, { span: spec.pathSpan, hint: relativePathsHint(spec.pathSpan.file) });
  }
  const texts = new Map<string, string[]>();
  if (spec.format === 'json') {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      return fail(`not valid JSON: ${(e as Error).message}`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) return fail('expected an object mapping each subject to an array of strings');
    for (const [subject, value] of Object.entries(json)) {
      if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) return fail(`subject ${JSON.stringify(subject)}: expected an array of strings`);
      const lead = tokenizer.kind === 'byte-level' ? ' ' : '';
      texts.set(subject, (value as string[]).map((v) => (/^\s/.test(v) ? v : lead + v)));
    }
  } else {
    let rows: Record<string, string>[];
    try {
      rows = parseCsv(text, { columns: true, bom: true, skip_empty_lines: true }) as Record<string, string>[];
    } catch (e) {
      return fail(`not valid CSV: ${(e as Error).message}`);
    }
    if (rows.length && (!('subject' in rows[0]!) || !('paragraphs' in rows[0]!))) {
      return fail('expected the columns subject,paragraphs', 'the paper\'s format: one row per subject, its paragraphs joined by spaces');
    }
    for (const row of rows) texts.set(row['subject']!, [...(texts.get(row['subject']!) ?? []), row['paragraphs']!]);
  }
  const sets = new Map<string, Set<string>>();
  for (const [subject, items] of texts) {
    const decoded = items.flatMap((t) => tokenizer.encode(t).ids.map((id) => tokenizer.decode(id)));
    sets.set(subject, attributeSet(decoded, spec));
  }
  return sets;
}

/**
 * `dissect attributes DIR`: builds the JSON form from text the user has, one UTF-8 file per
 * subject (`DIR/<subject>.txt`, the file name is the subject). The paper's paragraphs file
 * was never released; this is the way to bring one's own.
 */
export function importAttributeTexts(dir: string): Record<string, string[]> | RunError {
  const hint = 'give a folder holding one <subject>.txt file per subject';
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch (e) {
    return unreadable('dataset', 'the folder', dir, e, { hint });
  }
  const out: Record<string, string[]> = {};
  for (const name of names.filter((n) => n.endsWith('.txt'))) {
    const file = join(dir, name);
    let text: string;
    try {
      text = readFileSync(file, 'utf8').replace(/^\uFEFF/, '').trim();
    } catch (e) {
      return unreadable('dataset', 'the attribute text', file, e, { hint });
    }
    if (text) out[name.slice(0, -'.txt'.length)] = [text];
  }
  if (!Object.keys(out).length) return runError('dataset', `${dir}: no non-empty .txt files`, { hint: 'one <subject>.txt file per subject' });
  return out;
}
