// Tokens of the .dissect language. Keywords are contextual: every keyword also belongs to
// the `Name` category, so `param model = "..."` followed by `model model ...` works and a
// parameter may be called `window` or `dataset`.

import { createToken, Lexer, type IToken, type TokenType } from 'chevrotain';

/** Any word: an identifier or a keyword used as a name. Never produced directly. */
export const Name = createToken({ name: 'Name', pattern: Lexer.NA, label: 'a name' });

export const Identifier = createToken({
  name: 'Identifier',
  pattern: /[A-Za-z_][A-Za-z0-9_]*/,
  categories: [Name],
  label: 'a name',
});

function keyword(word: string): TokenType {
  const tokenName = word.split('_').map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join('');
  return createToken({
    name: tokenName,
    pattern: new RegExp(word),
    longer_alt: Identifier,
    categories: [Name],
    label: `'${word}'`,
  });
}

export const Param = keyword('param');
export const Model = keyword('model');
export const Tokenizer = keyword('tokenizer');
export const Dataset = keyword('dataset');
export const Fields = keyword('fields');
export const Filter = keyword('filter');
export const Bos = keyword('bos');
export const Choose = keyword('choose');
export const Positions = keyword('positions');
export const Experiment = keyword('experiment');
export const For = keyword('for');
export const In = keyword('in');
export const Layers = keyword('layers');
export const Block = keyword('block');
export const At = keyword('at');
export const Heads = keyword('heads');
export const Measure = keyword('measure');
export const All = keyword('all');
export const Window = keyword('window');
export const Attributes = keyword('attributes');
export const Hidden = keyword('hidden');
export const Within = keyword('within');
export const Cancel = keyword('cancel');
export const Patch = keyword('patch');
export const With = keyword('with');
export const Mean = keyword('mean');
export const Of = keyword('of');
export const Layer = keyword('layer');
export const AttentionWeight = keyword('attention_weight');
export const Summarize = keyword('summarize');
export const HeadMappings = keyword('head_mappings');
export const Top = keyword('top');
export const Each = keyword('each');
export const Without = keyword('without');
export const Corrupted = keyword('corrupted');
export const Site = keyword('site');

/** Every keyword token, in declaration order. */
export const keywordTokens: readonly TokenType[] = [
  Param, Model, Tokenizer, Dataset, Fields, Filter, Bos, Choose, Positions, Experiment,
  For, In, Layers, Block, At, Heads, Measure, All, Window,
  Attributes, Hidden, Within, Cancel, Patch, With, Mean, Of, Layer, AttentionWeight, Summarize,
  HeadMappings, Top, Each, Without, Corrupted, Site,
];

/** The keywords as the user writes them. */
export const keywords: readonly string[] = keywordTokens.map((t) => t.LABEL!.slice(1, -1));

export const StringLiteral = createToken({
  name: 'String',
  pattern: /"(?:[^"\\\r\n]|\\.)*"/,
  label: 'a string',
});
/** A string without its closing quote; reported as a lexical error, never parsed. */
export const UnterminatedString = createToken({
  name: 'UnterminatedString',
  pattern: /"(?:[^"\\\r\n]|\\.)*/,
  label: 'an unterminated string',
});
export const Integer = createToken({ name: 'Integer', pattern: /[0-9]+/, label: 'an integer' });

export const Arrow = createToken({ name: 'Arrow', pattern: /->/, label: "'->'" });
export const DotDot = createToken({ name: 'DotDot', pattern: /\.\./, label: "'..'" });
export const Plus = createToken({ name: 'Plus', pattern: /\+/, label: "'+'" });
export const Minus = createToken({ name: 'Minus', pattern: /-/, label: "'-'" });
export const Equals = createToken({ name: 'Equals', pattern: /=/, label: "'='" });
export const Comma = createToken({ name: 'Comma', pattern: /,/, label: "','" });
export const LParen = createToken({ name: 'LParen', pattern: /\(/, label: "'('" });
export const RParen = createToken({ name: 'RParen', pattern: /\)/, label: "')'" });
export const LBracket = createToken({ name: 'LBracket', pattern: /\[/, label: "'['" });
export const RBracket = createToken({ name: 'RBracket', pattern: /\]/, label: "']'" });
export const LBrace = createToken({ name: 'LBrace', pattern: /\{/, label: "'{'" });
export const RBrace = createToken({ name: 'RBrace', pattern: /\}/, label: "'}'" });

/** Tokens whose text is fixed (the grammar prints them quoted). */
export const punctuationTokens: readonly TokenType[] = [
  Arrow, DotDot, Plus, Minus, Equals, Comma, LParen, RParen, LBracket, RBracket, LBrace, RBrace,
];

export const Comment = createToken({ name: 'Comment', pattern: /#[^\r\n]*/, group: Lexer.SKIPPED });
export const WhiteSpace = createToken({
  name: 'WhiteSpace',
  pattern: /[ \t\r\n\f\v]+/,
  group: Lexer.SKIPPED,
  line_breaks: true,
});

/**
 * Lexer order matters: longer or more specific patterns first, keywords before Identifier.
 * A keyword that is a prefix of another (`with` / `within`, `layer` / `layers`) must come
 * after it, or the longer word would fall back to Identifier; so keywords go longest first.
 */
export const allTokens: readonly TokenType[] = [
  WhiteSpace, Comment,
  StringLiteral, UnterminatedString, Integer,
  Arrow, DotDot, Plus, Minus, Equals, Comma, LParen, RParen, LBracket, RBracket, LBrace, RBrace,
  ...[...keywordTokens].sort((a, b) => b.LABEL!.length - a.LABEL!.length),
  Identifier,
  Name,
];

/** Tokens the parser consumes (the lexer-only ones are left out). */
export const parserTokens: readonly TokenType[] = allTokens.filter(
  (t) => t !== WhiteSpace && t !== Comment && t !== UnterminatedString,
);

const lexer = new Lexer(allTokens as TokenType[], { positionTracking: 'full', ensureOptimizations: false });

export interface LexError {
  readonly line: number;
  readonly column: number;
  readonly message: string;
  readonly hint: string;
}

export interface LexResult {
  readonly tokens: IToken[];
  readonly errors: LexError[];
}

/** Splits source text into tokens. Bad characters and unterminated strings become errors. */
export function tokenize(source: string): LexResult {
  const result = lexer.tokenize(source);
  const errors: LexError[] = [];
  for (const e of result.errors) {
    const text = source.slice(e.offset, e.offset + e.length);
    const shown = text.length > 20 ? `${text.slice(0, 20)}…` : text;
    errors.push({
      line: e.line ?? 1,
      column: e.column ?? 1,
      message: text.length === 1 ? `unexpected character '${text}'` : `unexpected characters '${shown}'`,
      hint: 'names are letters, digits and _; strings use double quotes; comments start with #',
    });
  }
  const tokens: IToken[] = [];
  for (const t of result.tokens) {
    if (t.tokenType === UnterminatedString) {
      errors.push({
        line: t.startLine ?? 1,
        column: t.startColumn ?? 1,
        message: 'unterminated string',
        hint: 'close the string with " on the same line',
      });
      // Parse on as if the string were closed, so that one typo gives one error.
      tokens.push({ ...t, image: `${t.image}"`, tokenType: StringLiteral, tokenTypeIdx: StringLiteral.tokenTypeIdx! });
    } else {
      tokens.push(t);
    }
  }
  return { tokens, errors };
}

/** The value of a string literal token: quotes removed, \" and \\ unescaped. */
export function stringValue(image: string): string {
  return image.slice(1, -1).replace(/\\(["\\])/g, '$1');
}
