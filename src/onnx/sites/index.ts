// Site detection over all known architecture families. Each family module matches by
// structure; the first family whose signature matches decides.

import { UserError } from '../../errors.js';
import { GraphIndex } from '../graph.js';
import { inferDtypes } from '../infer.js';
import type { ModelProto } from '../proto.js';
import type { Detection } from './findings.js';
import { detectGpt2 } from './gpt2.js';
import type { ModelSites } from './types.js';

type FamilyDetector = (ix: GraphIndex, dtypes: ReadonlyMap<string, number>) => Detection;

const FAMILIES: readonly FamilyDetector[] = [detectGpt2];

/** Runs every family detector; returns the first that matched, else the first attempt. */
export function runDetection(model: ModelProto): Detection {
  const ix = new GraphIndex(model.graph ?? {});
  const dtypes = inferDtypes(ix);
  const attempts = FAMILIES.map((f) => f(ix, dtypes));
  return attempts.find((d) => d.sites) ?? attempts.find((d) => d.matched) ?? attempts[0]!;
}

export class SiteError extends UserError {
  constructor(message: string, readonly detection: Detection) {
    super(message, 'Run `dissect inspect MODEL` to see what was found in each layer.');
    this.name = 'SiteError';
  }
}

/** The sites of a supported model, or a SiteError naming the node where matching broke. */
export function detectSites(model: ModelProto, source = 'model'): ModelSites {
  const d = runDetection(model);
  if (d.sites) return d.sites;
  const first = d.model.missing[0]
    ? { where: 'model', m: d.model.missing[0] }
    : d.layers.filter((L) => L.missing.length).map((L) => ({ where: `layer ${L.layer}`, m: L.missing[0]! }))[0];
  const count = d.model.missing.length + d.layers.reduce((a, L) => a + L.missing.length, 0);
  const what = first
    ? `${first.where}: ${first.m.site} not found: at ${first.m.at}: expected ${first.m.expected}` +
      (count > 1 ? ` (${count - 1} more site(s) missing)` : '')
    : 'no layers found';
  throw new SiteError(`${source}: not a recognised ${d.matched ? d.family + ' ' : ''}transformer graph: ${what}`, d);
}

export type { ModelSites, LayerSites, ModelInputs, KvCacheInput } from './types.js';
export type { Detection, FoundSite, MissingSite, LayerFindings } from './findings.js';
