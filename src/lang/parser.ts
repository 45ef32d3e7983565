// The concrete-syntax parser. Error recovery is on, so one pass reports several syntax
// errors; the CST of a file with errors is not turned into an AST.

import {
  CstParser, EOF, tokenMatcher, type CstNode, type IParserErrorMessageProvider, type IRecognitionException,
  type IToken, type TokenType,
} from 'chevrotain';
import {
  All, Arrow, At, AttentionWeight, Attributes, Block, Bos, Cancel, Choose, Comma, Dataset, DotDot, Each, Equals,
  Experiment, Fields, Filter, For, HeadMappings, Heads, Hidden, In, Integer, Layer, Layers, LBrace, LBracket, LParen,
  Corrupted, Mean, Measure, Minus, Model, Name, Of, Param, parserTokens, Patch, Plus, Positions, RBrace, RBracket, RParen,
  Site, StringLiteral, Summarize, Tokenizer, Top, Window, With, Within, Without, Identifier,
} from './lexer.js';
import { closest } from './diagnostics.js';
import { maxNesting } from './limits.js';

function describeToken(tok: IToken): string {
  if (tok.tokenType === EOF) return 'the end of the file';
  return `'${tok.image}'`;
}

/** True when `actual` starts on a later line than `previous` ends: the line ended too early. */
function onLaterLine(actual: IToken, previous: IToken | undefined): boolean {
  if (!previous || actual.tokenType === EOF) return false;
  const a = actual.startLine ?? NaN;
  const p = previous.endLine ?? NaN;
  return Number.isFinite(a) && Number.isFinite(p) && a > p;
}

function describeFound(actual: IToken, previous: IToken | undefined): string {
  return onLaterLine(actual, previous) ? 'the end of the line' : describeToken(actual);
}

function describeType(t: TokenType): string {
  return t.LABEL ?? t.name;
}

function listOf(items: readonly string[]): string {
  const unique = [...new Set(items)];
  if (unique.length <= 1) return unique[0] ?? 'nothing';
  return `${unique.slice(0, -1).join(', ')} or ${unique[unique.length - 1]}`;
}

/** One-line messages in the project's style (Chevrotain's defaults span several lines). */
const messages: IParserErrorMessageProvider = {
  buildMismatchTokenMessage({ expected, actual, previous }) {
    if (expected === EOF) return `expected a statement, found ${describeToken(actual)}`;
    return `expected ${describeType(expected)}, found ${describeFound(actual, previous)}`;
  },
  buildNotAllInputParsedMessage({ firstRedundant }) {
    return `expected a statement, found ${describeToken(firstRedundant)}`;
  },
  buildNoViableAltMessage({ expectedPathsPerAlt, actual, previous }) {
    const firsts = expectedPathsPerAlt.flat().map((path) => describeType(path[0]!));
    return `expected ${listOf(firsts)}, found ${describeFound(actual[0]!, previous)}`;
  },
  buildEarlyExitMessage({ expectedIterationPaths, actual, previous }) {
    const firsts = expectedIterationPaths.map((path) => describeType(path[0]!));
    return `expected ${listOf(firsts)}, found ${describeFound(actual[0]!, previous)}`;
  },
};

/**
 * Syntax errors reported at most. Each error the parser recovers from inside a repetition
 * re-syncs one level deeper, so a long file of broken lines would cost quadratic time (and
 * stack); after this many the parser stops.
 */
export const maxSyntaxErrors = 100;

/** Thrown from a rule to end a parse that has reported maxSyntaxErrors. */
class TooManySyntaxErrors extends Error {}

/** Keywords that begin a top-level statement. */
const statementKeywords: readonly TokenType[] = [Param, Model, Dataset, Attributes, Filter, Bos, Choose, Positions, HeadMappings, Site, Experiment];
/** Keywords that begin a statement inside an experiment. */
const itemKeywords: readonly TokenType[] = [For, Block, Cancel, Patch, Measure, Summarize];
/** Keywords that begin a statement (at the top level or inside an experiment). */
const statementStarts: readonly TokenType[] = [...statementKeywords, ...itemKeywords];

export class DissectParser extends CstParser {
  constructor() {
    super(parserTokens as TokenType[], {
      recoveryEnabled: true,
      nodeLocationTracking: 'full',
      errorMessageProvider: messages,
      maxLookahead: 3,
    });
    this.performSelfAnalysis();
  }

  /**
   * A word may serve as a name unless it is a statement keyword at the start of a line: then
   * the previous line ended too early (`for l in layers 1..` followed by `measure rank`).
   */
  private nameAllowed(): boolean {
    const next = this.LA(1);
    if (!statementStarts.includes(next.tokenType)) return true;
    const previous = this.LA(0) as IToken | undefined;
    const p = previous?.endLine ?? NaN;
    const n = next.startLine ?? NaN;
    return !(Number.isFinite(p) && Number.isFinite(n) && n > p);
  }

  public document = this.RULE('document', () => {
    this.MANY(() => this.SUBRULE(this.statement));
  });

  /** Ends the parse once it has recorded maxSyntaxErrors (the parser rethrows what is not a syntax error). */
  private stopAfterTooManyErrors(): void {
    if (this.errors.length >= maxSyntaxErrors) throw new TooManySyntaxErrors();
  }

  public statement = this.RULE('statement', () => {
    this.stopAfterTooManyErrors();
    this.OR([
      { ALT: () => this.SUBRULE(this.paramStatement) },
      { ALT: () => this.SUBRULE(this.modelStatement) },
      { ALT: () => this.SUBRULE(this.datasetStatement) },
      { ALT: () => this.SUBRULE(this.attributesStatement) },
      { ALT: () => this.SUBRULE(this.filterStatement) },
      { ALT: () => this.SUBRULE(this.bosStatement) },
      { ALT: () => this.SUBRULE(this.chooseStatement) },
      { ALT: () => this.SUBRULE(this.positionsStatement) },
      { ALT: () => this.SUBRULE(this.headMappingsStatement) },
      { ALT: () => this.SUBRULE(this.siteStatement) },
      { ALT: () => this.SUBRULE(this.experimentStatement) },
    ]);
  });

  public paramStatement = this.RULE('paramStatement', () => {
    this.CONSUME(Param);
    this.CONSUME(Name);
    this.CONSUME(Equals);
    this.OR([
      { ALT: () => this.CONSUME(StringLiteral) },
      { ALT: () => this.CONSUME(Integer) },
    ]);
  });

  public modelStatement = this.RULE('modelStatement', () => {
    this.CONSUME(Model);
    this.SUBRULE(this.value);
    this.OPTION(() => {
      this.CONSUME(Tokenizer);
      this.SUBRULE2(this.value);
    });
  });

  /** A string literal or the name of a string parameter. */
  public value = this.RULE('value', () => {
    this.OR([
      { ALT: () => this.CONSUME(StringLiteral) },
      { GATE: () => this.nameAllowed(), ALT: () => this.CONSUME(Name) },
    ]);
  });

  public datasetStatement = this.RULE('datasetStatement', () => {
    this.CONSUME(Dataset);
    this.CONSUME(Name);
    this.SUBRULE(this.value);
    this.OPTION(() => {
      this.CONSUME(Fields);
      this.AT_LEAST_ONE_SEP({ SEP: Comma, DEF: () => this.SUBRULE(this.field) });
    });
  });

  public field = this.RULE('field', () => {
    this.CONSUME(Name);
    this.CONSUME(Equals);
    this.SUBRULE(this.value);
  });

  /** `attributes <format> <path> [<option> <value>]...`; options are checked by name. */
  public attributesStatement = this.RULE('attributesStatement', () => {
    this.CONSUME(Attributes);
    this.CONSUME(Name);
    this.SUBRULE(this.value);
    this.MANY({ GATE: () => this.nameAllowed(), DEF: () => this.SUBRULE(this.attributeOption) });
  });

  public attributeOption = this.RULE('attributeOption', () => {
    this.CONSUME(Name);
    this.OR([
      { ALT: () => this.CONSUME(Integer) },
      { GATE: () => this.nameAllowed(), ALT: () => this.CONSUME2(Name) },
    ]);
  });

  public filterStatement = this.RULE('filterStatement', () => {
    this.CONSUME(Filter);
    this.CONSUME(Name);
  });

  public bosStatement = this.RULE('bosStatement', () => {
    this.CONSUME(Bos);
    this.CONSUME(Name);
  });

  public chooseStatement = this.RULE('chooseStatement', () => {
    this.CONSUME(Choose);
    this.CONSUME(Name);
    this.CONSUME(Equals);
    this.CONSUME2(Name);
  });

  public positionsStatement = this.RULE('positionsStatement', () => {
    this.CONSUME(Positions);
    this.CONSUME(Name);
    this.CONSUME(Equals);
    this.SUBRULE(this.positionExpr);
  });

  /** `head_mappings layers <layers>, ... top <k>`: each head's OV circuit read in token space. */
  public headMappingsStatement = this.RULE('headMappingsStatement', () => {
    this.CONSUME(HeadMappings);
    this.CONSUME(Layers);
    this.AT_LEAST_ONE_SEP({ SEP: Comma, DEF: () => this.SUBRULE(this.layerSet) });
    this.CONSUME(Top);
    this.SUBRULE(this.intValue);
  });

  /** `site <name> at layers <layers> = <tensor>`: names a site's tensor where detection fails. */
  public siteStatement = this.RULE('siteStatement', () => {
    this.CONSUME(Site);
    this.CONSUME(Name);
    this.CONSUME(At);
    this.CONSUME(Layers);
    this.SUBRULE(this.layerSet);
    this.CONSUME(Equals);
    this.SUBRULE(this.value);
  });

  public experimentStatement = this.RULE('experimentStatement', () => {
    this.CONSUME(Experiment);
    this.CONSUME(Name);
    this.CONSUME(LBrace);
    this.MANY(() => this.SUBRULE(this.experimentItem));
    this.CONSUME(RBrace);
  });

  public experimentItem = this.RULE('experimentItem', () => {
    this.stopAfterTooManyErrors();
    this.OR([
      { ALT: () => this.SUBRULE(this.forStatement) },
      { ALT: () => this.SUBRULE(this.blockStatement) },
      { ALT: () => this.SUBRULE(this.cancelStatement) },
      { ALT: () => this.SUBRULE(this.patchStatement) },
      { ALT: () => this.SUBRULE(this.measureStatement) },
      { ALT: () => this.SUBRULE(this.summarizeStatement) },
    ]);
  });

  public forStatement = this.RULE('forStatement', () => {
    this.CONSUME(For);
    this.CONSUME(Name);
    this.CONSUME(In);
    this.OR([
      {
        ALT: () => {
          this.CONSUME(Layers);
          this.AT_LEAST_ONE_SEP({ SEP: Comma, DEF: () => this.SUBRULE(this.layerSet) });
        },
      },
      {
        ALT: () => {
          this.CONSUME(Positions);
          this.AT_LEAST_ONE_SEP2({ SEP: Comma, DEF: () => this.SUBRULE(this.positionSweepItem) });
        },
      },
      {
        ALT: () => {
          this.CONSUME(Hidden);
          this.AT_LEAST_ONE_SEP3({ SEP: Comma, DEF: () => this.SUBRULE2(this.layerSet) });
        },
      },
    ]);
  });

  /** A value of a position sweep: a position set, or `each a..b`, one singleton set per index. */
  public positionSweepItem = this.RULE('positionSweepItem', () => {
    this.OR([
      {
        ALT: () => {
          this.CONSUME(Each);
          this.OPTION(() => this.CONSUME(Minus));
          this.CONSUME(Integer);
          this.CONSUME(DotDot);
          this.OPTION2(() => this.CONSUME2(Minus));
          this.CONSUME2(Integer);
        },
      },
      { ALT: () => this.SUBRULE(this.positionExpr) },
    ]);
  });

  public blockStatement = this.RULE('blockStatement', () => {
    this.CONSUME(Block);
    this.SUBRULE(this.positionExpr);
    this.CONSUME(Arrow);
    this.SUBRULE2(this.positionExpr);
    this.CONSUME(At);
    this.CONSUME(Layers);
    this.SUBRULE(this.layerSet);
    this.OPTION(() => {
      this.CONSUME(Heads);
      this.SUBRULE(this.headSet);
    });
  });

  public headSet = this.RULE('headSet', () => {
    this.OR([
      { ALT: () => this.CONSUME(All), IGNORE_AMBIGUITIES: true },
      {
        ALT: () => this.AT_LEAST_ONE_SEP({ SEP: Comma, DEF: () => this.SUBRULE(this.intValue) }),
        IGNORE_AMBIGUITIES: true,
      },
    ]);
  });

  /** `cancel <sublayer> at layers <layers> [at positions <set>]`; the sublayer is checked by name. */
  public cancelStatement = this.RULE('cancelStatement', () => {
    this.CONSUME(Cancel);
    this.CONSUME(Name);
    this.CONSUME(At);
    this.CONSUME(Layers);
    this.SUBRULE(this.layerSet);
    this.OPTION(() => {
      this.CONSUME2(At);
      this.CONSUME(Positions);
      this.SUBRULE(this.positionExpr);
    });
  });

  public patchStatement = this.RULE('patchStatement', () => {
    this.CONSUME(Patch);
    this.CONSUME(Hidden);
    this.SUBRULE(this.intExpr);
    this.CONSUME(At);
    this.CONSUME(Positions);
    this.SUBRULE(this.positionExpr);
    this.CONSUME(With);
    this.OPTION(() => this.OR([
      { ALT: () => this.CONSUME(Mean) },
      { ALT: () => this.CONSUME(Corrupted) },
    ]));
    this.CONSUME2(Hidden);
    this.SUBRULE2(this.intExpr);
  });

  public measureStatement = this.RULE('measureStatement', () => {
    this.CONSUME(Measure);
    this.AT_LEAST_ONE_SEP({ SEP: Comma, DEF: () => this.SUBRULE(this.measureItem) });
  });

  /**
   * An output measure (`rank`), a probe of a site (`top_tokens 10 of hidden l + 1 at last`)
   * or an attention weight (`attention_weight subject -> last at layer l heads each`).
   * Names, counts and sites are checked by the checker.
   */
  public measureItem = this.RULE('measureItem', () => {
    this.OR([
      {
        ALT: () => {
          this.CONSUME(AttentionWeight);
          this.SUBRULE(this.positionExpr);
          this.CONSUME(Arrow);
          this.SUBRULE2(this.positionExpr);
          this.CONSUME(At);
          this.CONSUME(Layer);
          this.SUBRULE(this.intExpr);
          this.OPTION(() => {
            this.CONSUME(Heads);
            this.CONSUME(Name);
          });
        },
        IGNORE_AMBIGUITIES: true,
      },
      {
        ALT: () => {
          this.CONSUME2(Name);
          // A count (`top_tokens 10`, or an integer parameter); `of` starts the site instead.
          this.OPTION2({
            GATE: () => this.LA(1).tokenType !== Of && this.nameAllowed(),
            DEF: () => this.SUBRULE(this.intValue),
          });
          this.OPTION3(() => {
            this.CONSUME(Of);
            this.SUBRULE(this.site);
            // options of the probe, `steps 16 baseline zero`: a word and its value on the site's line
            this.MANY({ GATE: () => this.probeOptionFollows(), DEF: () => this.SUBRULE(this.probeOption) });
            // `without S`: the attention update recomputed with the keys S removed
            this.OPTION5(() => {
              this.CONSUME(Without);
              this.SUBRULE4(this.positionExpr);
            });
            this.OPTION4(() => {
              this.CONSUME2(At);
              this.SUBRULE3(this.positionExpr);
            });
          });
        },
        IGNORE_AMBIGUITIES: true,
      },
    ]);
  });

  /** `<name> <integer | name>`: a probe's option; names and values are checked by the checker. */
  public probeOption = this.RULE('probeOption', () => {
    this.CONSUME(Name);
    this.OR([
      { ALT: () => this.CONSUME(Integer) },
      { ALT: () => this.CONSUME2(Name) },
    ]);
  });

  /** A word that is not `at` / `without`, on the line it may continue, followed by a value: a probe option. */
  private probeOptionFollows(): boolean {
    const [word, value] = [this.LA(1), this.LA(2)];
    return tokenMatcher(word, Name) && word.tokenType !== At && word.tokenType !== Without && this.nameAllowed()
      && (value.tokenType === Integer || (tokenMatcher(value, Name) && !statementStarts.includes(value.tokenType)));
  }

  /**
   * `hidden E`, `attention E`, `mlp E`, `heads E`; the kind is checked by name.
   * `subject_embeddings` takes no index (an index written after it is reported by the checker).
   */
  public site = this.RULE('site', () => {
    this.OR([
      { GATE: () => this.LA(1).image === 'subject_embeddings' && !this.indexFollows(), ALT: () => this.CONSUME(Name), IGNORE_AMBIGUITIES: true },
      {
        ALT: () => {
          this.CONSUME2(Name);
          this.SUBRULE(this.intExpr);
        },
      },
    ]);
  });

  /** The token after the site's word could start an index (an integer, or a name on the same line that is not `at` / `without`). */
  private indexFollows(): boolean {
    const next = this.LA(2);
    if (next.tokenType === Integer) return true;
    if (next.tokenType === At || next.tokenType === Without || next.tokenType === EOF) return false;
    if (!tokenMatcher(next, Name)) return false;
    return !statementStarts.includes(next.tokenType) || next.startLine === this.LA(1).endLine;
  }

  public summarizeStatement = this.RULE('summarizeStatement', () => {
    this.CONSUME(Summarize);
    this.CONSUME(Name);
    this.OPTION(() => {
      this.CONSUME(In);
      this.CONSUME(Layers);
      this.SUBRULE(this.layerSet);
    });
  });

  /** Union and difference, left-associative, one precedence level. */
  public positionExpr = this.RULE('positionExpr', () => {
    this.SUBRULE(this.positionTerm);
    this.MANY(() => {
      this.OR([
        { ALT: () => this.CONSUME(Plus) },
        { ALT: () => this.CONSUME(Minus) },
      ]);
      this.SUBRULE2(this.positionTerm);
    });
  });

  public positionTerm = this.RULE('positionTerm', () => {
    this.OR([
      { GATE: () => this.nameAllowed(), ALT: () => this.CONSUME(Name) },
      { ALT: () => this.SUBRULE(this.indexList) },
      {
        ALT: () => {
          this.CONSUME(LParen);
          this.SUBRULE(this.positionExpr);
          this.CONSUME(RParen);
        },
      },
    ]);
  });

  public indexList = this.RULE('indexList', () => {
    this.CONSUME(LBracket);
    this.AT_LEAST_ONE_SEP({ SEP: Comma, DEF: () => this.SUBRULE(this.signedInteger) });
    this.CONSUME(RBracket);
  });

  public signedInteger = this.RULE('signedInteger', () => {
    this.OPTION(() => this.CONSUME(Minus));
    this.CONSUME(Integer);
  });

  /** A layer set, optionally clipped: `start..start + 10 within 0..39`. */
  public layerSet = this.RULE('layerSet', () => {
    this.SUBRULE(this.layerBase);
    this.OPTION(() => {
      this.CONSUME(Within);
      this.SUBRULE(this.intExpr);
      this.CONSUME(DotDot);
      this.SUBRULE2(this.intExpr);
    });
  });

  public layerBase = this.RULE('layerBase', () => {
    this.OR([
      { ALT: () => this.CONSUME(All), IGNORE_AMBIGUITIES: true },
      {
        ALT: () => {
          this.CONSUME(Window);
          this.CONSUME(LParen);
          this.SUBRULE(this.intExpr);
          this.CONSUME(Comma);
          this.SUBRULE2(this.intExpr);
          this.CONSUME(RParen);
        },
        IGNORE_AMBIGUITIES: true,
      },
      {
        ALT: () => {
          this.SUBRULE3(this.intExpr);
          this.OPTION(() => {
            this.CONSUME(DotDot);
            this.SUBRULE4(this.intExpr);
          });
        },
        IGNORE_AMBIGUITIES: true,
      },
    ]);
  });

  /** Integer arithmetic, left-associative: `l + 1`, `start + 10 - k`. */
  public intExpr = this.RULE('intExpr', () => {
    this.SUBRULE(this.intValue);
    this.MANY(() => {
      this.OR([
        { ALT: () => this.CONSUME(Plus) },
        { ALT: () => this.CONSUME(Minus) },
      ]);
      this.SUBRULE2(this.intValue);
    });
  });

  /** A non-negative integer literal, an integer parameter or a layer or hidden sweep variable. */
  public intValue = this.RULE('intValue', () => {
    this.OR([
      { ALT: () => this.CONSUME(Integer) },
      { GATE: () => this.nameAllowed(), ALT: () => this.CONSUME(Name) },
    ]);
  });
}

/** The parser is stateless between runs; one instance serves every parse. */
export const parser = new DissectParser();

/** A hint per rule: the syntax of the construct being parsed when the error happened. */
const ruleHints: Record<string, string> = {
  document: 'a statement starts with param, model, dataset, attributes, filter, bos, choose, positions, head_mappings, site or experiment',
  statement: 'a statement starts with param, model, dataset, attributes, filter, bos, choose, positions, head_mappings, site or experiment',
  paramStatement: 'syntax: param <name> = "<string>" | <integer>',
  modelStatement: 'syntax: model <path> tokenizer <path>   (each a "string" or a parameter name)',
  value: 'a value is a "string" literal or the name of a string parameter',
  datasetStatement: 'syntax: dataset <format> <path> [fields prompt = "...", subject = "...", target = "..."]',
  field: 'syntax: fields prompt = "<column>", subject = "<column>", target = "<column>"',
  attributesStatement: 'syntax: attributes json | paragraphs <path> [candidates <n>] [keep <n>] [min_length <n>] [stopwords english | none]',
  attributeOption: 'options: candidates <n>, keep <n>, min_length <n>, stopwords english | none',
  filterStatement: 'syntax: filter known | none',
  bosStatement: 'syntax: bos none | prepend',
  chooseStatement: 'syntax: choose <choice> = <value>',
  positionsStatement: 'syntax: positions <name> = <position set>',
  headMappingsStatement: 'syntax: head_mappings layers <layers>, ... top <k>',
  siteStatement: 'syntax: site <site> at layers all | <n> | <a>..<b> = "<tensor name>"   ({layer} in the name stands for the layer)',
  experimentStatement: 'syntax: experiment <name> { for ... / block ... / cancel ... / patch ... / measure ... / summarize ... }',
  experimentItem: 'inside an experiment: for, block, cancel, patch, measure or summarize',
  forStatement: 'syntax: for <variable> in layers <layers>, ...  |  in hidden <indices>, ...  |  in positions <set>, ...  |  in positions each <a>..<b>',
  positionSweepItem: 'a position sweep value: a position set, or each <a>..<b> (the sets [a], ..., [b]; negative indices count from the end)',
  blockStatement: 'syntax: block <positions> -> <positions> at layers <layers> [heads <n>, ...]',
  headSet: 'syntax: heads all | heads <n>, <n>, ...',
  cancelStatement: 'syntax: cancel mlp | attention at layers <layers> [at positions <set>]',
  patchStatement: 'syntax: patch hidden <n> at positions <set> with [mean | corrupted] hidden <n>',
  measureStatement: 'syntax: measure <measure>, <measure>, ...',
  measureItem: 'a measure: rank | <probe> of <site> [without <positions>] [at <positions>] | top_tokens <k> of <site> | attention_weight <set> -> <set> at layer <n> | integrated_gradients of hidden <n> [steps <n>] [baseline mean | zero]',
  probeOption: 'a probe option: steps <n> or baseline mean | zero (integrated_gradients)',
  site: 'a site: hidden <n> | attention <n> | mlp <n> | heads <n>',
  summarizeStatement: 'syntax: summarize extraction [in layers <layers>]',
  positionExpr: 'a position set: a name, [indices], a + b, a - b or ( ... )',
  positionTerm: 'a position set: a name, [indices], a + b, a - b or ( ... )',
  indexList: 'syntax: [0, 2, -1]  (negative indices count from the end)',
  signedInteger: 'syntax: [0, 2, -1]  (negative indices count from the end)',
  layerSet: 'layers: all | <n> | <a>..<b> | window(<center>, <size>), optionally followed by within <a>..<b>',
  layerBase: 'layers: all | <n> | <a>..<b> | window(<center>, <size>)',
  intExpr: 'an integer: a literal, an integer parameter or a layer or hidden sweep variable, with + and -',
  intValue: 'an integer literal, an integer parameter or a layer or hidden sweep variable',
};

export interface SyntaxError {
  readonly line: number;
  readonly column: number;
  readonly message: string;
  readonly hint: string;
}

function hintFor(e: IRecognitionException): string {
  const stack = e.context?.ruleStack ?? [];
  for (let i = stack.length - 1; i >= 0; i--) {
    const h = ruleHints[stack[i]!];
    if (h !== undefined) return h;
  }
  return ruleHints.statement!;
}

export interface ParseResult {
  /** The whole file's CST when it has no errors (with errors, it is only good for diagnostics, or absent). */
  readonly cst: CstNode | undefined;
  readonly errors: SyntaxError[];
}

/**
 * The first '(' opened more than maxNesting deep, if any. The parser recurses once per level,
 * so a file with one is refused before it is parsed (index lists and braces do not nest).
 */
export function tooDeepParenthesis(tokens: readonly IToken[]): IToken | undefined {
  let depth = 0;
  for (const t of tokens) {
    if (t.tokenType === LParen && ++depth > maxNesting) return t;
    if (t.tokenType === RParen) depth = Math.max(0, depth - 1);
  }
  return undefined;
}

/** A syntax error with the parser's exception behind it. */
interface RecognisedError {
  readonly exception: IRecognitionException;
  readonly error: SyntaxError;
}

/**
 * Parses tokens into a CST; errors carry 1-based positions. When the parser gives up before
 * the end of the file, parsing resumes at the next statement keyword that starts a line, so
 * errors in later statements are reported too (the CST is then only good for diagnostics).
 */
function parseOnce(tokens: IToken[], lastLine: number, lastColumn: number): { cst: CstNode | undefined; errors: RecognisedError[] } {
  const errors: RecognisedError[] = [];
  let cst: CstNode | undefined;
  let start = 0;
  for (let first = true; first || start < tokens.length; first = false) {
    parser.input = tokens.slice(start);
    let part: CstNode | undefined;
    try {
      part = parser.document();
    } catch (e) {
      if (!(e instanceof TooManySyntaxErrors)) throw e;
    }
    if (first) cst = part;
    for (const e of parser.errors) errors.push({ exception: e, error: toSyntaxError(e, tokens, lastLine, lastColumn) });
    if (parser.errors.length === 0) break;
    if (!part || errors.length >= maxSyntaxErrors) {
      errors.splice(maxSyntaxErrors);
      const last = errors[errors.length - 1]!;
      errors.push({ ...last, error: { ...last.error, message: `too many syntax errors: the first ${errors.length} are reported`, hint: 'fix these, then check again for the rest' } });
      break;
    }
    const end = part.location?.endOffset;
    const consumedTo = end === undefined || Number.isNaN(end) ? -1 : end;
    const next = tokens.findIndex((t, i) =>
      i > start && t.startOffset > consumedTo && statementKeywords.includes(t.tokenType) &&
      (tokens[i - 1]!.endLine ?? 0) < (t.startLine ?? 0));
    if (next === -1) break;
    start = next;
  }
  return { cst, errors };
}

/**
 * Misspelt statement keywords repaired per file at most. Each repair parses the file again,
 * so the bound keeps a file of broken lines (the fuzzer writes them) linear in its size.
 */
const maxStatementRepairs = 20;

/** The word the user writes for a keyword token. */
const word = (t: TokenType): string => t.LABEL!.slice(1, -1);

/**
 * A syntax error at a plain word that starts a line where a statement may start (at the top
 * level, or inside an experiment's braces): an unknown statement, like `blok` or `mesure`.
 * The keywords that could start one there are what it is compared with.
 */
function unknownStatement(e: IRecognitionException, tokens: readonly IToken[]): { index: number; keywords: readonly TokenType[] } | undefined {
  if (e.token.tokenType !== Identifier) return undefined;
  const stack = e.context?.ruleStack ?? [];
  const rule = stack[stack.length - 1] ?? 'document';
  const keywords = rule === 'document' || rule === 'statement' ? statementKeywords
    : rule === 'experimentStatement' || rule === 'experimentItem' ? itemKeywords : undefined;
  if (!keywords) return undefined;
  const index = tokens.findIndex((t) => t.startOffset === e.token.startOffset);
  const startsLine = index === 0 || (index > 0 && (tokens[index - 1]!.endLine ?? 0) < (e.token.startLine ?? 0));
  return index >= 0 && startsLine ? { index, keywords } : undefined;
}

/**
 * Parses tokens into a CST and reports every broken statement. A misspelt statement keyword
 * (`blok`, `experimnt`) is reported with the keyword it is closest to, and parsing goes on
 * as if that keyword had been written, so the statements after it (inside the same
 * experiment too) are checked in the same pass; an unknown word with no close keyword is
 * reported and its statement skipped up to the next line that starts a statement.
 */
export function parseTokens(tokens: IToken[], lastLine: number, lastColumn: number): ParseResult {
  const repaired: SyntaxError[] = [];
  let current = tokens;
  for (let repairs = 0; ; repairs++) {
    const parsed = parseOnce(current, lastLine, lastColumn);
    const broken = repairs < maxStatementRepairs
      ? parsed.errors.map((e) => ({ e, at: unknownStatement(e.exception, current) })).find((b) => b.at !== undefined)
      : undefined;
    if (!broken) return { cst: parsed.cst, errors: [...repaired, ...parsed.errors.map((e) => e.error)] };
    const { index, keywords } = broken.at!;
    const token = current[index]!;
    const keyword = keywords.find((k) => word(k) === closest(token.image, keywords.map(word)));
    const starts = `${keywords === itemKeywords ? 'inside an experiment, a statement' : 'a statement'} starts with ${listOf(keywords.map(word))}`;
    repaired.push({
      ...broken.e.error,
      message: `unknown statement '${token.image}'`,
      hint: keyword ? `did you mean '${word(keyword)}'? (${starts})` : starts,
    });
    if (keyword) {
      current = current.map((t, i) => (i === index ? { ...t, tokenType: keyword, tokenTypeIdx: keyword.tokenTypeIdx! } : t));
    } else {
      const next = current.findIndex((t, i) => i > index && (statementStarts.includes(t.tokenType) || t.tokenType === RBrace)
        && (current[i - 1]!.endLine ?? 0) < (t.startLine ?? 0));
      current = [...current.slice(0, index), ...(next === -1 ? [] : current.slice(next))];
    }
  }
}

function toSyntaxError(e: IRecognitionException, tokens: IToken[], lastLine: number, lastColumn: number): SyntaxError {
  const previous = (e as { previousToken?: IToken }).previousToken;
  const atEnd = e.token.tokenType === EOF || Number.isNaN(e.token.startOffset);
  if (onLaterLine(e.token, previous)) {
    // The line ended early: point just past its last token.
    return { line: previous!.endLine!, column: previous!.endColumn! + 1, message: e.message, hint: hintFor(e) };
  }
  // At the end of the file Chevrotain has no position: report just past the last token.
  const last = tokens[tokens.length - 1];
  const line = atEnd ? (last?.endLine ?? lastLine) : (e.token.startLine ?? 1);
  const column = atEnd ? (last ? (last.endColumn ?? 0) + 1 : lastColumn) : (e.token.startColumn ?? 1);
  return { line, column, message: e.message, hint: hintFor(e) };
}
