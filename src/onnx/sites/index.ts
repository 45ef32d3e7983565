// Site detection: onnxruntime's fused ops expanded and exporter no-ops removed, then one
// structural matcher for decoder-only transformers (decoder.ts), whose families are names for
// the combinations of parts it finds.

import { UserError } from '../../errors.js';
import { canonicalise } from '../canonical.js';
import { expandFusedOps } from '../expand-fused.js';
import { GraphIndex } from '../graph.js';
import { inferDtypes } from '../infer.js';
import type { ModelProto } from '../proto.js';
import { firstBreak, type Detection } from './findings.js';
import { detectDecoder } from './decoder.js';
import { siteStatementName, type ModelSites, type SiteOverride } from './types.js';

/**
 * Expands onnxruntime's fused ops (expand-fused.ts) and removes exporter no-ops (canonical.ts),
 * in place, then matches the decoder's skeleton; what was changed is noted.
 */
export function runDetection(model: ModelProto, source = 'model', overrides: readonly SiteOverride[] = []): Detection {
  const expanded = expandFusedOps(model, source);
  const canonical = canonicalise(model);
  const ix = new GraphIndex(model.graph ?? {});
  const d = detectDecoder(ix, inferDtypes(ix), overrides);
  const counted = (ops: Record<string, number>) => Object.entries(ops).map(([op, count]) => `${count} × ${op}`).join(', ');
  const notes = [
    ...(Object.keys(expanded).length ? [`expanded onnxruntime's fused com.microsoft ops into standard ops: ${counted(expanded)}`] : []),
    ...(Object.keys(canonical.removed).length ? [`removed exporter no-ops (reading their input instead): ${counted(canonical.removed)}`] : []),
    ...(canonical.mergedDecoder ? [`merged decoder: the with-past branch of its If runs (fed an empty past for whole prompts); the input ${canonical.mergedDecoder} is removed`] : []),
    ...(canonical.unflattened ? [`${canonical.unflattened} residual streams flattened to [b·s, d] around a sublayer restored to [b, s, d] (its linear layers as MatMuls)`] : []),
    ...(canonical.mergedHeads ? [`${canonical.mergedHeads} attention head merges straight to 2-D given a Reshape to [b, s, d] first (the context site)`] : []),
    ...d.notes,
  ];
  const fused = Object.keys(expanded).length && d.sites ? { sites: { ...d.sites, expandedFusedOps: expanded } } : {};
  return { ...d, notes, ...fused };
}

/** How a `site` statement names the tensor of a layer site that was not found (snake_case, `{layer}` for the number). */
function siteStatementHint(d: Detection): string {
  const broken = d.layers.find((L) => L.missing.length);
  const site = broken?.missing[0]?.site;
  const statement = site ? `site ${siteStatementName(site)} at layers all = "<its tensor, with {layer} for the layer number>"` : undefined;
  return `Run \`dissect inspect MODEL\` to see what was found in each layer${statement ? `; if the graph has the tensor under another shape, name it in the .dissect file: ${statement} (spec.md#site)` : ''}.`;
}

export class SiteError extends UserError {
  constructor(message: string, readonly detection: Detection) {
    super(message, siteStatementHint(detection));
    this.name = 'SiteError';
  }
}

/** The sites of a supported model, or a SiteError naming the node where matching broke. */
export function detectSites(model: ModelProto, source = 'model', overrides: readonly SiteOverride[] = []): ModelSites {
  const d = runDetection(model, source, overrides);
  if (d.sites) return d.sites;
  throw new SiteError(`${source}: not a recognised ${d.matched ? d.family + ' ' : ''}transformer graph: ${firstBreak(d)}`, d);
}

export type { ModelSites, LayerSites, ModelInputs, KvCacheInput } from './types.js';
export type { Detection, FoundSite, MissingSite, LayerFindings } from './findings.js';
