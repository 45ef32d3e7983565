// The untyped syntax tree: what the user wrote, with positions, before names are resolved.
// Offsets index the source text (0-based, end exclusive) so that the checker can quote it.

export interface Span {
  readonly line: number;   // 1-based
  readonly column: number; // 1-based
  readonly offset: number;
  readonly endOffset: number; // exclusive
  readonly endLine: number;
}

export interface Ident { readonly name: string; readonly span: Span }

/** An integer literal as written; `value` may be unsafe for huge literals (the checker says so). */
export interface IntLit { readonly kind: 'int'; readonly value: number; readonly text: string; readonly span: Span }
export interface StrLit { readonly kind: 'string'; readonly value: string; readonly span: Span }
export interface Ref { readonly kind: 'ref'; readonly name: string; readonly span: Span }

/** A string literal or a reference to a parameter. */
export type Value = StrLit | Ref;
/** An integer literal or a reference to a parameter or sweep variable. */
export type IntValue = IntLit | Ref;
/** Integer arithmetic, left-associative: `l + 1` is binary(+, l, 1). */
export type IntExpr =
  | IntValue
  | { readonly kind: 'binary'; readonly op: '+' | '-'; readonly left: IntExpr; readonly right: IntValue; readonly span: Span };

export type PosExpr =
  | Ref
  | { readonly kind: 'indices'; readonly values: readonly IntLit[]; readonly span: Span }
  | { readonly kind: 'binary'; readonly op: '+' | '-'; readonly left: PosExpr; readonly right: PosExpr; readonly span: Span };

export type LayerExpr =
  | { readonly kind: 'all'; readonly span: Span }
  | { readonly kind: 'single'; readonly layer: IntExpr; readonly span: Span }
  | { readonly kind: 'range'; readonly from: IntExpr; readonly to: IntExpr; readonly span: Span }
  | { readonly kind: 'window'; readonly center: IntExpr; readonly size: IntExpr; readonly span: Span }
  /** `set within from..to`; `span` covers the whole, `withinSpan` the `within` keyword. */
  | { readonly kind: 'within'; readonly set: LayerExpr; readonly from: IntExpr; readonly to: IntExpr; readonly withinSpan: Span; readonly span: Span };

export interface ParamStmt { readonly kind: 'param'; readonly name: Ident; readonly value: StrLit | IntLit; readonly span: Span }
export interface ModelStmt { readonly kind: 'model'; readonly onnx: Value; readonly tokenizer?: Value; readonly span: Span }
export interface FieldAssign { readonly name: Ident; readonly value: Value; readonly span: Span }
export interface DatasetStmt {
  readonly kind: 'dataset';
  readonly format: Ident;
  readonly path: Value;
  /** Present when a `fields` clause is written; `fieldsSpan` is the `fields` keyword. */
  readonly fields?: readonly FieldAssign[];
  readonly fieldsSpan?: Span;
  readonly span: Span;
}
/** `<name> <value>` (attributes options, and probe options after the site): an integer, or a name (a parameter or a word such as `zero`). */
export interface NameValueOption { readonly name: Ident; readonly value: IntLit | Ref; readonly span: Span }
/** `attributes <format> <path> <option> <value> ...` */
export interface AttributesStmt {
  readonly kind: 'attributes';
  readonly format: Ident;
  readonly path: Value;
  readonly options: readonly NameValueOption[];
  readonly span: Span;
}
export interface FilterStmt { readonly kind: 'filter'; readonly value: Ident; readonly span: Span }
export interface BosStmt { readonly kind: 'bos'; readonly value: Ident; readonly span: Span }
export interface ChooseStmt { readonly kind: 'choose'; readonly name: Ident; readonly value: Ident; readonly span: Span }
export interface PositionsStmt { readonly kind: 'positions'; readonly name: Ident; readonly expr: PosExpr; readonly span: Span }
/** `head_mappings layers <layers>, ... top <k>` */
export interface HeadMappingsStmt {
  readonly kind: 'head_mappings';
  readonly layers: readonly LayerExpr[];
  readonly top: IntValue;
  readonly span: Span;
}

/**
 * A value of a position sweep: a position set, or `each a..b` (`from`, `to` signed literals),
 * which the checker expands to the singleton sets [a], ..., [b]. `text` is the source text.
 */
export type PositionSweepItem =
  | { readonly kind: 'set'; readonly expr: PosExpr; readonly text: string }
  | { readonly kind: 'each'; readonly from: IntLit; readonly to: IntLit; readonly text: string; readonly span: Span };

export interface ForStmt {
  readonly kind: 'for';
  readonly variable: Ident;
  readonly domain:
    | { readonly kind: 'layers'; readonly items: readonly LayerExpr[] }
    | { readonly kind: 'hidden'; readonly items: readonly LayerExpr[] }
    /** A set item's `text`, its source text, is the label of that sweep value. */
    | { readonly kind: 'positions'; readonly items: readonly PositionSweepItem[] };
  readonly span: Span;
}
export interface BlockStmt {
  readonly kind: 'block';
  readonly source: PosExpr;
  readonly target: PosExpr;
  readonly layers: LayerExpr;
  /** Absent: all heads. */
  readonly heads?: { readonly kind: 'all'; readonly span: Span } | { readonly kind: 'list'; readonly heads: readonly IntValue[]; readonly span: Span };
  readonly span: Span;
}
export interface CancelStmt {
  readonly kind: 'cancel';
  readonly sublayer: Ident;
  readonly layers: LayerExpr;
  /** Absent: every position. */
  readonly positions?: PosExpr;
  readonly span: Span;
}
export interface PatchStmt {
  readonly kind: 'patch';
  readonly layer: IntExpr;
  readonly positions: PosExpr;
  readonly mean: boolean;
  /** `with corrupted hidden S`: from the fact's corrupted prompt. */
  readonly corrupted: boolean;
  readonly source: IntExpr;
  readonly span: Span;
}
/** `hidden E`, `attention E`, ..., `subject_embeddings` (no index): `kind` is the word as written. */
export interface SiteExpr { readonly kind: Ident; readonly index?: IntExpr; readonly span: Span }
/** One item of a measure statement; `text` is its source text with whitespace collapsed. */
export type MeasureItem =
  | {
      readonly kind: 'named';
      readonly name: Ident;
      /** `top_tokens 10 ...` */
      readonly count?: IntValue;
      readonly site?: SiteExpr;
      /** Options after the site, `steps 16 baseline zero` (integrated gradients); checked by name. */
      readonly options?: readonly NameValueOption[];
      /** `without S`: the attention update recomputed locally with the keys S removed. */
      readonly without?: PosExpr;
      readonly at?: PosExpr;
      readonly text: string;
      readonly span: Span;
    }
  | {
      readonly kind: 'attention_weight';
      readonly source: PosExpr;
      readonly target: PosExpr;
      readonly layer: IntExpr;
      readonly heads?: Ident;
      readonly text: string;
      readonly span: Span;
    };
export interface MeasureStmt { readonly kind: 'measure'; readonly items: readonly MeasureItem[]; readonly span: Span }
export interface SummarizeStmt { readonly kind: 'summarize'; readonly what: Ident; readonly layers?: LayerExpr; readonly span: Span }
export type ExperimentItem = ForStmt | BlockStmt | CancelStmt | PatchStmt | MeasureStmt | SummarizeStmt;

export interface ExperimentStmt {
  readonly kind: 'experiment';
  readonly name: Ident;
  readonly items: readonly ExperimentItem[];
  /** From the `experiment` keyword to the closing brace. */
  readonly span: Span;
}

/** `site <name> at layers <layers> = <tensor>` */
export interface SiteStmt {
  readonly kind: 'site';
  readonly name: Ident;
  readonly layers: LayerExpr;
  readonly tensor: Value;
  readonly span: Span;
}

export type Statement =
  | ParamStmt | ModelStmt | DatasetStmt | AttributesStmt | FilterStmt | BosStmt | ChooseStmt | PositionsStmt
  | HeadMappingsStmt | SiteStmt | ExperimentStmt;

export interface Document {
  readonly file: string;
  readonly statements: readonly Statement[];
}
