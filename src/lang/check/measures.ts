// Measure statements: output measures, probes (the registry of src/lang/probes.ts) and summaries.
// A section of the checker (src/lang/checker.ts), a class extending the section it builds on.

import type * as A from '../ast.js';
import { didYouMean, suggestThen } from '../diagnostics.js';
import { layersOf } from '../evaluate.js';
import { maxIntegrationSteps } from '../limits.js';
import { findProbe, probeNames, siteNames, siteProbe, siteProbesThat, type SiteName, type SiteProbe } from '../probes.js';
import {
  integrationBaselines, measureNames, type AttributionProbe, type ExtractionSummary, type IntegrationBaseline, type LayerSet, type MeasureName,
  type PositionSet, type Probe, type Site, type Sweep,
} from '../program.js';
import { emptyScope, valueIn, type Scope } from './base.js';
import { InterventionChecks } from './interventions.js';

/** The options `integrated_gradients` takes after its site, and the steps it takes when `steps` is not written. */
const integrationOptions = ['steps', 'baseline'] as const;
const defaultIntegrationSteps = 64;

/** A site as a probe's syntax hint writes it. */
const siteSyntax = (site: SiteName): string => (site === 'subject_embeddings' ? site : `${site} <n>`);
export const summaryNames = ['extraction'] as const;

export abstract class MeasureChecks extends InterventionChecks {
  /** The site a probe reads; `allowed`: the sites that probe can read. */
  site(s: A.SiteExpr, scope: Scope, probe: string, allowed: readonly SiteName[]): Site | undefined {
    const kind = s.kind.name;
    if (kind === 'subject_embeddings' && s.index) {
      this.intExpr(s.index, scope, 'a layer');
      this.error(s.index.span, 'subject_embeddings takes no index',
        'write: <probe> of subject_embeddings (the mean token embedding of the subject, read before any block)');
      return undefined;
    }
    if (kind !== 'subject_embeddings' && !s.index) throw new Error(`internal: site '${kind}' without an index passed the parser`);
    const index = s.index && this.intExpr(s.index, scope, kind === 'hidden' ? 'a hidden-state index' : 'a layer');
    if (!(siteNames as readonly string[]).includes(kind)) {
      this.error(s.kind.span, `unknown site '${kind}'`,
        didYouMean(kind, siteNames, 'sites: hidden <n> (a hidden state), attention <n>, mlp <n>, heads <n> (a block\'s update), subject_embeddings'));
      return undefined;
    }
    const known = kind as SiteName;
    if (!allowed.includes(known)) {
      this.error(s.kind.span, `${probe} cannot read ${known}`,
        `${known} is read by ${siteProbesThat((p) => p.sites.includes(known)).join(', ')}; ${probe} reads ${allowed.join(', ')}`);
      return undefined;
    }
    if (known === 'subject_embeddings') return { kind: known };
    if (!this.checkIndex(index, s.index!, scope, known === 'hidden' ? 'hidden' : 'layer') || !index) return undefined;
    return known === 'hidden' ? { kind: known, index } : { kind: known, layer: index };
  }

  probe(item: A.MeasureItem, scope: Scope): Probe | undefined {
    const label = item.text;
    const span = this.span(item.span);
    if (item.kind === 'attention_weight') {
      const source = this.posExpr(item.source, scope);
      const target = this.posExpr(item.target, scope);
      const layer = this.intExpr(item.layer, scope, 'a layer');
      const okLayer = this.checkIndex(layer, item.layer, scope, 'layer');
      let heads: 'all' | 'each' | undefined = 'all';
      if (item.heads && item.heads.name !== 'all' && item.heads.name !== 'each') {
        this.error(item.heads.span, `unknown heads mode '${item.heads.name}' for attention_weight`,
          suggestThen(item.heads.name, ['all', 'each'], 'heads all (the mean over heads) or heads each (one value per head)'));
        heads = undefined;
      } else if (item.heads) {
        heads = item.heads.name as 'all' | 'each';
      }
      if (!source || !target || !layer || !okLayer || !heads) return undefined;
      return { kind: 'attention_weight', source, target, layer, heads, label, span };
    }
    const probe = findProbe(item.name.name);
    if (!probe) throw new Error(`internal: probe '${item.name.name}' passed the parser but is not in the registry`);
    if (probe.syntax === 'attention_weight') {
      this.error(item.name.span, 'attention_weight needs source and target positions and a layer',
        'syntax: attention_weight <positions> -> <positions> at layer <n> [heads all | each]');
      return undefined;
    }
    if (probe.syntax === 'gradient') return this.attributionProbe(item, probe.name, scope);
    const name = probe.name;
    const syntax = `syntax: ${name}${probe.topTokens === 'count' ? ' <k>' : ''} of ${probe.sites.map(siteSyntax).join(' | ')} [at <positions>]`;
    if (item.options) {
      this.error(item.options[0]!.span, `${name} takes no options`, 'options (steps, baseline) belong to integrated_gradients');
      return undefined;
    }
    let ok = true;
    if (probe.topTokens === 'candidates') {
      this.usesAttributes = true;
      if (!this.hasAttributes) {
        this.error(item.name.span, `${name} needs an attributes statement`,
          'add an attributes statement, e.g. attributes json "attributes.json" (a map from subject to attribute strings)');
        ok = false;
      }
    }
    let k: number | undefined;
    if (probe.topTokens === 'count') {
      if (!item.count) {
        this.error(item.name.span, `${name} needs a count`, syntax);
        ok = false;
      } else {
        k = this.count(item.count, scope);
        if (k !== undefined && k < 1) {
          this.error(item.count.span, `${name} needs at least 1 token, got ${k}`, syntax);
          k = undefined;
        } else if (k !== undefined && !this.fitsVocabulary(`${name} ${k}`, k, item.count.span, () => 'the projection ranks every vocabulary token once')) {
          k = undefined;
        }
        if (k === undefined) ok = false;
      }
    } else if (item.count) {
      this.error(item.count.span, `${name} takes no count`,
        `only ${siteProbesThat((p) => p.topTokens === 'count').join(', ')} takes a count: top_tokens <k> of <site>`);
      ok = false;
    }
    if (!item.site) {
      this.error(item.name.span, `${name} needs a site`, syntax);
      if (item.at) this.posExpr(item.at, scope);
      return undefined;
    }
    const site = this.site(item.site, scope, name, probe.sites);
    if (item.site.kind.name === 'subject_embeddings' && (item.at || item.without)) {
      const extraSpan = item.at ? item.at.span : item.without!.span;
      this.error(extraSpan, `subject_embeddings takes no ${item.at ? 'at' : 'without'} clause`,
        'subject_embeddings is read over the subject\'s positions: write <probe> of subject_embeddings');
      return undefined;
    }
    // subject_embeddings averages over the subject's positions: its `at` is `subject`
    const implicitAt: PositionSet = { kind: 'named', name: item.site.kind.name === 'subject_embeddings' ? 'subject' : 'last' };
    const at: PositionSet | undefined = item.at ? this.posExpr(item.at, scope) : implicitAt;
    let without: PositionSet | undefined;
    if (item.without) {
      without = this.posExpr(item.without, scope);
      if (!this.withoutAllowed(item, probe, at)) ok = false;
    }
    if (!ok || !site || !at || (item.without && !without)) return undefined;
    return { kind: name, ...(k !== undefined ? { k } : {}), site, at, ...(without ? { without } : {}), label, span };
  }

  /**
   * `attribution of hidden h [at P]` and `integrated_gradients of hidden h [steps n] [baseline
   * mean | zero] [at P]`: a hidden state (no count, no without), every position by default.
   */
  attributionProbe(item: Extract<A.MeasureItem, { kind: 'named' }>, name: AttributionProbe['kind'], scope: Scope): AttributionProbe | undefined {
    const label = item.text;
    const span = this.span(item.span);
    const syntax = name === 'attribution' ? 'syntax: attribution of hidden <n> [at <positions>]'
      : 'syntax: integrated_gradients of hidden <n> [steps <n>] [baseline mean | zero] [at <positions>]';
    let ok = true;
    if (item.count) {
      this.error(item.count.span, `${name} takes no count`, syntax);
      ok = false;
    }
    if (!item.site) {
      this.error(item.name.span, `${name} needs a site`, syntax);
      return undefined;
    }
    // a known site other than hidden: said in the gradient's terms (a misspelt one: site() suggests)
    if (item.site.kind.name !== 'hidden' && (siteNames as readonly string[]).includes(item.site.kind.name)) {
      if (item.site.index) this.intExpr(item.site.index, scope, 'a layer');
      this.error(item.site.kind.span, `${name} reads hidden states only, not ${item.site.kind.name}`,
        `${syntax}  (the gradient is taken with respect to the residual stream)`);
      return undefined;
    }
    const site = this.site(item.site, scope, name, ['hidden']);
    if (item.without) {
      this.error(item.without.span, `${name} takes no without clause`, syntax);
      ok = false;
    }
    const at = item.at ? this.posExpr(item.at, scope) : { kind: 'named', name: 'all' } as const;
    if (name === 'attribution') {
      if (item.options) {
        this.error(item.options[0]!.span, 'attribution takes no options', 'steps and baseline are options of integrated_gradients');
        ok = false;
      }
      return ok && site?.kind === 'hidden' && at ? { kind: name, site, at, label, span } : undefined;
    }
    const options = this.integrationOptions(item.options ?? [], scope);
    return ok && site?.kind === 'hidden' && at && options ? { kind: name, site, at, ...options, label, span } : undefined;
  }

  /** `steps n` (1 … maxIntegrationSteps, default defaultIntegrationSteps) and `baseline mean | zero` (default mean), each at most once. */
  integrationOptions(options: readonly A.NameValueOption[], scope: Scope): { steps: number; baseline: IntegrationBaseline } | undefined {
    const named = this.namedOptions(options, integrationOptions, {
      unknown: (name) => `unknown option '${name}' for integrated_gradients`, owner: '',
      list: 'options: steps <n> (the integration points), baseline mean | zero',
    });
    let ok = named.ok;
    let baseline: IntegrationBaseline = 'mean';
    const b = named.given.get('baseline');
    if (b) {
      const value = this.optionWord(b);
      if ((integrationBaselines as readonly string[]).includes(value)) {
        baseline = value as IntegrationBaseline;
      } else {
        this.error(b.value.span, `unknown baseline '${value}'`,
          didYouMean(value, integrationBaselines, 'baselines: mean (the dataset\'s mean hidden state) or zero'));
        ok = false;
      }
    }
    let steps = defaultIntegrationSteps;
    const s = named.given.get('steps');
    if (s) {
      const n = this.count(s.value, scope);
      if (n === undefined) {
        ok = false;
      } else if (n < 1 || n > maxIntegrationSteps) {
        this.error(s.value.span, `integrated_gradients takes 1 to ${maxIntegrationSteps} steps, got ${n}`,
          `each step is one forward and backward pass per fact; the completeness gap shrinks with steps (64 keeps it within 1% on the test models)`);
        ok = false;
      } else {
        steps = n;
      }
    }
    return ok ? { steps, baseline } : undefined;
  }

  /**
   * `without S` recomputes block l's attention update at the last position: it needs
   * `attention <l>`, no `at` other than last, and a probe that reads the projection's top
   * tokens or the target's rank.
   */
  withoutAllowed(item: Extract<A.MeasureItem, { kind: 'named' }>, probe: SiteProbe, at: PositionSet | undefined): boolean {
    const syntax = `syntax: ${siteProbesThat((p) => p.without).map((n) => (siteProbe(n).topTokens === 'count' ? `${n} <k>` : n)).join(' | ')} ` +
      'of attention <l> without <positions>';
    if (!probe.without) {
      this.error(item.name.span, `${probe.name} cannot read a recomputed attention update (without)`, syntax);
      return false;
    }
    if (item.site!.kind.name !== 'attention') {
      this.error(item.site!.kind.span, `without recomputes an attention update; it cannot read ${item.site!.kind.name}`,
        `${syntax}  (the keys are removed from block l's attention at the last position)`);
      return false;
    }
    const atLast = at === undefined || (at.kind === 'named' && at.name === 'last') ||
      (at.kind === 'indices' && at.indices.length === 1 && at.indices[0] === -1);
    if (item.at && !atLast) {
      this.error(item.at.span, 'a recomputed attention update exists at the last position only',
        'drop the at clause (or write at last): without recomputes the last position\'s update');
      return false;
    }
    return true;
  }

  /** top_tokens' count: an integer literal or an integer parameter (not a sweep variable). */
  count(v: A.IntValue, scope: Scope): number | undefined {
    if (v.kind === 'ref' && scope.vars.has(v.name)) {
      scope.used.add(v.name);
      this.error(v.span, `sweep variable '${v.name}' cannot be a count`, 'a count is an integer or an integer parameter');
      return undefined;
    }
    const e = this.intValue(v, emptyScope, 'a count');
    return e?.kind === 'int' ? e.value : undefined;
  }

  measures(x: A.ExperimentStmt, scope: Scope): { measures: MeasureName[]; probes: Probe[] } | undefined {
    const stmts = x.items.filter((i): i is A.MeasureStmt => i.kind === 'measure');
    if (stmts.length === 0) {
      this.error(x.name.span, `experiment '${x.name.name}' has no measure statement`, `add: measure ${measureNames.join(', ')}`);
      return undefined;
    }
    const measures: MeasureName[] = [];
    const probes: Probe[] = [];
    const labels = new Set<string>();
    let ok = true;
    for (const m of stmts.flatMap((s) => s.items)) {
      if (m.kind === 'named' && (measureNames as readonly string[]).includes(m.name.name)) {
        const extra = m.count?.span ?? m.site?.span;
        if (extra) {
          this.error(extra, `measure '${m.name.name}' reads the model's output and takes no ${m.count ? 'count' : 'site'}`,
            `write: measure ${m.name.name}; probes of internal sites are ${probeNames.join(', ')}`);
          ok = false;
          continue;
        }
        if (measures.includes(m.name.name as MeasureName)) {
          this.error(m.span, `measure '${m.name.name}' is listed twice`, 'list each measure once');
          ok = false;
          continue;
        }
        measures.push(m.name.name as MeasureName);
        continue;
      }
      if (m.kind === 'named' && !(probeNames as readonly string[]).includes(m.name.name)) {
        this.error(m.name.span, `unknown measure '${m.name.name}'`,
          suggestThen(m.name.name, [...measureNames, ...probeNames], `measures: ${measureNames.join(', ')}; probes: ${probeNames.join(', ')}`));
        ok = false;
        continue;
      }
      const probe = this.probe(m, scope);
      if (!probe) { ok = false; continue; }
      if (labels.has(probe.label)) {
        this.error(m.span, `probe '${probe.label}' is listed twice`, 'list each probe once');
        ok = false;
        continue;
      }
      labels.add(probe.label);
      if ('without' in probe && probe.without) {
        const first = probes.find((p) => 'without' in p && p.without !== undefined);
        if (first && 'without' in first && JSON.stringify(first.without) !== JSON.stringify(probe.without)) {
          this.error(m.span, `an experiment recomputes with one removed set per row, but '${probe.label}' and '${first.label}' remove different sets`,
            'sweep the set instead: for s in positions subject, last ... and measure ... without s (or use two experiments)');
          ok = false;
          continue;
        }
      }
      if (probe.kind === 'integrated_gradients') {
        const first = probes.find((p) => p.kind === 'integrated_gradients');
        if (first) {
          this.error(m.span, 'an experiment has one integrated_gradients probe at most: its rows replace the hidden state they integrate along',
            `the first is '${first.label}'; sweep the hidden state instead (for h in hidden all) or use another experiment`);
          ok = false;
          continue;
        }
      }
      probes.push(probe);
    }
    return ok ? { measures, probes } : undefined;
  }

  /**
   * `summarize extraction` in experiment `x`. Its layer sweeps are counted as written: one that
   * could not be listed (an error of its own, or `layers all` of a model that could not be read)
   * is already reported, and is no reason for a second error here.
   */
  summary(s: A.SummarizeStmt, x: A.ExperimentStmt, sweeps: readonly Sweep[], probes: readonly Probe[] | undefined, scope: Scope): ExtractionSummary | undefined {
    const what = s.what.name;
    if (!(summaryNames as readonly string[]).includes(what)) {
      this.error(s.what.span, `unknown summary '${what}'`, didYouMean(what, summaryNames, `summaries: ${summaryNames.join(', ')}`));
      return undefined;
    }
    const layerSweeps = x.items.filter((i): i is A.ForStmt => i.kind === 'for' && i.domain.kind === 'layers');
    let ok = true;
    if (layerSweeps.length === 0) {
      this.error(s.span, 'summarize extraction needs a layer sweep in its experiment',
        'add: for l in layers all, and measure extraction of attention l (the summary counts events over the layers of l)');
      ok = false;
    } else if (layerSweeps.length > 1) {
      this.error(s.span, `summarize extraction needs exactly one layer sweep, but this experiment has ${layerSweeps.length} (${layerSweeps.map((f) => `'${f.variable.name}'`).join(', ')})`,
        'the summary counts events over the layers of one sweep; move the other sweep to another experiment');
      ok = false;
    }
    if (probes !== undefined && !probes.some((p) => p.kind === 'extraction')) {
      this.error(s.span, 'summarize extraction needs an extraction probe in its experiment',
        'add: measure extraction of attention l (or mlp l, heads l, hidden l)');
      ok = false;
    }
    let layers: LayerSet | undefined;
    if (s.layers) {
      layers = this.layerSet(s.layers, { ...scope, inSummary: true });
      if (!layers) return undefined;
      const sweep = sweeps.find((w): w is Extract<Sweep, { kind: 'layers' | 'hidden' }> => w.kind === 'layers');
      if (ok && sweep && this.shape) {
        const counted = layersOf(layers, valueIn(new Map()), this.shape.layers, this.windowRule);
        if (!counted.some((l) => sweep.values.includes(l))) {
          this.warn(s.layers.span, `the summary counts no layer: none of ${this.text(s.layers.span)} is in the sweep over '${sweep.variable}'`,
            `the sweep over '${sweep.variable}' is at line ${sweep.span.line}`);
        }
      }
    }
    if (!ok) return undefined;
    return { kind: 'extraction', ...(layers ? { layers } : {}), span: this.span(s.span) };
  }
}
