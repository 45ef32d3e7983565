// Writes the grammar/ folder from the live parser and lexer, so the published grammar cannot
// drift from the implementation:
//   grammar/dissect.ebnf           readable EBNF (from the parser's GAST)
//   grammar/diagrams.html          Chevrotain syntax diagrams
//   grammar/dissect.tmLanguage.json  TextMate grammar for editors
//   src/lang/cst.ts                the CST's node types (Chevrotain's generateCstDts), which build-ast.ts reads
// Run after changing the lexer or parser:  npx tsc -p . && node dist/src/lang/grammar-export.js
// (test/lang/grammar.test.ts fails while the committed files are stale).

import { createSyntaxDiagramsCode, generateCstDts, type ISerializedGast, type TokenType } from 'chevrotain';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  Comment, Identifier, Integer, keywords, keywordTokens, punctuationTokens, StringLiteral,
} from './lexer.js';
import { summaryNames } from './check/measures.js';
import { probeNames, siteNames } from './probes.js';
import { parser } from './parser.js';
import { measureNames, namedPositionSets } from './program.js';

export const regenerateCommand = 'npx tsc -p . && node dist/src/lang/grammar-export.js';

/** The repository root (this file lives in dist/src/lang/ once compiled). */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

export const grammarFiles = {
  ebnf: 'grammar/dissect.ebnf',
  diagrams: 'grammar/diagrams.html',
  textmate: 'grammar/dissect.tmLanguage.json',
  cstTypes: 'src/lang/cst.ts',
} as const;

const literalText = new Map<string, string>(
  [...keywordTokens, ...punctuationTokens].map((t) => [t.name, t.LABEL!.slice(1, -1)]),
);

function quote(text: string): string {
  return `"${text}"`;
}

interface Gast extends ISerializedGast {
  name?: string;
  separator?: Gast;
  definition?: Gast[];
}

function seq(items: readonly Gast[] | undefined): string {
  return (items ?? []).map(render).join(' ');
}

/** Wraps a sequence in parentheses unless it is a single item. */
function group(items: readonly Gast[] | undefined): string {
  const inner = seq(items);
  return (items ?? []).length === 1 && !inner.includes(' ') ? inner : `( ${inner} )`;
}

function render(g: Gast): string {
  switch (g.type) {
    case 'Terminal': {
      const literal = literalText.get(g.name!);
      return literal !== undefined ? quote(literal) : g.name!;
    }
    case 'NonTerminal':
      return g.name!;
    case 'Option':
      return `${group(g.definition)}?`;
    case 'Repetition':
      return `${group(g.definition)}*`;
    case 'RepetitionMandatory':
      return `${group(g.definition)}+`;
    case 'RepetitionWithSeparator':
      return `( ${seq(g.definition)} ( ${render(g.separator!)} ${seq(g.definition)} )* )?`;
    case 'RepetitionMandatoryWithSeparator':
      return `${seq(g.definition)} ( ${render(g.separator!)} ${seq(g.definition)} )*`;
    case 'Alternation':
      return `( ${(g.definition ?? []).map((alt) => seq(alt.definition)).join(' | ')} )`;
    default:
      throw new Error(`grammar-export: unexpected GAST node ${g.type}`);
  }
}

function renderRule(rule: Gast): string {
  const head = `${rule.name} ::= `;
  const body = rule.definition ?? [];
  if (body.length === 1 && body[0]!.type === 'Alternation') {
    const alts = body[0]!.definition!.map((alt) => seq(alt.definition));
    const indent = ' '.repeat(head.length - 2);
    return `${head}${alts.join(`\n${indent}| `)}`;
  }
  return `${head}${seq(body)}`;
}

function regexOf(t: TokenType): string {
  const p = t.PATTERN;
  if (p instanceof RegExp) return `/${p.source}/`;
  throw new Error(`grammar-export: token ${t.name} has no regular expression`);
}

/** The grammar in EBNF (W3C style: `?` optional, `*` zero or more, `|` alternatives). */
function renderEbnf(): string {
  const rules = parser.getSerializedGastProductions() as Gast[];
  const lines = [
    '(* The dissect language: syntax of .dissect files.',
    '   Generated from the parser by src/lang/grammar-export.ts; do not edit by hand.',
    `   Regenerate with: ${regenerateCommand} *)`,
    '',
    ...rules.flatMap((r) => [renderRule(r), '']),
    '(* Tokens. Whitespace separates tokens and is otherwise ignored. *)',
    '',
    `Name ::= ${Identifier.name} | ${keywords.map(quote).join(' | ')}`,
    '  (* every keyword can also be used as a name, e.g. a parameter called "window" *)',
    `${Identifier.name} ::= ${regexOf(Identifier)}`,
    `${StringLiteral.name} ::= ${regexOf(StringLiteral)}  (* \\" and \\\\ are escapes *)`,
    `${Integer.name} ::= ${regexOf(Integer)}`,
    `${Comment.name} ::= ${regexOf(Comment)}  (* ignored, like whitespace *)`,
    '',
  ];
  return lines.join('\n');
}

/**
 * Chevrotain's railroad diagrams of every rule, as a standalone HTML page. Chevrotain's page
 * loads its scripts and stylesheet from a CDN; they ship in its npm package, so they are
 * inlined: the page opens offline, from a clone or an archived run.
 */
function renderDiagrams(): string {
  const diagrams = join(dirname(createRequire(import.meta.url).resolve('chevrotain')), '..', '..', 'diagrams');
  const cdn = /https:\/\/unpkg\.com\/chevrotain@[^/]+\/diagrams\/([\w/.-]+)/;
  const inline = (path: string): string => readFileSync(join(diagrams, path), 'utf8').replaceAll('</script', '<\\/script');
  return createSyntaxDiagramsCode(parser.getSerializedGastProductions())
    .replace(new RegExp(`<script src='${cdn.source}'></script>`, 'g'), (_, path: string) => `<script>/* chevrotain/diagrams/${path} */\n${inline(path)}</script>`)
    .replace(new RegExp(`<link rel='stylesheet' href='${cdn.source}'>`, 'g'), (_, path: string) => `<style>/* chevrotain/diagrams/${path} */\n${inline(path)}</style>`);
}

function alternatives(words: readonly string[]): string {
  return `\\b(${words.join('|')})\\b`;
}

/** A TextMate grammar (VS Code, Sublime, GitHub linguist-style editors). */
function renderTextMate(): string {
  const grammar = {
    $schema: 'https://raw.githubusercontent.com/martinring/tmlanguage/master/tmlanguage.json',
    name: 'dissect',
    scopeName: 'source.dissect',
    fileTypes: ['dissect'],
    comment: `Generated by src/lang/grammar-export.ts; regenerate with: ${regenerateCommand}`,
    patterns: [
      { include: '#comment' },
      { include: '#string' },
      { include: '#declaration' },
      { include: '#keyword' },
      { include: '#named-set' },
      { include: '#measure' },
      { include: '#site' },
      { include: '#number' },
      { include: '#operator' },
    ],
    repository: {
      comment: { name: 'comment.line.number-sign.dissect', match: '#.*$' },
      string: {
        name: 'string.quoted.double.dissect',
        begin: '"',
        end: '"|$',
        patterns: [{ name: 'constant.character.escape.dissect', match: '\\\\["\\\\]' }],
      },
      declaration: {
        match: '\\b(param|positions|experiment)\\s+([A-Za-z_][A-Za-z0-9_]*)',
        captures: {
          1: { name: 'keyword.control.dissect' },
          2: { name: 'entity.name.dissect' },
        },
      },
      keyword: { name: 'keyword.control.dissect', match: alternatives(keywords) },
      'named-set': { name: 'support.constant.position-set.dissect', match: alternatives(namedPositionSets) },
      measure: {
        name: 'support.function.measure.dissect',
        match: alternatives([...new Set([...measureNames, ...probeNames, ...summaryNames])]),
      },
      site: { name: 'support.type.site.dissect', match: alternatives(siteNames.filter((w) => !keywords.includes(w))) },
      number: { name: 'constant.numeric.integer.dissect', match: '\\b[0-9]+\\b' },
      operator: {
        patterns: [
          { name: 'keyword.operator.arrow.dissect', match: '->' },
          { name: 'keyword.operator.range.dissect', match: '\\.\\.' },
          { name: 'keyword.operator.set.dissect', match: '[+-]' },
          { name: 'keyword.operator.assignment.dissect', match: '=' },
          { name: 'punctuation.separator.comma.dissect', match: ',' },
        ],
      },
    },
  };
  return `${JSON.stringify(grammar, null, 2)}\n`;
}

/** The CST's node types, one per parser rule, with each child list typed (optional where the rule may omit it). */
function renderCstTypes(): string {
  return `// Generated from the parser's rules by src/lang/grammar-export.ts (${regenerateCommand}); do not edit.\n\n` +
    generateCstDts(parser.getGAstProductions());
}

/** Every generated file: repository-relative path → content. */
export function renderAll(): Record<string, string> {
  return {
    [grammarFiles.ebnf]: renderEbnf(),
    [grammarFiles.diagrams]: renderDiagrams(),
    [grammarFiles.textmate]: renderTextMate(),
    [grammarFiles.cstTypes]: renderCstTypes(),
  };
}

export function main(root = repoRoot): void {
  for (const [path, content] of Object.entries(renderAll())) {
    writeFileSync(join(root, path), content);
    console.log(`wrote ${path}`);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
