// CST → AST. Only called on a CST without syntax errors, so every required child exists.

import type { CstElement, CstNode, IToken } from 'chevrotain';
import type {
  AttributesStmt, BlockStmt, CancelStmt, DatasetStmt, Document, ExperimentItem, ExperimentStmt, FieldAssign,
  ForStmt, HeadMappingsStmt, Ident, IntExpr, IntLit, IntValue, LayerExpr, MeasureItem, MeasureStmt, PatchStmt,
  PositionSweepItem, PosExpr, NameValueOption, Ref, SiteExpr, Span, Statement, StrLit, SummarizeStmt, Value,
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
/** `<name> <integer | name>` (attributes and probe options): the value is a literal or a reference. */
function nameValueOption(n: CstNode): NameValueOption {
  const int = optToken(n, 'Integer');
  const word = tokens(n, 'Name')[1];
  const value: IntLit | Ref = int ? intLit(int) : { kind: 'ref', name: word!.image, span: tokenSpan(word!) };
  return { name: ident(token(n, 'Name')), value, span: nodeSpan(n) };
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
      case 'attributesStatement':
        return this.attributes(n, span);
      case 'filterStatement':
        return { kind: 'filter', value: ident(token(n, 'Name')), span };
      case 'bosStatement':
        return { kind: 'bos', value: ident(token(n, 'Name')), span };
      case 'chooseStatement':
        return { kind: 'choose', name: ident(token(n, 'Name', 0)), value: ident(token(n, 'Name', 1)), span };
      case 'positionsStatement':
        return { kind: 'positions', name: ident(token(n, 'Name')), expr: this.posExpr(node(n, 'positionExpr')), span };
      case 'headMappingsStatement':
        return this.headMappings(n, span);
      case 'siteStatement':
        return {
          kind: 'site', name: ident(token(n, 'Name')), layers: this.layerSet(node(n, 'layerSet')), tensor: this.value(node(n, 'value')), span,
        };
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

  attributes(n: CstNode, span: Span): AttributesStmt {
    const options = nodes(n, 'attributeOption').map(nameValueOption);
    return { kind: 'attributes', format: ident(token(n, 'Name')), path: this.value(node(n, 'value')), options, span };
  }

  headMappings(n: CstNode, span: Span): HeadMappingsStmt {
    return {
      kind: 'head_mappings',
      layers: nodes(n, 'layerSet').map((l) => this.layerSet(l)),
      top: this.intValue(node(n, 'intValue')),
      span,
    };
  }

  /** Source text of a node, runs of whitespace collapsed to one space. */
  text(n: CstNode): string {
    const s = nodeSpan(n);
    return this.source.slice(s.offset, s.endOffset).replace(/\s+/g, ' ');
  }

  experiment(n: CstNode, span: Span): ExperimentStmt {
    const items = nodes(n, 'experimentItem').map((item): ExperimentItem => {
      const [kind] = Object.keys(item.children);
      const s = node(item, kind!);
      switch (kind) {
        case 'forStatement': return this.forStmt(s);
        case 'blockStatement': return this.block(s);
        case 'cancelStatement': return this.cancel(s);
        case 'patchStatement': return this.patch(s);
        case 'measureStatement': return this.measure(s);
        case 'summarizeStatement': return this.summarize(s);
        default: throw new Error(`internal: unknown experiment item ${kind}`);
      }
    });
    return { kind: 'experiment', name: ident(token(n, 'Name')), items, span };
  }

  forStmt(n: CstNode): ForStmt {
    const variable = ident(token(n, 'Name'));
    const span = nodeSpan(n);
    if (optToken(n, 'Layers') || optToken(n, 'Hidden')) {
      const items = nodes(n, 'layerSet').map((l) => this.layerSet(l));
      return { kind: 'for', variable, domain: optToken(n, 'Layers') ? { kind: 'layers', items } : { kind: 'hidden', items }, span };
    }
    const items = nodes(n, 'positionSweepItem').map((p) => this.positionSweepItem(p));
    return { kind: 'for', variable, domain: { kind: 'positions', items }, span };
  }

  positionSweepItem(n: CstNode): PositionSweepItem {
    const text = this.text(n);
    if (!optToken(n, 'Each')) return { kind: 'set', expr: this.posExpr(node(n, 'positionExpr')), text };
    const [from, to] = tokens(n, 'Integer');
    const minuses = tokens(n, 'Minus');
    const signed = (t: IToken, after: number, before: number): IntLit => {
      const minus = minuses.find((m) => m.startOffset > after && m.startOffset < before);
      return intLit(t, minus !== undefined, minus ? tokenSpan(minus) : undefined);
    };
    const dots = token(n, 'DotDot');
    return {
      kind: 'each',
      from: signed(from!, token(n, 'Each').startOffset, from!.startOffset),
      to: signed(to!, dots.startOffset, to!.startOffset),
      text,
      span: nodeSpan(n),
    };
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

  cancel(n: CstNode): CancelStmt {
    const positions = nodes(n, 'positionExpr')[0];
    return {
      kind: 'cancel',
      sublayer: ident(token(n, 'Name')),
      layers: this.layerSet(node(n, 'layerSet')),
      ...(positions ? { positions: this.posExpr(positions) } : {}),
      span: nodeSpan(n),
    };
  }

  patch(n: CstNode): PatchStmt {
    const ints = nodes(n, 'intExpr');
    return {
      kind: 'patch',
      layer: this.intExpr(ints[0]!),
      positions: this.posExpr(node(n, 'positionExpr')),
      mean: optToken(n, 'Mean') !== undefined,
      corrupted: optToken(n, 'Corrupted') !== undefined,
      source: this.intExpr(ints[1]!),
      span: nodeSpan(n),
    };
  }

  measure(n: CstNode): MeasureStmt {
    return { kind: 'measure', items: nodes(n, 'measureItem').map((i) => this.measureItem(i)), span: nodeSpan(n) };
  }

  measureItem(n: CstNode): MeasureItem {
    const span = nodeSpan(n);
    const text = this.text(n);
    if (optToken(n, 'AttentionWeight')) {
      const exprs = nodes(n, 'positionExpr');
      const heads = optToken(n, 'Name');
      return {
        kind: 'attention_weight',
        source: this.posExpr(exprs[0]!),
        target: this.posExpr(exprs[1]!),
        layer: this.intExpr(node(n, 'intExpr')),
        ...(heads ? { heads: ident(heads) } : {}),
        text,
        span,
      };
    }
    const count = nodes(n, 'intValue')[0];
    const site = nodes(n, 'site')[0];
    const options = nodes(n, 'probeOption').map(nameValueOption);
    // position expressions in source order: the `without` set (when written), then the `at` set
    const exprs = nodes(n, 'positionExpr');
    const hasWithout = optToken(n, 'Without') !== undefined;
    const without = hasWithout ? exprs[0] : undefined;
    const at = hasWithout ? exprs[1] : exprs[0];
    return {
      kind: 'named',
      name: ident(token(n, 'Name')),
      ...(count ? { count: this.intValue(count) } : {}),
      ...(site ? { site: this.site(site) } : {}),
      ...(options.length ? { options } : {}),
      ...(without ? { without: this.posExpr(without) } : {}),
      ...(at ? { at: this.posExpr(at) } : {}),
      text,
      span,
    };
  }

  site(n: CstNode): SiteExpr {
    const index = nodes(n, 'intExpr')[0];
    return { kind: ident(token(n, 'Name')), ...(index ? { index: this.intExpr(index) } : {}), span: nodeSpan(n) };
  }

  summarize(n: CstNode): SummarizeStmt {
    const layers = nodes(n, 'layerSet')[0];
    return {
      kind: 'summarize',
      what: ident(token(n, 'Name')),
      ...(layers ? { layers: this.layerSet(layers) } : {}),
      span: nodeSpan(n),
    };
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

  intExpr(n: CstNode): IntExpr {
    const values = nodes(n, 'intValue').map((v) => this.intValue(v));
    const ops = [...tokens(n, 'Plus'), ...tokens(n, 'Minus')].sort((a, b) => a.startOffset - b.startOffset);
    let acc: IntExpr = values[0]!;
    ops.forEach((op, i) => {
      const right = values[i + 1]!;
      acc = { kind: 'binary', op: op.image === '+' ? '+' : '-', left: acc, right, span: joinSpans(acc.span, right.span) };
    });
    return acc;
  }

  layerSet(n: CstNode): LayerExpr {
    const base = this.layerBase(node(n, 'layerBase'));
    const within = optToken(n, 'Within');
    if (!within) return base;
    const [from, to] = nodes(n, 'intExpr').map((e) => this.intExpr(e));
    return { kind: 'within', set: base, from: from!, to: to!, withinSpan: tokenSpan(within), span: nodeSpan(n) };
  }

  layerBase(n: CstNode): LayerExpr {
    const span = nodeSpan(n);
    if (optToken(n, 'All')) return { kind: 'all', span };
    const ints = nodes(n, 'intExpr').map((v) => this.intExpr(v));
    if (optToken(n, 'Window')) return { kind: 'window', center: ints[0]!, size: ints[1]!, span };
    if (optToken(n, 'DotDot')) return { kind: 'range', from: ints[0]!, to: ints[1]!, span };
    return { kind: 'single', layer: ints[0]!, span };
  }
}

/** Builds the AST of a file that parsed without errors. */
export function buildAst(cst: CstNode, source: string, file: string): Document {
  return new Builder(source).document(cst, file);
}
