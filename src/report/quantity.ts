// How a measured number reads: the words and unit of each probe (the console summary's
// table titles, the report's axis titles) and each measure written out with its values.
// Descriptors hold parameters already replaced by values, so `hidden measured` reads
// `hidden 7` here.

import { probeQuantity, type ProbeName, type Quantity } from '../lang/probes.js';
import { measureNames, type MeasureName } from '../lang/program.js';
import type { LayerRef, MeasureDescriptor } from '../measure/descriptor.js';

/** The output measures' units; each probe's is in its registry entry. */
const MEASURE_QUANTITIES: Readonly<Record<MeasureName, Quantity>> = {
  probability_change: { title: 'change in p(prediction), %', factor: 1, log: false },
  probability: { title: 'p(prediction)', factor: 1, log: false },
  rank: { title: 'rank (0 = top-1)', factor: 1, log: true },
};

export const quantity = (d: MeasureDescriptor): Quantity =>
  (measureNames as readonly string[]).includes(d.probe) ? MEASURE_QUANTITIES[d.probe as MeasureName] : probeQuantity(d.probe as ProbeName);

/** A stored value in the measure's shown unit; null when there is none. */
export const shownValue = (d: MeasureDescriptor, v: number | null | undefined): number | null =>
  v === null || v === undefined ? null : v * quantity(d).factor;

/** `l + 1`, `7`, `start - 1`. */
function layerRefText(ref: LayerRef): string {
  const terms = Object.entries(ref.variables).map(([name, c]) => (c === 1 ? name : c === -1 ? `-${name}` : `${c}·${name}`));
  if (terms.length === 0) return String(ref.constant);
  const head = terms.join(' + ').replace(/\+ -/g, '- ');
  return ref.constant === 0 ? head : `${head} ${ref.constant > 0 ? '+' : '-'} ${Math.abs(ref.constant)}`;
}

/** The measure as the language writes it, with values where the source has parameters. */
export function measureText(d: MeasureDescriptor): string {
  const layer = d.layer ? layerRefText(d.layer) : '';
  const head = d.head === undefined ? '' : ` [head ${d.head}]`;
  switch (d.site) {
    case 'logits': return d.probe;
    case 'attention_probs': return `${d.probe} ${d.keys} -> ${d.positions} at layer ${layer}${head}`;
    case 'subject_embeddings': return `${d.probe} of subject_embeddings`;
    default: {
      const k = d.k === undefined ? '' : ` ${d.k}`;
      const site = d.site === 'recomputed' ? `attention ${layer} without ${d.without}` : `${d.site} ${layer}`;
      const integration = d.steps === undefined ? '' : ` steps ${d.steps} baseline ${d.baseline}`;
      const part = d.part === undefined ? '' : ` [${d.part}]`;
      return `${d.probe}${k} of ${site}${integration} at ${d.positions}${head}${part}`;
    }
  }
}
