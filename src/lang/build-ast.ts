// CST → AST. Only called on a CST without syntax errors, so every required child exists.

import type { CstElement, CstNode, IToken } from 'chevrotain';
import type {
  BlockStmt, DatasetStmt, Document, ExperimentItem, ExperimentStmt, FieldAssign, ForStmt, Ident,
  IntLit, IntValue, LayerExpr, MeasureStmt, PosExpr, Span, Statement, StrLit, Value,
} from './ast.js';
import { stringValue } from './lexer.js';

function isToken(e: CstElement): e is IToken {
  return (e as IToken).image !== undefined;
}

function nodes(node: CstNode, key: string): CstNode[] {
  return (node.children[key] ?? []).filter((e): e is CstNode => !isToken(e));
}
function tokens(node: CstNode, key: string): IToken[] {
  return (node.children[key] ?? []).filter(isToken);
}
function node(parent: CstNode, key: string, i = 0): CstNode {
  const n = nodes(parent, key)[i];
  if (n === undefined) throw new Error(`internal: missing ${key} in ${parent.name}`);
  return n;
}
function token(parent: CstNode, key: string, i = 0): IToken {
  const t = tokens(parent, key)[i];
  if (t === undefined) throw new Error(`internal: missing ${key} in ${parent.name}`);
  return t;
}
function optToken(parent: CstNode, key: string): IToken | undefined {
  return tokens(parent, key)[0];
}

function tokenSpan(t: IToken): Span {
  return {
    line: t.startLine ?? 1,
    column: t.startColumn ?? 1,
    offset: t.startOffset,
    endOffset: (t.endOffset ?? t.startOffset) + 1,
    endLine: t.endLine ?? t.startLine ?? 1,
  };
}
function nodeSpan(n: CstNode): Span {
  const l = n.location!;
  return {
    line: l.startLine ?? 1,
    column: l.startColumn ?? 1,
    offset: l.startOffset,
    endOffset: (l.endOffset ?? l.startOffset) + 1,
    endLine: l.endLine ?? l.startLine ?? 1,
  };
}
function joinSpans(a: Span, b: Span): Span {
  return { line: a.line, column: a.column, offset: a.offset, endOffset: b.endOffset, endLine: b.endLine };
}

function ident(t: IToken): Ident {
  return { name: t.image, span: tokenSpan(t) };
}
function intLit(t: IToken, negative = false, signSpan?: Span): IntLit {
  const span = signSpan ? joinSpans(signSpan, tokenSpan(t)) : tokenSpan(t);
  const magnitude = Number(t.image);
  return { kind: 'int', value: negative ? -magnitude : magnitude, text: negative ? `-${t.image}` : t.image, span };
}
function strLit(t: IToken): StrLit {
  return { kind: 'string', value: stringValue(t.image), span: tokenSpan(t) };
}

class Builder {
  constructor(private readonly source: string) {}

  document(cst: CstNode, file: string): Document {
    return { file, statements: nodes(cst, 'statement').map((s) => this.statement(s)) };
  }

  statement(cst: CstNode): Statement {
    const [kind] = Object.keys(cst.children);
    const n = node(cst, kind!);
    const span = nodeSpan(n);
    switch (kind) {
      case 'paramStatement': {
        const str = optToken(n, 'String');
        return {
          kind: 'param',
          name: ident(token(n, 'Name')),
          value: str ? strLit(str) : intLit(token(n, 'Integer')),
          span,
        };
      }
      case 'modelStatement': {
        const values = nodes(n, 'value');
        const tokenizer = values[1] ? this.value(values[1]) : undefined;
        return { kind: 'model', onnx: this.value(values[0]!), ...(tokenizer ? { tokenizer } : {}), span };
      }
      case 'datasetStatement':
        return this.dataset(n, span);
      case 'filterStatement':
        return { kind: 'filter', value: ident(token(n, 'Name')), span };
      case 'bosStatement':
        return { kind: 'bos', value: ident(token(n, 'Name')), span };
      case 'chooseStatement':
        return { kind: 'choose', name: ident(token(n, 'Name', 0)), value: ident(token(n, 'Name', 1)), span };
      case 'positionsStatement':
        return { kind: 'positions', name: ident(token(n, 'Name')), expr: this.posExpr(node(n, 'positionExpr')), span };
      case 'experimentStatement':
        return this.experiment(n, span);
      default:
        throw new Error(`internal: unknown statement ${kind}`);
    }
  }

  value(n: CstNode): Value {
    const str = optToken(n, 'String');
    if (str) return strLit(str);
    const t = token(n, 'Name');
    return { kind: 'ref', name: t.image, span: tokenSpan(t) };
  }

  intValue(n: CstNode): IntValue {
    const int = optToken(n, 'Integer');
    if (int) return intLit(int);
    const t = token(n, 'Name');
    return { kind: 'ref', name: t.image, span: tokenSpan(t) };
  }

  dataset(n: CstNode, span: Span): DatasetStmt {
    const fieldsTok = optToken(n, 'Fields');
    const base = { kind: 'dataset' as const, format: ident(token(n, 'Name')), path: this.value(node(n, 'value')), span };
    if (!fieldsTok) return base;
    const fields: FieldAssign[] = nodes(n, 'field').map((f) => ({
      name: ident(token(f, 'Name')),
      value: this.value(node(f, 'value')),
      span: nodeSpan(f),
    }));
    return { ...base, fields, fieldsSpan: tokenSpan(fieldsTok) };
  }

  experiment(n: CstNode, span: Span): ExperimentStmt {
    const items = nodes(n, 'experimentItem').map((item): ExperimentItem => {
      const [kind] = Object.keys(item.children);
      const s = node(item, kind!);
      switch (kind) {
        case 'forStatement': return this.forStmt(s);
        case 'blockStatement': return this.block(s);
        case 'measureStatement': return this.measure(s);
        default: throw new Error(`internal: unknown experiment item ${kind}`);
      }
    });
    return { kind: 'experiment', name: ident(token(n, 'Name')), items, span };
  }

  forStmt(n: CstNode): ForStmt {
    const variable = ident(token(n, 'Name'));
    const span = nodeSpan(n);
    if (optToken(n, 'Layers')) {
      return { kind: 'for', variable, domain: { kind: 'layers', items: nodes(n, 'layerSet').map((l) => this.layerSet(l)) }, span };
    }
    const items = nodes(n, 'positionExpr').map((p) => {
      const s = nodeSpan(p);
      return { expr: this.posExpr(p), text: this.source.slice(s.offset, s.endOffset).replace(/\s+/g, ' ') };
    });
    return { kind: 'for', variable, domain: { kind: 'positions', items }, span };
  }

  block(n: CstNode): BlockStmt {
    const exprs = nodes(n, 'positionExpr');
    const headSet = nodes(n, 'headSet')[0];
    let heads: BlockStmt['heads'];
    if (headSet) {
      heads = optToken(headSet, 'All')
        ? { kind: 'all', span: nodeSpan(headSet) }
        : { kind: 'list', heads: nodes(headSet, 'intValue').map((v) => this.intValue(v)), span: nodeSpan(headSet) };
    }
    return {
      kind: 'block',
      source: this.posExpr(exprs[0]!),
      target: this.posExpr(exprs[1]!),
      layers: this.layerSet(node(n, 'layerSet')),
      ...(heads ? { heads } : {}),
      span: nodeSpan(n),
    };
  }

  measure(n: CstNode): MeasureStmt {
    return { kind: 'measure', names: tokens(n, 'Name').map(ident), span: nodeSpan(n) };
  }

  posExpr(n: CstNode): PosExpr {
    const terms = nodes(n, 'positionTerm').map((t) => this.posTerm(t));
    const ops = [...tokens(n, 'Plus'), ...tokens(n, 'Minus')].sort((a, b) => a.startOffset - b.startOffset);
    let acc = terms[0]!;
    ops.forEach((op, i) => {
      const right = terms[i + 1]!;
      acc = { kind: 'binary', op: op.image === '+' ? '+' : '-', left: acc, right, span: joinSpans(acc.span, right.span) };
    });
    return acc;
  }

  posTerm(n: CstNode): PosExpr {
    const name = optToken(n, 'Name');
    if (name) return { kind: 'ref', name: name.image, span: tokenSpan(name) };
    const list = nodes(n, 'indexList')[0];
    if (list) {
      const values = nodes(list, 'signedInteger').map((s) => {
        const minus = optToken(s, 'Minus');
        return intLit(token(s, 'Integer'), minus !== undefined, minus ? tokenSpan(minus) : undefined);
      });
      return { kind: 'indices', values, span: nodeSpan(list) };
    }
    return this.posExpr(node(n, 'positionExpr'));
  }

  layerSet(n: CstNode): LayerExpr {
    const span = nodeSpan(n);
    if (optToken(n, 'All')) return { kind: 'all', span };
    const ints = nodes(n, 'intValue').map((v) => this.intValue(v));
    if (optToken(n, 'Window')) return { kind: 'window', center: ints[0]!, size: ints[1]!, span };
    if (optToken(n, 'DotDot')) return { kind: 'range', from: ints[0]!, to: ints[1]!, span };
    return { kind: 'single', layer: ints[0]!, span };
  }
}

/** Builds the AST of a file that parsed without errors. */
export function buildAst(cst: CstNode, source: string, file: string): Document {
  return new Builder(source).document(cst, file);
}
