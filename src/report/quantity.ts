// How a measured number reads: the words and unit of each probe (the console summary's
// table titles, the report's axis titles) and each measure written out with its values.
// Descriptors hold parameters already replaced by values, so `hidden measured` reads
// `hidden 7` here.

import type { LayerRef, MeasureDescriptor, ProbeName } from '../measure/descriptor.js';

export interface Quantity {
  /** What the number is, with its unit. */
  readonly title: string;
  /** Shown value = stored value × factor: extraction's 0/1 events are shown in % of examples, as the summaries count them. */
  readonly factor: number;
  /** Ranks span orders of magnitude: they are drawn on a log axis (symlog, so that rank 0, the top-1, has a place). */
  readonly log: boolean;
}

const QUANTITIES: Readonly<Record<ProbeName, Quantity>> = {
  probability_change: { title: 'change in p(prediction), %', factor: 1, log: false },
  probability: { title: 'p(prediction)', factor: 1, log: false },
  rank: { title: 'rank (0 = top-1)', factor: 1, log: true },
  attributes_rate: { title: 'attributes rate, %', factor: 1, log: false },
  extraction: { title: 'examples with an event, %', factor: 100, log: false },
  target_rank: { title: 'projection rank (0 = top-1)', factor: 1, log: true },
  attention_weight: { title: 'attention weight', factor: 1, log: false },
  top_tokens: { title: 'top tokens', factor: 1, log: false },
  attribution: { title: 'gradient × hidden state, per position', factor: 1, log: false },
  integrated_gradients: { title: 'integrated gradients, per position', factor: 1, log: false },
};

export const quantity = (d: MeasureDescriptor): Quantity => QUANTITIES[d.probe];

/** A stored value in the measure's shown unit; null when there is none. */
export const shownValue = (d: MeasureDescriptor, v: number | null | undefined): number | null =>
  v === null || v === undefined ? null : v * QUANTITIES[d.probe].factor;

/** `l + 1`, `7`, `start - 1`. */
export function layerRefText(ref: LayerRef): string {
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
