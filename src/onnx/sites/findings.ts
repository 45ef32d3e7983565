// The record the detector keeps while matching: what it found (tensor and the op that
// produces it) and what it did not (what was expected, and the node where matching broke).
// detectSites turns a complete record into ModelSites; inspect shows any record.

import { GraphIndex, nodeLabel } from '../graph.js';
import { UserError } from '../../errors.js';
import { siteStatementName, type ModelSites, type SiteOverride } from './types.js';
import { PatternBreak } from './pattern.js';

export interface FoundSite {
  readonly site: string;
  readonly tensor: string;
  /** Op and name of the node producing the tensor ('input' / 'initializer' otherwise). */
  readonly op: string;
  readonly node: string;
  /** Named by a site override rather than found by the pattern. */
  readonly override?: true;
}

export interface MissingSite {
  readonly site: string;
  readonly expected: string;
  /** The node where the pattern broke, as "'name' (Op)". */
  readonly at: string;
}

export interface SectionFindings {
  readonly found: FoundSite[];
  readonly missing: MissingSite[];
}

export interface LayerFindings extends SectionFindings {
  readonly layer: number;
}

export interface Detection {
  readonly family: string;
  /** The family's signature matched (embedding, blocks): its findings are meaningful. */
  readonly matched: boolean;
  readonly model: SectionFindings;
  readonly layers: LayerFindings[];
  readonly notes: string[];
  /** Present when every site was found. */
  readonly sites?: ModelSites;
}

/** The first site a detection missed, as text, and how many more it missed. */
export function firstBreak(d: Detection): string | undefined {
  if (d.sites) return undefined;
  const first = d.model.missing[0]
    ? { where: 'model', m: d.model.missing[0] }
    : d.layers.filter((L) => L.missing.length).map((L) => ({ where: `layer ${L.layer}`, m: L.missing[0]! }))[0];
  const count = d.model.missing.length + d.layers.reduce((a, L) => a + L.missing.length, 0);
  return first
    ? `${first.where}: ${siteStatementName(first.m.site)} not found: at ${first.m.at}: expected ${first.m.expected}` +
      (count > 1 ? ` (${count - 1} more site(s) missing)` : '')
    : 'no layers found';
}

/** A site override naming a tensor the graph does not have; `index` is the override's position in the list. */
export class SiteOverrideError extends UserError {
  constructor(message: string, readonly index: number) {
    super(message, 'a site override names a tensor of the graph; `dissect inspect MODEL` lists the tensors detection found');
    this.name = 'SiteOverrideError';
  }
}

/** The overrides that apply to layer l, site → tensor (with {layer} replaced), and each one's index. */
export function overridesOfLayer(overrides: readonly SiteOverride[], l: number): Map<string, { tensor: string; index: number }> {
  const out = new Map<string, { tensor: string; index: number }>();
  overrides.forEach((o, index) => {
    if (o.layers === 'all' || o.layers.includes(l)) out.set(o.site, { tensor: o.tensor.replaceAll('{layer}', String(l)), index });
  });
  return out;
}

export class Recorder {
  constructor(
    private readonly ix: GraphIndex, readonly into: SectionFindings,
    private readonly overrides: ReadonlyMap<string, { tensor: string; index: number }> = new Map(),
  ) {}

  /** Records `tensor` for `site` (the override's tensor instead, if the site has one); returns what it recorded. */
  found(site: string, tensor: string): string {
    const chosen = this.override(site) ?? tensor;
    const p = this.ix.producer(chosen);
    const op = p ? p.opType ?? '?' : this.ix.initializers.has(chosen) ? 'initializer' : 'input';
    this.into.found.push({ site, tensor: chosen, op, node: p?.name ?? '', ...(this.overrides.has(site) ? { override: true as const } : {}) });
    return chosen;
  }

  /**
   * The tensor a site override names for `site`, if any. Matchers ask before locating a site whose
   * pattern may not match, and record it with `found` once what follows it has matched.
   */
  override(site: string): string | undefined {
    const o = this.overrides.get(site);
    if (o && !this.ix.producer(o.tensor) && !this.ix.inputs.has(o.tensor) && !this.ix.initializers.has(o.tensor)) {
      const where = 'layer' in this.into ? ` at layer ${(this.into as LayerFindings).layer}` : '';
      throw new SiteOverrideError(`site override ${siteStatementName(site)}${where}: the graph has no tensor named '${o.tensor}'`, o.index);
    }
    return o?.tensor;
  }

  missing(sites: readonly string[], e: unknown): void {
    if (!(e instanceof PatternBreak)) throw e;
    const have = new Set(this.into.found.map((f) => f.site));
    const already = new Set(this.into.missing.map((m) => m.site));
    for (const site of sites) {
      if (have.has(site) || already.has(site)) continue;
      already.add(site);
      this.into.missing.push({ site, expected: e.expected, at: nodeLabel(e.at) });
    }
  }

  /** Runs a matching step; on a PatternBreak, records every site of `sites` not found yet. */
  attempt<T>(sites: readonly string[], step: () => T): T | undefined {
    try {
      return step();
    } catch (e) {
      this.missing(sites, e);
      return undefined;
    }
  }

  get(site: string): string | undefined {
    return this.into.found.find((f) => f.site === site)?.tensor;
  }
}
