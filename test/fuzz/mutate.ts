// Mutations of .dissect sources, as a careless or hostile user would write them: deletions,
// insertions, swaps, truncation, unicode, huge numbers, repeated statements and deep
// nesting. Seeded, so that every input of a run can be made again from its seed and index.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../src/lang/grammar-export.js';
import { keywords } from '../../src/lang/index.js';
import { mulberry32Float } from '../../src/random.js';

/** A seed source: its text and its path (relative paths in it resolve next to it). */
export interface FuzzSeed { readonly file: string; readonly text: string }

/** The example programs: every statement and experiment form dissect ships. */
export function exampleSeeds(): FuzzSeed[] {
  return ['examples/paper.dissect', 'examples/information-flow.dissect'].map((name) => {
    const file = join(repoRoot, name);
    return { file, text: readFileSync(file, 'utf8') };
  });
}

/** Statements the examples do not use, inserted whole so that their checks are reached too. */
const extraStatements = [
  'patch hidden l at positions subject with corrupted hidden 0',
  'patch hidden 1 at positions subject_last with mean hidden 0',
  'dataset jsonl dataset fields prompt = "p", subject = "s", target = "t", corrupted = "c"',
  'site mlp_act at layers all = "/h.{layer}/mlp/act/Mul_3_output_0"',
  'site q at layers 0..2 = "nope{layer}"',
  'measure top_tokens 5 of attention l without subject at last',
  'measure extraction of attention l without subject_last + last',
  'cancel mlp at layers l at positions subject',
  'cancel attention at layers all',
  'measure attention_weight subject -> last at layer l heads each',
  'block subject -> last at layers l heads 0, 1',
  'block [0, -1] -> [-1] at layers window(l, 2) within 1..3',
  'summarize extraction in layers 0..3',
  'measure attributes_rate of subject_embeddings',
  'measure target_rank of heads l at last',
  'for s in positions each -3..-1',
  'for q in hidden 0, 2..4',
  'positions early = subject_first + [0]',
  'choose ci = none',
  'choose projection = final_norm_unembedding',
  'head_mappings layers 0..1, 3 top 5',
  'attributes paragraphs attributes candidates 50 keep 60',
  'for t in positions each -100000..-1',
  'for h in hidden 0..999999999',
  'for r in layers all, 0..7, all, 1, 2, all',
];

const punctuation = ['->', '..', '+', '-', '=', ',', '(', ')', '[', ']', '{', '}', '"', '#', '\n'];
const hugeNumbers = ['999999999', '100000', '-100000', '4294967296', '9007199254740993', '9'.repeat(400), '0', '-1'];
const unicode = ['é', 'ß', '∀', '\u0000', '\uFEFF', '\u200B', '\u202E', '😀', '\uD800', '\r', '\t', '\u2028', 'Ｌ'];
const positionNames = ['subject', 'nonsubject', 'last', 'subject_first', 'subject_last', 'subject_next', 'all'];

type Random = () => number;

function pick<T>(random: Random, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

function int(random: Random, below: number): number {
  return Math.floor(random() * below);
}

/** A word, number, punctuation mark or character of the kinds the mutations insert. */
function randomToken(random: Random): string {
  switch (int(random, 5)) {
    case 0: return pick(random, keywords);
    case 1: return pick(random, punctuation);
    case 2: return pick(random, hugeNumbers);
    case 3: return pick(random, unicode);
    default: return pick(random, positionNames);
  }
}

/** Whitespace-separated words of a text with their offsets. */
function words(text: string): { start: number; end: number }[] {
  return [...text.matchAll(/\S+/g)].map((m) => ({ start: m.index, end: m.index + m[0].length }));
}

function replaceRange(text: string, start: number, end: number, by: string): string {
  return text.slice(0, start) + by + text.slice(end);
}

/** Replaces one occurrence (chosen at random) of a pattern; the text unchanged when it has none. */
function replaceOne(random: Random, text: string, pattern: RegExp, by: (match: string) => string): string {
  const matches = [...text.matchAll(pattern)];
  if (matches.length === 0) return text;
  const m = pick(random, matches);
  return replaceRange(text, m.index, m.index + m[0].length, by(m[0]));
}

/** Nesting depths and lengths: around the limit, and the sizes that overflowed the stack (issue 12). */
const sizes = [3, 50, 300, 1_000, 5_000, 10_000];
/** Copies of a repeated line: enough to multiply a sweep out, or to make a long file. */
const repeats = [50, 300, 1_000];

/** Deep nesting where the grammar allows it: parentheses, long unions and sums, definition chains. */
function nest(random: Random, text: string): string {
  const n = pick(random, sizes);
  const position = new RegExp(`\\b(${positionNames.join('|')})\\b`, 'g');
  switch (int(random, 4)) {
    case 0: return replaceOne(random, text, position, (name) => `${'('.repeat(n)}${name}${')'.repeat(n)}`);
    case 1: return replaceOne(random, text, position, (name) => Array.from({ length: n }, (_, i) => (i === 0 ? name : pick(random, positionNames))).join(' + '));
    case 2: return replaceOne(random, text, /\b(l|h|start|measured|window)\b(?! in)/g, (name) => `${name}${' + 0'.repeat(n)}`);
    default: {
      const chain = Array.from({ length: n }, (_, i) => `positions p${i} = ${i === 0 ? 'subject' : `p${i - 1} + [${i}]`}`);
      return `${chain.join('\n')}\n${replaceOne(random, text, position, () => `p${n - 1}`)}`;
    }
  }
}

/** One mutation of `text`; `donor` is another seed's text to splice lines from. */
function mutateOnce(random: Random, text: string, donor: string): string {
  const lines = text.split('\n');
  // line operations act on statements, not on the comments and blank lines between them
  const statementLines = lines.flatMap((line, i) => (/^\s*[^\s#]/.test(line) ? [i] : []));
  const someLine = () => (statementLines.length ? pick(random, statementLines) : int(random, lines.length));
  const spots = words(text);
  const at = int(random, text.length + 1);
  switch (int(random, 12)) {
    case 0: { // delete a span of characters
      return replaceRange(text, at, at + 1 + int(random, 40), '');
    }
    case 1: { // delete a word
      if (spots.length === 0) return text;
      const w = pick(random, spots);
      return replaceRange(text, w.start, w.end, '');
    }
    case 2: { // delete a line
      lines.splice(someLine(), 1);
      return lines.join('\n');
    }
    case 3: { // insert a token
      return replaceRange(text, at, at, ` ${randomToken(random)} `);
    }
    case 4: { // insert a line of another source or a statement the examples lack
      const donorLines = donor.split('\n');
      const line = random() < 0.5 ? pick(random, donorLines) : pick(random, extraStatements);
      lines.splice(someLine(), 0, line);
      return lines.join('\n');
    }
    case 5: { // swap two lines
      const i = someLine();
      const j = someLine();
      [lines[i], lines[j]] = [lines[j]!, lines[i]!];
      return lines.join('\n');
    }
    case 6: { // swap two words
      if (spots.length < 2) return text;
      const [a, b] = [pick(random, spots), pick(random, spots)].sort((x, y) => x.start - y.start);
      if (a!.end > b!.start) return text;
      return text.slice(0, a!.start) + text.slice(b!.start, b!.end) + text.slice(a!.end, b!.start) + text.slice(a!.start, a!.end) + text.slice(b!.end);
    }
    case 7: return text.slice(0, at); // truncate
    case 8: return replaceRange(text, at, at, pick(random, unicode).repeat(1 + int(random, 3)));
    case 9: return replaceOne(random, text, /\b[0-9]+\b/g, () => pick(random, hugeNumbers).replace(/^-/, ''));
    case 10: { // repeat a line (two patch statements, two sweeps, a sweep's values many times)
      const i = someLine();
      const copies = random() < 0.8 ? 1 : pick(random, repeats);
      lines.splice(i, 0, ...Array.from({ length: copies }, () => lines[i]!));
      return lines.join('\n');
    }
    default: return nest(random, text);
  }
}

/** The `index`-th input of the run seeded `seed`: a seed source with one to four mutations. */
export function mutant(seeds: readonly FuzzSeed[], seed: number, index: number): FuzzSeed {
  const random = mulberry32Float(seed * 1_000_003 + index);
  const base = pick(random, seeds);
  let text = base.text;
  const count = 1 + int(random, 4);
  for (let i = 0; i < count; i++) text = mutateOnce(random, text, pick(random, seeds).text);
  return { file: base.file, text };
}
