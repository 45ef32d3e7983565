// Last-position rows against cached keys and values. Knockout into the last position changes
// only that position's row: every other position's keys and values, at every layer, are the
// clean run's. So a variant that takes keys and values of earlier positions as inputs can run
// one token per row instead of the whole prompt. With an empty past every number is unchanged.
//
// The cache: a model exported with one (Optimum's past_key_values.* inputs, concatenated
// before attention) keeps its own inputs, so that what it derives from the past length (the
// rotary angles a Llama slices to past + seq) stays right. A plain export gets inputs
// dissect_past_key_{l} / dissect_past_value_{l}, concatenated where attention reads its keys
// and values (every reader, shape readers included, so masks built from the key length see the
// past). Either way the outputs dissect_key_{l} / dissect_value_{l} are the keys and values of
// this run's tokens alone, the Concat's other input: a clean pass (empty past) returns its
// prompt's, and a row, which returns nothing anyone reads, holds one token's per layer until
// the run ends (onnxruntime keeps every graph output) instead of its whole past's.
//
// Rows of one prompt share its past: the past inputs hold one entry per prompt of the batch
// (axis 0, 'past_prompts'), and dissect_past_row picks each row's (a Gather in front of every
// reader), so a batch moves each prompt's cache to the device once, not once per row.
//
// The position of the one token must be fed: through the model's position_ids input, or, for
// an export that derives positions from the sequence length, through dissect_position_ids,
// which replaces the indices of the position-embedding Gather (GPT-2) or of the rotary's
// sin/cos table lookups (GPT-J). A plain Llama export slices its sin/cos table to the sequence
// length before looking positions up, so it cannot take a later position: it runs in full.

import { DataType, type NodeProto } from '../proto.js';
import type { Rewrite } from '../rewrite.js';
import { forwardTo } from '../sites/pattern.js';
import type { LayerSites, ModelSites } from '../sites/types.js';
import { attrInt, intAttr } from '../tensor.js';
import { VariantNames, type CacheEntry, type CacheSlot } from '../variant.js';
import { addDescribedInput, pastFill, pastPlainRow, POSITIONS, type AddedInput, type DescribeContext } from '../inputs.js';

const pastOf = (what: 'keys' | 'values') => ({
  name: what === 'keys' ? VariantNames.pastKeyPrefix : VariantNames.pastValuePrefix,
  perLayer: true,
  rule: 'past',
  meaning: (c: DescribeContext) => `layer ${c.name.slice(c.name.lastIndexOf('_') + 1)}'s ${what} of the positions before this run's tokens, ` +
    `from an earlier run's ${what === 'keys' ? VariantNames.keyPrefix : VariantNames.valuePrefix}* output`,
  fill: () => pastFill(`its ${what === 'keys' ? VariantNames.keyPrefix : VariantNames.valuePrefix}ℓ output`),
  plainRow: pastPlainRow,
}) as const satisfies AddedInput;

export const LAST_POSITION_INPUTS = {
  positions: {
    name: VariantNames.positionIds,
    meaning: () => 'position ids (they replace the positions the source model derives from the sequence length)',
    ...POSITIONS,
  },
  pastKeys: pastOf('keys'),
  pastValues: pastOf('values'),
  pastRow: {
    name: VariantNames.pastRow,
    rule: 'past_row',
    meaning: () => 'per row: the entry of the past inputs\' first axis that holds its past (the rows of one prompt share one)',
    fill: () => 'for a row run as its last token, the index of its prompt among the pasts the batch feeds; 0 for whole prompts (their past is empty)',
    plainRow: () => ({ shape: ['batch'], value: 0 }),
  },
} as const satisfies Record<string, AddedInput>;

/** Why the variant cannot run last-position rows, or undefined when it can. */
export function lastPositionUnsupported(sites: ModelSites): string | undefined {
  if (sites.inputs.positionIds || sites.embedding.positionWeight || sites.rotaryPositions) return undefined;
  return `the ${sites.family} graph derives its rotary angles from the sequence length (no position_ids input, no plain table lookup); ` +
    'an export with position_ids (Optimum) allows last-position rows';
}

/** Rewrites `rw` for last-position rows; returns where each layer's cache goes in and comes out. */
export function lastPositionPass(rw: Rewrite, sites: ModelSites): CacheEntry[] {
  const unsupported = lastPositionUnsupported(sites);
  if (unsupported) throw new Error(`internal: last-position rows requested although ${unsupported}`);
  const pastRow = addDescribedInput(rw, LAST_POSITION_INPUTS.pastRow, DataType.INT64, ['batch']);
  const cache = sites.inputs.past.length ? modelCache(rw, sites, pastRow) : addedCache(rw, sites, pastRow);
  // the mask covers past + seq keys: it must not share the token axis's symbolic name
  const tokens = rw.ix.inputs.get(sites.inputs.inputIds)?.type?.tensorType?.shape?.dim?.[1]?.dimParam;
  const maskDims = sites.inputs.attentionMask ? rw.ix.inputs.get(sites.inputs.attentionMask)?.type?.tensorType?.shape?.dim : undefined;
  if (tokens && maskDims?.[1]?.dimParam === tokens) maskDims[1] = { dimParam: 'kv_seq' };
  if (sites.inputs.positionIds) return cache;
  if (sites.rotaryPositions) {
    // the export traced its lookup with one row of positions: every row of a batch shares it
    const shared = addDescribedInput(rw, LAST_POSITION_INPUTS.positions, DataType.INT64, [1, 'seq']);
    for (const n of rw.ix.consumersOf(sites.rotaryPositions)) rw.replaceInput(n, sites.rotaryPositions, shared);
    return cache;
  }
  const positions = addDescribedInput(rw, LAST_POSITION_INPUTS.positions, DataType.INT64, ['batch', 'seq']);
  const weight = sites.embedding.positionWeight!;
  const gathers = rw.ix.consumersOf(weight).filter((n) => n.opType === 'Gather' && n.input?.[0] === weight);
  if (gathers.length !== 1) throw new Error(`internal: expected one Gather of the position embedding, found ${gathers.length}`);
  rw.replaceInput(gathers[0]!, gathers[0]!.input![1]!, positions);
  return cache;
}

/** Each row's entry of `past` (one per prompt, axis 0), picked by `pastRow`. */
function pastOfRows(rw: Rewrite, past: string, pastRow: string, base: string): string {
  return rw.op('Gather', [past, pastRow], base, rw.dtype(past), undefined, [intAttr('axis', 0)]);
}

/** `tensor` as an output, its shape recorded (a skipped block's stand-in for it takes that shape). */
function addOwnTokens(rw: Rewrite, output: string, tensor: string, dims: readonly (string | number)[], doc: string): void {
  rw.recordShape(tensor, dims);
  rw.addOutput(output, tensor, rw.dtype(tensor), dims, doc);
}

/** Optimum-style: the model's past inputs stay (their batch axis one entry per prompt); what each past Concat joins to the past becomes an output. */
function modelCache(rw: Rewrite, sites: ModelSites, pastRow: string): CacheEntry[] {
  const slot = (layer: number, input: string, what: 'keys' | 'values'): CacheSlot => {
    const concat = rw.ix.consumersOf(input).find((n): n is NodeProto => n.opType === 'Concat');
    if (!concat) throw new Error(`internal: no Concat reads the past input '${input}'`);
    const inputDims = rw.ix.inputs.get(input)?.type?.tensorType?.shape?.dim;
    if (inputDims?.[0]) inputDims[0] = { dimParam: 'past_prompts' };
    const own = concat.input!.find((i) => i !== input);
    if (!own) throw new Error(`internal: the Concat of the past input '${input}' joins nothing to it`);
    rw.redirect(input, (t) => pastOfRows(rw, t, pastRow, `dissect/last_position/layer${layer}/${what}_of_rows`));
    const axis = attrInt(concat, 'axis')!;
    const output = `${what === 'keys' ? VariantNames.keyPrefix : VariantNames.valuePrefix}${layer}`;
    const seqAxis = axis < 0 ? axis + 4 : axis;
    // [heads, seq, d_head], or keys kept transposed [heads, d_head, seq]
    const inner = seqAxis === 2 ? [sites.kvHeads ?? sites.heads, 0, sites.dHead] : [sites.kvHeads ?? sites.heads, sites.dHead, 0];
    const dims = ['batch', ...inner.map((d) => d || 'seq')];
    addOwnTokens(rw, output, own, dims, `layer ${layer}'s ${what} of this run's tokens, as ${input} takes them`);
    return { input, output, seqAxis, dims: inner };
  };
  return sites.inputs.past.map((p) => ({ layer: p.layer, key: slot(p.layer, p.key, 'keys'), value: slot(p.layer, p.value, 'values') }));
}

/** A plain export: inputs concatenated before the k and v sites; the sites become outputs. */
function addedCache(rw: Rewrite, sites: ModelSites, pastRow: string): CacheEntry[] {
  const H = sites.heads;
  const dh = sites.dHead;
  return sites.perLayer.map((L) => {
    const slot = (site: string, layout: 'bhsd' | 'bhds', what: 'keys' | 'values'): CacheSlot => {
      const dt = rw.dtype(site);
      const seqAxis = layout === 'bhsd' ? 2 : 3;
      const dims = (len: string): (string | number)[] => (layout === 'bhsd' ? ['batch', H, len, dh] : ['batch', H, dh, len]);
      const input = addDescribedInput(rw, what === 'keys' ? LAST_POSITION_INPUTS.pastKeys : LAST_POSITION_INPUTS.pastValues, dt,
        ['past_prompts', ...dims('past').slice(1)], L.layer);
      const base = `dissect/last_position/layer${L.layer}/${what}`;
      rw.redirect(site, (t) => rw.op('Concat', [pastOfRows(rw, input, pastRow, `${base}_of_rows`), t], base, dt, dims('kv_seq'),
        [intAttr('axis', seqAxis)]));
      const output = `${what === 'keys' ? VariantNames.keyPrefix : VariantNames.valuePrefix}${L.layer}`;
      addOwnTokens(rw, output, site, dims('seq'), `layer ${L.layer}'s ${what} of this run's tokens, as ${input} takes them`);
      return { input, output, seqAxis, dims: dims('').slice(1).map((d) => (typeof d === 'number' ? d : 0)) };
    };
    const keys = scoredKeys(rw, L);
    return { layer: L.layer, key: slot(keys.tensor, keys.layout, 'keys'), value: slot(L.v, 'bhsd', 'values') };
  });
}

/**
 * The keys the scores are computed from. Usually the k site itself (maybe transposed on the
 * way to q·kᵀ), but an export may transpose the heads twice, once for the k site and once,
 * off it, for q·kᵀ: then the cache goes in front of q·kᵀ's own input, [b, h, d_head, kv].
 */
function scoredKeys(rw: Rewrite, L: LayerSites): { tensor: string; layout: 'bhsd' | 'bhds' } {
  const qk = forwardTo(rw.ix, L.q, ['Cast', 'Identity'], ['MatMul'], 'the MatMul q·kᵀ').node;
  const keySide = qk.input![1]!;
  for (let t: string | undefined = keySide, guard = 0; t && guard < 8; guard++) {
    if (t === L.k) return { tensor: L.k, layout: L.kLayout };
    const p = rw.ix.producer(t);
    t = p && ['Transpose', 'Cast', 'Identity'].includes(p.opType ?? '') ? p.input?.[0] : undefined;
  }
  return { tensor: keySide, layout: 'bhds' };
}
