// The record a family detector keeps while matching: what it found (tensor and the op that
// produces it) and what it did not (what was expected, and the node where matching broke).
// detectSites turns a complete record into ModelSites; inspect shows any record.

import { GraphIndex, nodeLabel } from '../graph.js';
import type { ModelSites } from './types.js';
import { PatternBreak } from './pattern.js';

export interface FoundSite {
  readonly site: string;
  readonly tensor: string;
  /** Op and name of the node producing the tensor ('input' / 'initializer' otherwise). */
  readonly op: string;
  readonly node: string;
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

export class Recorder {
  constructor(private readonly ix: GraphIndex, readonly into: SectionFindings) {}

  found(site: string, tensor: string): string {
    const p = this.ix.producer(tensor);
    const op = p ? p.opType ?? '?' : this.ix.initializers.has(tensor) ? 'initializer' : this.ix.inputs.has(tensor) ? 'input' : '?';
    this.into.found.push({ site, tensor, op, node: p?.name ?? '' });
    return tensor;
  }

  missing(sites: readonly string[], e: unknown): void {
    if (!(e instanceof PatternBreak)) throw e;
    const have = new Set(this.into.found.map((f) => f.site));
    const already = new Set(this.into.missing.map((m) => m.site));
    for (const site of sites) {
      if (have.has(site) || already.has(site)) continue;
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
