// Parameters: declarations, `--set` overrides, and their uses as strings, integers and paths.
// A section of the checker (src/lang/checker.ts), a class extending the section it builds on.

import { resolve } from 'node:path';
import type * as A from '../ast.js';
import { didYouMean } from '../diagnostics.js';
import { CheckerBase } from './base.js';

export abstract class ParamChecks extends CheckerBase {
  resolveParams(): void {
    for (const p of this.statements('param')) {
      const name = p.name.name;
      const first = this.params.get(name);
      if (first) {
        this.error(p.name.span, `duplicate parameter '${name}'`, `'${name}' is already declared at line ${first.decl.span.line}`);
        continue;
      }
      const value = p.value.kind === 'string' ? p.value.value : this.literal(p.value);
      if (value === undefined) continue;
      this.params.set(name, { name, value, decl: p });
    }
    for (const [name, text] of Object.entries(this.options.overrides)) {
      const p = this.params.get(name);
      if (!p) {
        const declared = [...this.params.keys()];
        this.commandLineError(
          `unknown parameter '${name}' in --set ${name}=${text}`,
          didYouMean(name, declared, declared.length ? `this file declares: ${declared.join(', ')}` : 'this file declares no parameters'),
        );
        continue;
      }
      if (typeof p.value === 'number') {
        const n = /^[0-9]+$/.test(text.trim()) ? Number(text.trim()) : NaN;
        if (!Number.isSafeInteger(n)) {
          this.commandLineError(
            `--set ${name}=${text}: '${name}' is an integer parameter (line ${p.decl.span.line}), but '${text}' is not a non-negative integer`,
            `give a whole number, e.g. --set ${name}=${p.value}`,
          );
          continue;
        }
        p.value = n;
      } else {
        p.value = text;
      }
    }
  }

  paramUse(ref: A.Ref, expected: 'string' | 'integer', what: string): number | string | undefined {
    const p = this.params.get(ref.name);
    if (!p) {
      const candidates = [...this.params.values()]
        .filter((q) => (typeof q.value === 'string') === (expected === 'string'))
        .map((q) => q.name);
      const fallback = expected === 'string' ? 'write a "string" or declare: param name = "..."' : 'write an integer or declare: param name = 0';
      this.error(ref.span, `unknown parameter '${ref.name}'`, didYouMean(ref.name, candidates, fallback));
      return undefined;
    }
    const actual = typeof p.value === 'string' ? 'string' : 'integer';
    if (actual !== expected) {
      this.error(
        ref.span,
        `parameter '${ref.name}' is a${actual === 'integer' ? 'n' : ''} ${actual}, but ${what} is expected here`,
        `'${ref.name}' is declared at line ${p.decl.span.line} with value ${JSON.stringify(p.value)}`,
      );
      return undefined;
    }
    return p.value;
  }

  /** A string literal or a string parameter. */
  stringValue(v: A.Value, what: string): string | undefined {
    if (v.kind === 'string') return v.value;
    return this.paramUse(v, 'string', what) as string | undefined;
  }

  path(v: A.Value, what: string): string | undefined {
    const s = this.stringValue(v, what);
    return s === undefined ? undefined : resolve(this.dir, s);
  }
}
