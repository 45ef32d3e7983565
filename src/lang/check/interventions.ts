// Interventions: block, cancel and patch.
// A section of the checker (src/lang/checker.ts), a class extending the section it builds on.

import type * as A from '../ast.js';
import { didYouMean } from '../diagnostics.js';
import type { Intervention, PositionSet } from '../program.js';
import type { Scope } from './base.js';
import { LayerChecks } from './layers.js';

/** Named sets of subject positions: each lies before the last token unless the subject ends the prompt. */
const SUBJECT_SETS: ReadonlySet<string> = new Set(['subject', 'subject_first', 'subject_last']);

export abstract class InterventionChecks extends LayerChecks {
  intervention(item: A.BlockStmt | A.CancelStmt | A.PatchStmt, scope: Scope): Intervention | undefined {
    const span = this.span(item.span);
    switch (item.kind) {
      case 'block': {
        const source = this.posExpr(item.source, scope);
        const target = this.posExpr(item.target, scope);
        const layers = this.layers(item.layers, scope);
        const heads = this.heads(item.heads, scope);
        if (!source || !target || !layers || !heads) return undefined;
        if (source.kind === 'named' && source.name === 'last' && target.kind === 'named' && SUBJECT_SETS.has(target.name)) {
          // a causal model's earlier positions never read a later one: these edges exist only
          // where the subject ends the prompt
          this.warn(item.span, `block last -> ${target.name} acts only where the subject ends the prompt: an earlier position never reads the last token`,
            `to stop the last token reading the subject, write block ${target.name} -> last (block FROM -> TO: what TO reads from FROM)`);
        }
        return { kind: 'block', source, target, layers, heads, span };
      }
      case 'cancel': {
        const name = item.sublayer.name;
        const sublayer = name === 'mlp' || name === 'attention' ? name : undefined;
        if (!sublayer) {
          this.error(item.sublayer.span, `unknown sublayer '${name}'`, didYouMean(name, ['mlp', 'attention'], 'write cancel mlp or cancel attention'));
        }
        const layers = this.layers(item.layers, scope);
        const positions: PositionSet | undefined = item.positions ? this.posExpr(item.positions, scope) : { kind: 'named', name: 'all' };
        if (!sublayer || !layers || !positions) return undefined;
        return { kind: 'cancel', sublayer, layers, positions, span };
      }
      case 'patch': {
        const layer = this.intExpr(item.layer, scope, 'a hidden-state index');
        const okLayer = this.checkIndex(layer, item.layer, scope, 'patch');
        const positions = this.posExpr(item.positions, scope);
        const index = this.intExpr(item.source, scope, 'a hidden-state index');
        const okIndex = this.checkIndex(index, item.source, scope, 'hidden');
        let okSource = true;
        if (item.corrupted && !this.hasCorrupted && this.statements('dataset').length > 0) {
          this.error(item.span, 'patch with corrupted hidden needs a corrupted prompt per fact, but the dataset has no corrupted field',
            'use a jsonl or csv dataset and map the corrupted prompt: fields prompt = "...", subject = "...", target = "...", corrupted = "<column>"');
          okSource = false;
        }
        if (!layer || !okLayer || !positions || !index || !okIndex || !okSource) return undefined;
        const kind = item.corrupted ? 'corrupted_hidden' : item.mean ? 'mean_hidden' : 'hidden';
        return { kind: 'patch', layer, positions, source: { kind, index }, span };
      }
    }
  }
}
