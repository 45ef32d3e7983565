// The measure descriptors of an experiment (src/measure/descriptor.ts): one per output
// measure, one per probe, one per head of a per-head probe, in the order the experiment
// lists them. Built once per experiment; every row of the experiment writes these ids.

import type { Experiment, IntExpr, Probe } from '../lang/program.js';
import { attributionParts, integrationParts, type LayerRef, type MeasureDescriptor } from '../measure/descriptor.js';
import { positionSetText } from './text.js';

/** An integer expression of sweep variables in linear form. */
function layerRef(e: IntExpr): LayerRef {
  switch (e.kind) {
    case 'int': return { constant: e.value, variables: {} };
    case 'var': return { constant: 0, variables: { [e.name]: 1 } };
    case 'add': case 'sub': {
      const left = layerRef(e.left);
      const right = layerRef(e.right);
      const sign = e.kind === 'add' ? 1 : -1;
      const variables: Record<string, number> = { ...left.variables };
      for (const [name, c] of Object.entries(right.variables)) variables[name] = (variables[name] ?? 0) + sign * c;
      for (const [name, c] of Object.entries(variables)) if (c === 0) delete variables[name];
      return { constant: left.constant + sign * right.constant, variables };
    }
  }
}

/** One descriptor per head for a per-head probe, else one; the id of head h ends in ` [head h]`. */
function perHead(base: Omit<MeasureDescriptor, 'id'>, each: boolean, heads: number): MeasureDescriptor[] {
  if (!each) return [{ id: base.label, ...base }];
  return Array.from({ length: heads }, (_, head) => ({ id: `${base.label} [head ${head}]`, ...base, head }));
}

/** The descriptors one probe writes. */
export function probeDescriptors(p: Probe, heads: number): MeasureDescriptor[] {
  if (p.kind === 'attention_weight') {
    return perHead({
      label: p.label, probe: p.kind, site: 'attention_probs', layer: layerRef(p.layer),
      positions: positionSetText(p.target), keys: positionSetText(p.source),
    }, p.heads === 'each', heads);
  }
  if (p.kind === 'attribution' || p.kind === 'integrated_gradients') {
    const integration = p.kind === 'integrated_gradients' ? { steps: p.steps, baseline: p.baseline } : {};
    return (p.kind === 'attribution' ? attributionParts : integrationParts).map((part) => ({
      id: `${p.label} [${part}]`, label: p.label, probe: p.kind, site: 'hidden', layer: layerRef(p.site.index),
      positions: positionSetText(p.at), part, ...integration,
    }));
  }
  const site = p.site;
  return perHead({
    label: p.label, probe: p.kind,
    site: p.without ? 'recomputed' : site.kind,
    layer: site.kind === 'subject_embeddings' ? null : layerRef(site.kind === 'hidden' ? site.index : site.layer),
    positions: positionSetText(p.at),
    ...(p.without ? { without: positionSetText(p.without) } : {}),
    ...(p.k !== undefined ? { k: p.k } : {}),
  }, site.kind === 'heads', heads);
}

/** Every descriptor of an experiment: its output measures (read at the last position), then its probes. */
export function experimentDescriptors(exp: Experiment, heads: number): MeasureDescriptor[] {
  return [
    ...exp.measures.map((m): MeasureDescriptor => ({ id: m, label: m, probe: m, site: 'logits', layer: null, positions: 'last' })),
    ...exp.probes.flatMap((p) => probeDescriptors(p, heads)),
  ];
}
