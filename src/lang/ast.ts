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

export type PosExpr =
  | Ref
  | { readonly kind: 'indices'; readonly values: readonly IntLit[]; readonly span: Span }
  | { readonly kind: 'binary'; readonly op: '+' | '-'; readonly left: PosExpr; readonly right: PosExpr; readonly span: Span };

export type LayerExpr =
  | { readonly kind: 'all'; readonly span: Span }
  | { readonly kind: 'single'; readonly layer: IntValue; readonly span: Span }
  | { readonly kind: 'range'; readonly from: IntValue; readonly to: IntValue; readonly span: Span }
  | { readonly kind: 'window'; readonly center: IntValue; readonly size: IntValue; readonly span: Span };

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
export interface FilterStmt { readonly kind: 'filter'; readonly value: Ident; readonly span: Span }
export interface BosStmt { readonly kind: 'bos'; readonly value: Ident; readonly span: Span }
export interface ChooseStmt { readonly kind: 'choose'; readonly name: Ident; readonly value: Ident; readonly span: Span }
export interface PositionsStmt { readonly kind: 'positions'; readonly name: Ident; readonly expr: PosExpr; readonly span: Span }

export interface ForStmt {
  readonly kind: 'for';
  readonly variable: Ident;
  readonly domain:
    | { readonly kind: 'layers'; readonly items: readonly LayerExpr[] }
    /** `text` is each item's source text, the label of that sweep value. */
    | { readonly kind: 'positions'; readonly items: readonly { readonly expr: PosExpr; readonly text: string }[] };
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
export interface MeasureStmt { readonly kind: 'measure'; readonly names: readonly Ident[]; readonly span: Span }
export type ExperimentItem = ForStmt | BlockStmt | MeasureStmt;

export interface ExperimentStmt {
  readonly kind: 'experiment';
  readonly name: Ident;
  readonly items: readonly ExperimentItem[];
  /** From the `experiment` keyword to the closing brace. */
  readonly span: Span;
}

export type Statement =
  | ParamStmt | ModelStmt | DatasetStmt | FilterStmt | BosStmt | ChooseStmt | PositionsStmt | ExperimentStmt;

export interface Document {
  readonly file: string;
  readonly statements: readonly Statement[];
}
