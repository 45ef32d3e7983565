// The `head_mappings` statement.
// A section of the checker (src/lang/checker.ts), a class extending the section it builds on.

import { layersOf } from '../evaluate.js';
import type { HeadMappingsSpec } from '../program.js';
import { emptyScope, valueIn } from './base.js';
import { SiteChecks } from './sites.js';

export abstract class HeadMappingChecks extends SiteChecks {
  headMappings(): HeadMappingsSpec | undefined {
    const h = this.single('head_mappings');
    if (!h) return undefined;
    let ok = true;
    const layers = new Set<number>();
    for (const item of h.layers) {
      const set = this.layerSet(item, emptyScope);
      if (!set) { ok = false; continue; }
      if (!this.shape) continue;
      const listed = layersOf(set, valueIn(new Map()), this.shape.layers, this.windowRule);
      if (listed.length === 0) {
        this.error(item.span, `layer set ${this.text(item.span)} holds no layer`, 'head_mappings needs at least one layer; widen the set');
        ok = false;
        continue;
      }
      for (const l of listed) layers.add(l);
    }
    const hint = 'syntax: head_mappings layers <layers> top <k>, where each head reports its k largest token → token entries';
    const top = this.intValue(h.top, emptyScope, 'a count');
    let k: number | undefined = top?.kind === 'int' ? top.value : undefined;
    if (k !== undefined && k < 1) {
      this.error(h.top.span, `head_mappings top must be at least 1, got ${k}`, hint);
      k = undefined;
    } else if (k !== undefined && !this.fitsVocabulary(`head_mappings top ${k}`, k, h.top.span,
      () => 'each head reports at most as many pairs as the vocabulary has tokens')) {
      k = undefined;
    }
    if (!ok || k === undefined) return undefined;
    return { layers: [...layers].sort((a, b) => a - b), top: k, span: this.span(h.span) };
  }
}
