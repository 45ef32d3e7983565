// Site detection over all known architecture families. Every family module matches by
// structure; the first that finds every site decides. Otherwise the report is that of the
// family whose signature matched (most sites found), with every family's first break.

import { UserError } from '../../errors.js';
import { canonicalise } from '../canonical.js';
import { expandFusedOps } from '../expand-fused.js';
import { GraphIndex } from '../graph.js';
import { inferDtypes } from '../infer.js';
import type { ModelProto } from '../proto.js';
import { firstBreak, type Detection, type FamilyAttempt } from './findings.js';
import { detectGpt2 } from './gpt2.js';
import { detectGptj } from './gptj.js';
import { detectLlama } from './llama.js';
import type { ModelSites, SiteOverride } from './types.js';

type FamilyDetector = (ix: GraphIndex, dtypes: ReadonlyMap<string, number>, overrides: readonly SiteOverride[]) => Detection;

/** One module per family (adding a family: a module exporting a FamilyDetector, listed here). */
const FAMILIES: readonly FamilyDetector[] = [detectGpt2, detectGptj, detectLlama];

function foundCount(d: Detection): number {
  return d.model.found.length + d.layers.reduce((a, L) => a + L.found.length, 0);
}

/**
 * Expands onnxruntime's fused ops in place (see expand-fused.ts), then runs every family
 * detector; returns the first that found every site, else the matched
 * one that found most, else the first attempt — with `attempts` listing every family.
 */
export function runDetection(model: ModelProto, source = 'model', overrides: readonly SiteOverride[] = []): Detection {
  const expanded = expandFusedOps(model, source);
  const noOps = canonicalise(model);
  const ix = new GraphIndex(model.graph ?? {});
  const dtypes = inferDtypes(ix);
  const all = FAMILIES.map((f) => f(ix, dtypes, overrides));
  const matched = all.filter((d) => d.matched).sort((a, b) => foundCount(b) - foundCount(a));
  const chosen = all.find((d) => d.sites) ?? matched[0] ?? all[0]!;
  const attempts: FamilyAttempt[] = all.map((d) => {
    const broke = firstBreak(d);
    return { family: d.family, matched: d.matched, supported: !!d.sites, ...(broke ? { broke } : {}) };
  });
  const counted = (ops: Record<string, number>) => Object.entries(ops).map(([op, count]) => `${count} × ${op}`).join(', ');
  const removedNote = Object.keys(noOps).length ? [`removed exporter no-ops (reading their input instead): ${counted(noOps)}`] : [];
  if (!Object.keys(expanded).length) return { ...chosen, notes: [...removedNote, ...chosen.notes], attempts };
  const notes = [`expanded onnxruntime's fused com.microsoft ops into standard ops: ${counted(expanded)}`, ...removedNote, ...chosen.notes];
  return { ...chosen, notes, attempts, ...(chosen.sites ? { sites: { ...chosen.sites, expandedFusedOps: expanded } } : {}) };
}

export class SiteError extends UserError {
  constructor(message: string, readonly detection: Detection) {
    super(message, 'Run `dissect inspect MODEL` to see what was found in each layer.');
    this.name = 'SiteError';
  }
}

/**
 * A merged decoder (an If choosing the cached branch) is refused before matching, with what to
 * export instead.
 */
function refuseMergedDecoder(model: ModelProto, source: string): void {
  const branch = (model.graph?.node ?? []).find((n) => n.opType === 'If');
  if (branch) {
    throw new UserError(`${source}: node '${branch.name ?? ''}' (If) selects between two decoder graphs: a merged decoder (use_cache_branch) is not supported`,
      'export the decoder without the merged cache branch, e.g. Optimum\'s decoder_model.onnx, or `optimum-cli export onnx --task text-generation` and take the file without past inputs');
  }
}

/** The sites of a supported model, or a SiteError naming the node where matching broke. */
export function detectSites(model: ModelProto, source = 'model', overrides: readonly SiteOverride[] = []): ModelSites {
  refuseMergedDecoder(model, source);
  const d = runDetection(model, source, overrides);
  if (d.sites) return d.sites;
  const others = (d.attempts ?? []).filter((a) => a.family !== d.family).map((a) => `${a.family}: ${a.broke ?? 'not matched'}`);
  throw new SiteError(`${source}: not a recognised ${d.matched ? d.family + ' ' : ''}transformer graph: ${firstBreak(d)}` +
    (others.length ? `; other families tried: ${others.join('; ')}` : ''), d);
}

export type { ModelSites, LayerSites, ModelInputs, KvCacheInput } from './types.js';
export type { Detection, FamilyAttempt, FoundSite, MissingSite, LayerFindings } from './findings.js';
