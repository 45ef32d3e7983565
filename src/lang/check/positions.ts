// Position sets: `positions` definitions, names, unions and differences, and how deep they nest.
// A section of the checker (src/lang/checker.ts), a class extending the section it builds on.

import type * as A from '../ast.js';
import { didYouMean } from '../diagnostics.js';
import { maxNesting } from '../limits.js';
import { namedPositionSets, type NamedPositionSet, type PositionSet } from '../program.js';
import { emptyScope, type Scope } from './base.js';
import { ModelDataChecks } from './model-data.js';

const namedSetList = namedPositionSets.join(', ');
const positionHint = `position sets: ${namedSetList}, [indices], a + b, a - b, or a name defined with 'positions'`;

export abstract class PositionChecks extends ModelDataChecks {
  collectPositionDefs(): void {
    for (const p of this.statements('positions')) {
      const name = p.name.name;
      if ((namedPositionSets as readonly string[]).includes(name)) {
        this.error(p.name.span, `'${name}' is a built-in position set and cannot be redefined`, 'choose another name');
        continue;
      }
      const first = this.positionDefs.get(name);
      if (first) {
        this.error(p.name.span, `duplicate position set '${name}'`, `'${name}' is already defined at line ${first.span.line}`);
        continue;
      }
      const param = this.params.get(name);
      if (param) {
        this.error(p.name.span, `'${name}' is already a parameter`, `declared at line ${param.decl.span.line}; choose another name`);
        continue;
      }
      this.positionDefs.set(name, p);
    }
  }

  /** Resolves a `positions` definition (once), inlining it; null when it has errors. */
  positionDef(name: string, use: A.Ref): PositionSet | null {
    if (this.resolvedDefs.has(name)) return this.resolvedDefs.get(name)!;
    if (this.resolving.includes(name)) {
      const cycle = [...this.resolving.slice(this.resolving.indexOf(name)), name].join(' -> ');
      this.error(use.span, `position set '${name}' is defined in terms of itself`, `the cycle is ${cycle}`);
      return null;
    }
    this.resolving.push(name);
    const result = this.posExpr(this.positionDefs.get(name)!.expr, emptyScope) ?? null;
    this.resolving.pop();
    this.resolvedDefs.set(name, result);
    return result;
  }

  /** Reports a position set nested deeper than maxNesting, at `at`. */
  tooDeep(at: A.Span): undefined {
    this.error(at, `position set nested too deeply: more than ${maxNesting} levels`,
      'each pair of parentheses, each + or - and each positions definition used inside another is a level; write it with fewer terms');
    return undefined;
  }

  posExpr(e: A.PosExpr, scope: Scope): PositionSet | undefined {
    switch (e.kind) {
      case 'binary': {
        if (this.openPositionOperators >= maxNesting) return this.tooDeep(e.span);
        this.openPositionOperators++;
        const left = this.posExpr(e.left, scope);
        const right = this.posExpr(e.right, scope);
        this.openPositionOperators--;
        if (!left || !right) return undefined;
        const depth = 1 + Math.max(this.setDepths.get(left) ?? 0, this.setDepths.get(right) ?? 0);
        if (depth > maxNesting) return this.tooDeep(e.span);
        const set: PositionSet = { kind: e.op === '+' ? 'union' : 'difference', left, right };
        this.setDepths.set(set, depth);
        return set;
      }
      case 'indices': {
        const indices: number[] = [];
        for (const v of e.values) {
          const n = this.literal(v);
          if (n === undefined) return undefined;
          indices.push(n);
        }
        return { kind: 'indices', indices };
      }
      case 'ref':
        return this.posRef(e, scope);
    }
  }

  posRef(ref: A.Ref, scope: Scope): PositionSet | undefined {
    const name = ref.name;
    const v = scope.vars.get(name);
    if (v) {
      scope.used.add(name);
      if (scope.inSweepValues) {
        this.error(ref.span, `sweep variable '${name}' cannot be used in a sweep's values`,
          'the values of a sweep must not depend on another sweep');
        return undefined;
      }
      if (v.kind !== 'positions') {
        this.error(ref.span, `sweep variable '${name}' ranges over ${v.kind === 'layers' ? 'layers' : 'hidden states'}, but a position set is expected here`,
          `'${name}' is bound by 'for ${name} in ${v.kind}' at line ${v.stmt.span.line}; ${positionHint}`);
        return undefined;
      }
      return { kind: 'var', name };
    }
    if (this.positionDefs.has(name)) {
      const set = this.positionDef(name, ref);
      return set ?? undefined;
    }
    if ((namedPositionSets as readonly string[]).includes(name)) return { kind: 'named', name: name as NamedPositionSet };
    const param = this.params.get(name);
    if (param) {
      this.error(ref.span, `'${name}' is a parameter, not a position set`, positionHint);
      return undefined;
    }
    const candidates = [
      ...namedPositionSets,
      ...this.positionDefs.keys(),
      ...[...scope.vars].filter(([, sv]) => sv.kind === 'positions').map(([n]) => n),
    ];
    this.error(ref.span, `unknown position set '${name}'`, didYouMean(name, candidates, positionHint));
    return undefined;
  }
}
