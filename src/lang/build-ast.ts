// CST → AST. Only called on a CST without syntax errors, so every required child exists. The
// CST's node types (src/lang/cst.ts) are generated from the parser's rules, so a child read
// here that a rule does not have, or reads as required where the rule makes it optional,
// does not compile.

import type { CstNode, IToken } from 'chevrotain';
import type {
  AttributesStmt, BlockStmt, CancelStmt, DatasetStmt, Document, ExperimentItem, ExperimentStmt, FieldAssign,
  ForStmt, HeadMappingsStmt, Ident, IntExpr, IntLit, IntValue, LayerExpr, MeasureItem, MeasureStmt, PatchStmt,
  PositionSweepItem, PosExpr, NameValueOption, Ref, SiteExpr, Span, Statement, StrLit, SummarizeStmt, Value,
} from './ast.js';
import type * as C from './cst.js';
import { stringValue } from './lexer.js';
import { sourceText } from './diagnostics.js';

/** The i-th element of a child list the rule requires here (the CST has no syntax errors). */
function nth<T>(children: readonly T[] | undefined, i = 0): T {
  const x = children?.[i];
  if (x === undefined) throw new Error('internal: a CST child the grammar requires is missing');
  return x;
}

/** The span of a token, or of a node's location: both carry Chevrotain's start and end fields. */
function spanOf(l: { startOffset: number; startLine?: number; startColumn?: number; endOffset?: number; endLine?: number }): Span {
  return {
    line: l.startLine ?? 1,
    column: l.startColumn ?? 1,
    offset: l.startOffset,
    endOffset: (l.endOffset ?? l.startOffset) + 1,
    endLine: l.endLine ?? l.startLine ?? 1,
  };
}
const nodeSpan = (n: CstNode): Span => spanOf(n.location!);
function joinSpans(a: Span, b: Span): Span {
  return { line: a.line, column: a.column, offset: a.offset, endOffset: b.endOffset, endLine: b.endLine };
}

function ident(t: IToken): Ident {
  return { name: t.image, span: spanOf(t) };
}
/** `<name> <integer | name>` (attributes and probe options): the value is a literal or a reference. */
function nameValueOption(n: C.AttributeOptionCstNode | C.ProbeOptionCstNode): NameValueOption {
  const int = n.children.Integer?.[0];
  const value: IntLit | Ref = int ? intLit(int) : ref(nth(n.children.Name, 1));
  return { name: ident(nth(n.children.Name)), value, span: nodeSpan(n) };
}

function ref(t: IToken): Ref {
  return { kind: 'ref', name: t.image, span: spanOf(t) };
}
function intLit(t: IToken, negative = false, signSpan?: Span): IntLit {
  const span = signSpan ? joinSpans(signSpan, spanOf(t)) : spanOf(t);
  const magnitude = Number(t.image);
  return { kind: 'int', value: negative ? -magnitude : magnitude, text: negative ? `-${t.image}` : t.image, span };
}
function strLit(t: IToken): StrLit {
  return { kind: 'string', value: stringValue(t.image), span: spanOf(t) };
}

class Builder {
  constructor(private readonly source: string) {}

  document(cst: C.DocumentCstNode, file: string): Document {
    return { file, statements: (cst.children.statement ?? []).map((st) => this.statement(st)) };
  }

  statement(cst: C.StatementCstNode): Statement {
    const c = cst.children;
    if (c.paramStatement) {
      const n = nth(c.paramStatement);
      const str = n.children.String?.[0];
      return { kind: 'param', name: ident(nth(n.children.Name)), value: str ? strLit(str) : intLit(nth(n.children.Integer)), span: nodeSpan(n) };
    }
    if (c.modelStatement) {
      const n = nth(c.modelStatement);
      const tokenizer = n.children.value[1];
      return { kind: 'model', onnx: this.value(nth(n.children.value)), ...(tokenizer ? { tokenizer: this.value(tokenizer) } : {}), span: nodeSpan(n) };
    }
    if (c.datasetStatement) return this.dataset(nth(c.datasetStatement));
    if (c.attributesStatement) return this.attributes(nth(c.attributesStatement));
    if (c.filterStatement) {
      const n = nth(c.filterStatement);
      return { kind: 'filter', value: ident(nth(n.children.Name)), span: nodeSpan(n) };
    }
    if (c.bosStatement) {
      const n = nth(c.bosStatement);
      return { kind: 'bos', value: ident(nth(n.children.Name)), span: nodeSpan(n) };
    }
    if (c.chooseStatement) {
      const n = nth(c.chooseStatement);
      return { kind: 'choose', name: ident(nth(n.children.Name, 0)), value: ident(nth(n.children.Name, 1)), span: nodeSpan(n) };
    }
    if (c.positionsStatement) {
      const n = nth(c.positionsStatement);
      return { kind: 'positions', name: ident(nth(n.children.Name)), expr: this.posExpr(nth(n.children.positionExpr)), span: nodeSpan(n) };
    }
    if (c.headMappingsStatement) return this.headMappings(nth(c.headMappingsStatement));
    if (c.siteStatement) {
      const n = nth(c.siteStatement);
      return {
        kind: 'site', name: ident(nth(n.children.Name)), layers: this.layerSet(nth(n.children.layerSet)), tensor: this.value(nth(n.children.value)),
        span: nodeSpan(n),
      };
    }
    return this.experiment(nth(c.experimentStatement));
  }

  value(n: C.ValueCstNode): Value {
    const str = n.children.String?.[0];
    return str ? strLit(str) : ref(nth(n.children.Name));
  }

  intValue(n: C.IntValueCstNode): IntValue {
    const int = n.children.Integer?.[0];
    return int ? intLit(int) : ref(nth(n.children.Name));
  }

  dataset(n: C.DatasetStatementCstNode): DatasetStmt {
    const fieldsTok = n.children.Fields?.[0];
    const base = { kind: 'dataset' as const, format: ident(nth(n.children.Name)), path: this.value(nth(n.children.value)), span: nodeSpan(n) };
    if (!fieldsTok) return base;
    const fields: FieldAssign[] = (n.children.field ?? []).map((f) => ({
      name: ident(nth(f.children.Name)),
      value: this.value(nth(f.children.value)),
      span: nodeSpan(f),
    }));
    return { ...base, fields, fieldsSpan: spanOf(fieldsTok) };
  }

  attributes(n: C.AttributesStatementCstNode): AttributesStmt {
    const options = (n.children.attributeOption ?? []).map(nameValueOption);
    return { kind: 'attributes', format: ident(nth(n.children.Name)), path: this.value(nth(n.children.value)), options, span: nodeSpan(n) };
  }

  headMappings(n: C.HeadMappingsStatementCstNode): HeadMappingsStmt {
    return {
      kind: 'head_mappings',
      layers: n.children.layerSet.map((l) => this.layerSet(l)),
      top: this.intValue(nth(n.children.intValue)),
      span: nodeSpan(n),
    };
  }

  /** Source text of a node, runs of whitespace collapsed to one space. */
  text(n: CstNode): string {
    return sourceText(this.source, nodeSpan(n));
  }

  experiment(n: C.ExperimentStatementCstNode): ExperimentStmt {
    const items = (n.children.experimentItem ?? []).map((item): ExperimentItem => {
      const c = item.children;
      if (c.forStatement) return this.forStmt(nth(c.forStatement));
      if (c.blockStatement) return this.block(nth(c.blockStatement));
      if (c.cancelStatement) return this.cancel(nth(c.cancelStatement));
      if (c.patchStatement) return this.patch(nth(c.patchStatement));
      if (c.measureStatement) return this.measure(nth(c.measureStatement));
      return this.summarize(nth(c.summarizeStatement));
    });
    return { kind: 'experiment', name: ident(nth(n.children.Name)), items, span: nodeSpan(n) };
  }

  forStmt(n: C.ForStatementCstNode): ForStmt {
    const c = n.children;
    const variable = ident(nth(c.Name));
    const span = nodeSpan(n);
    if (c.Layers || c.Hidden) {
      const items = (c.layerSet ?? []).map((l) => this.layerSet(l));
      return { kind: 'for', variable, domain: c.Layers ? { kind: 'layers', items } : { kind: 'hidden', items }, span };
    }
    const items = (c.positionSweepItem ?? []).map((p) => this.positionSweepItem(p));
    return { kind: 'for', variable, domain: { kind: 'positions', items }, span };
  }

  positionSweepItem(n: C.PositionSweepItemCstNode): PositionSweepItem {
    const c = n.children;
    const text = this.text(n);
    const each = c.Each?.[0];
    if (!each) return { kind: 'set', expr: this.posExpr(nth(c.positionExpr)), text };
    const from = nth(c.Integer, 0);
    const to = nth(c.Integer, 1);
    const signed = (t: IToken, after: number, before: number): IntLit => {
      const minus = (c.Minus ?? []).find((m) => m.startOffset > after && m.startOffset < before);
      return intLit(t, minus !== undefined, minus ? spanOf(minus) : undefined);
    };
    return {
      kind: 'each',
      from: signed(from, each.startOffset, from.startOffset),
      to: signed(to, nth(c.DotDot).startOffset, to.startOffset),
      text,
      span: nodeSpan(n),
    };
  }

  block(n: C.BlockStatementCstNode): BlockStmt {
    const c = n.children;
    const headSet = c.headSet?.[0];
    let heads: BlockStmt['heads'];
    if (headSet) {
      heads = headSet.children.All
        ? { kind: 'all', span: nodeSpan(headSet) }
        : { kind: 'list', heads: (headSet.children.intValue ?? []).map((v) => this.intValue(v)), span: nodeSpan(headSet) };
    }
    return {
      kind: 'block',
      source: this.posExpr(nth(c.positionExpr, 0)),
      target: this.posExpr(nth(c.positionExpr, 1)),
      layers: this.layerSet(nth(c.layerSet)),
      ...(heads ? { heads } : {}),
      span: nodeSpan(n),
    };
  }

  cancel(n: C.CancelStatementCstNode): CancelStmt {
    const positions = n.children.positionExpr?.[0];
    return {
      kind: 'cancel',
      sublayer: ident(nth(n.children.Name)),
      layers: this.layerSet(nth(n.children.layerSet)),
      ...(positions ? { positions: this.posExpr(positions) } : {}),
      span: nodeSpan(n),
    };
  }

  patch(n: C.PatchStatementCstNode): PatchStmt {
    const c = n.children;
    return {
      kind: 'patch',
      layer: this.intExpr(nth(c.intExpr, 0)),
      positions: this.posExpr(nth(c.positionExpr)),
      mean: c.Mean !== undefined,
      corrupted: c.Corrupted !== undefined,
      source: this.intExpr(nth(c.intExpr, 1)),
      span: nodeSpan(n),
    };
  }

  measure(n: C.MeasureStatementCstNode): MeasureStmt {
    return { kind: 'measure', items: n.children.measureItem.map((i) => this.measureItem(i)), span: nodeSpan(n) };
  }

  measureItem(n: C.MeasureItemCstNode): MeasureItem {
    const c = n.children;
    const span = nodeSpan(n);
    const text = this.text(n);
    if (c.AttentionWeight) {
      const heads = c.Name?.[0];
      return {
        kind: 'attention_weight',
        source: this.posExpr(nth(c.positionExpr, 0)),
        target: this.posExpr(nth(c.positionExpr, 1)),
        layer: this.intExpr(nth(c.intExpr)),
        ...(heads ? { heads: ident(heads) } : {}),
        text,
        span,
      };
    }
    const count = c.intValue?.[0];
    const site = c.site?.[0];
    const options = (c.probeOption ?? []).map(nameValueOption);
    // position expressions in source order: the `without` set (when written), then the `at` set
    const exprs = c.positionExpr ?? [];
    const without = c.Without ? exprs[0] : undefined;
    const at = c.Without ? exprs[1] : exprs[0];
    return {
      kind: 'named',
      name: ident(nth(c.Name)),
      ...(count ? { count: this.intValue(count) } : {}),
      ...(site ? { site: this.site(site) } : {}),
      ...(options.length ? { options } : {}),
      ...(without ? { without: this.posExpr(without) } : {}),
      ...(at ? { at: this.posExpr(at) } : {}),
      text,
      span,
    };
  }

  site(n: C.SiteCstNode): SiteExpr {
    const index = n.children.intExpr?.[0];
    return { kind: ident(nth(n.children.Name)), ...(index ? { index: this.intExpr(index) } : {}), span: nodeSpan(n) };
  }

  summarize(n: C.SummarizeStatementCstNode): SummarizeStmt {
    const layers = n.children.layerSet?.[0];
    return {
      kind: 'summarize',
      what: ident(nth(n.children.Name)),
      ...(layers ? { layers: this.layerSet(layers) } : {}),
      span: nodeSpan(n),
    };
  }

  posExpr(n: C.PositionExprCstNode): PosExpr {
    return foldOperators<PosExpr>(n.children, n.children.positionTerm.map((t) => this.posTerm(t)));
  }

  posTerm(n: C.PositionTermCstNode): PosExpr {
    const c = n.children;
    const name = c.Name?.[0];
    if (name) return ref(name);
    const list = c.indexList?.[0];
    if (list) {
      const values = list.children.signedInteger.map((si) => {
        const minus = si.children.Minus?.[0];
        return intLit(nth(si.children.Integer), minus !== undefined, minus ? spanOf(minus) : undefined);
      });
      return { kind: 'indices', values, span: nodeSpan(list) };
    }
    return this.posExpr(nth(c.positionExpr));
  }

  intExpr(n: C.IntExprCstNode): IntExpr {
    return foldOperators<IntExpr>(n.children, n.children.intValue.map((v) => this.intValue(v)));
  }

  layerSet(n: C.LayerSetCstNode): LayerExpr {
    const base = this.layerBase(nth(n.children.layerBase));
    const within = n.children.Within?.[0];
    if (!within) return base;
    const bounds = n.children.intExpr;
    return {
      kind: 'within', set: base, from: this.intExpr(nth(bounds, 0)), to: this.intExpr(nth(bounds, 1)), withinSpan: spanOf(within), span: nodeSpan(n),
    };
  }

  layerBase(n: C.LayerBaseCstNode): LayerExpr {
    const c = n.children;
    const span = nodeSpan(n);
    if (c.All) return { kind: 'all', span };
    const ints = (c.intExpr ?? []).map((v) => this.intExpr(v));
    if (c.Window) return { kind: 'window', center: nth(ints, 0), size: nth(ints, 1), span };
    if (c.DotDot) return { kind: 'range', from: nth(ints, 0), to: nth(ints, 1), span };
    return { kind: 'single', layer: nth(ints), span };
  }
}

/** `t0 ± t1 ± …` folded left: the operators in source order between the terms. */
function foldOperators<E extends PosExpr | IntExpr>(c: { readonly Plus?: IToken[]; readonly Minus?: IToken[] }, terms: readonly E[]): E {
  const ops = [...(c.Plus ?? []), ...(c.Minus ?? [])].sort((a, b) => a.startOffset - b.startOffset);
  return ops.reduce((left: E, op, i): E => {
    const right = nth(terms, i + 1);
    return { kind: 'binary', op: op.image === '+' ? '+' : '-', left, right, span: joinSpans(left.span, right.span) } as E;
  }, nth(terms));
}

/** Builds the AST of a file that parsed without errors (`cst`: the parser's `document` node). */
export function buildAst(cst: CstNode, source: string, file: string): Document {
  return new Builder(source).document(cst as C.DocumentCstNode, file);
}
