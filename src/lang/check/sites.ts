// `site` statements: their names and layers.
// A section of the checker (src/lang/checker.ts), a class extending the section it builds on.

import type * as A from '../ast.js';
import { didYouMean } from '../diagnostics.js';
import { span as inclusiveRange } from '../evaluate.js';
import { maxOverrideLayer } from '../limits.js';
import { overridableSites, type OverridableSite } from '../program.js';
import { emptyScope, type CheckedSite } from './base.js';
import { plural } from '../../plural.js';
import { ExperimentChecks } from './experiments.js';

function overlaps(a: 'all' | readonly number[], b: 'all' | readonly number[]): boolean {
  return a === 'all' || b === 'all' || a.some((l) => b.includes(l));
}

export abstract class SiteChecks extends ExperimentChecks {
  /**
   * The `site` statements, checked before the model is read because detection needs them; their
   * layers are checked against the model once its shape is known (siteLayersInRange).
   */
  siteOverrides(): CheckedSite[] {
    const out: CheckedSite[] = [];
    for (const stmt of this.statements('site')) {
      const name = stmt.name.name;
      const site = (overridableSites as readonly string[]).includes(name) ? name as OverridableSite : undefined;
      if (!site) this.error(stmt.name.span, `unknown site '${name}'`, didYouMean(name, overridableSites, `sites: ${overridableSites.join(', ')}`));
      const layers = this.overrideLayers(stmt.layers);
      const tensor = this.stringValue(stmt.tensor, 'a tensor name');
      const placeholder = tensor?.match(/\{(?!layer\})[^}]*\}/)?.[0];
      if (placeholder) {
        this.error(stmt.tensor.span, `unknown placeholder ${placeholder} in the tensor name`, 'the only placeholder is {layer}, the layer number');
      }
      if (!site || !layers || tensor === undefined || placeholder) continue;
      const clash = out.find((o) => o.spec.site === site && overlaps(o.spec.layers, layers));
      if (clash) {
        this.error(stmt.span, `site ${site} is overridden twice for the same layer`, `the other override is at line ${clash.stmt.span.line}; give each layer one tensor`);
        continue;
      }
      out.push({ spec: { site, layers, tensor, span: this.span(stmt.span) }, stmt });
    }
    return out;
  }

  /** all, a constant layer or a constant range: what can be read before the model is. */
  overrideLayers(l: A.LayerExpr): 'all' | number[] | undefined {
    if (l.kind === 'all') return 'all';
    const set = l.kind === 'single' || l.kind === 'range' ? this.layerSet(l, emptyScope) : undefined;
    if (l.kind !== 'single' && l.kind !== 'range') {
      this.error(l.span, 'a site override takes all, a layer or a range a..b', 'write e.g. site mlp_act at layers 0..11 = "..."');
    }
    if (set?.kind === 'single' && set.layer.kind === 'int') return [set.layer.value];
    if (set?.kind === 'range' && set.from.kind === 'int' && set.to.kind === 'int') {
      const beyond = [set.from.value, set.to.value].find((v) => v < 0 || v > maxOverrideLayer);
      if (beyond === undefined) return inclusiveRange(set.from.value, set.to.value);
      this.error(l.span, `layer ${beyond} is out of range: a site override names layers 0..${maxOverrideLayer}`,
        'layers are numbered from 0 (the first block); no model has that many');
    }
    return undefined;
  }

  siteLayersInRange(sites: readonly CheckedSite[]): void {
    if (!this.shape) return;
    const L = this.shape.layers;
    for (const { spec, stmt } of sites) {
      const beyond = spec.layers === 'all' ? undefined : spec.layers.find((l) => l >= L);
      if (beyond !== undefined) {
        this.error(stmt.layers.span, `layer ${beyond} is out of range: the model has ${plural(L, 'layer')} (0..${L - 1})`,
          'layers are numbered from 0 (the first block)');
      }
    }
  }
}
