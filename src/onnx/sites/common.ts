// Model-level matching for the decoder skeleton (decoder.ts): the token embedding (with any
// position embedding and scale) up to the first norm, the walk over the blocks, the final norm's
// LM head and the logits output, the attention-mask input, and linear-layer descriptions.

import { GraphIndex, nodeLabel } from '../graph.js';
import type { NodeProto } from '../proto.js';
import { DataType } from '../proto.js';
import { attrInt, attrInts, tensorDims } from '../tensor.js';
import { Recorder, overridesOfLayer, type LayerFindings, type SectionFindings } from './findings.js';
import {
  PatternBreak, backThrough, fail, forwardTo, in0, isOp, matchLinear, matchNorm, otherInput, out0, soleConsumer, soleProducer, type LinearMatch,
  type NormMatch,
} from './pattern.js';
import type { ArchitectureFamily, KvCacheInput, LayerSites, LinearWeights, ModelSites, SiteOverride } from './types.js';
import type { Detection } from './findings.js';

export function perm(node: NodeProto): string {
  return (attrInts(node, 'perm') ?? []).join(',');
}

export function weightsOf(m: LinearMatch): LinearWeights {
  return { weight: m.weight, ...(m.bias ? { bias: m.bias } : {}), op: m.op, layout: m.transposed ? 'oi' : 'io' };
}

/** The norm a family's blocks start with, and how messages name it. */
export interface NormKind {
  readonly match: (ix: GraphIndex, x: string) => NormMatch | undefined;
  /** "a LayerNorm", "an RMSNorm" */
  readonly what: string;
}


export interface Embedding {
  ids: string;
  weight: string;
  output: string;
  /** The residual stream entering block 0 (the first norm's input). */
  r0: string;
  positionWeight?: string;
  positionIds?: string;
  /**
   * The position table is looked up at 0, 1, … of the sequence (a Range) or at a position_ids
   * input, so a last-position row can be fed its position; not when the indices are computed
   * otherwise (OPT derives them from the attention mask, offset by 2).
   */
  plainPositions?: boolean;
  /** The constant the embeddings are scaled by (Gemma: √d). */
  scale?: string;
}

/** Ops that change only the shape or integer type of token ids (transformers' `input_ids.view(-1, seq)`). */
const ID_RESHAPE_OPS = ['Reshape', 'Unsqueeze', 'Squeeze', 'Flatten', 'Cast', 'Identity'];

/** The integer graph input `t` is a reshape of, if any. */
function idsInput(ix: GraphIndex, t: string): string | undefined {
  const origin = backThrough(ix, t, ID_RESHAPE_OPS).origin;
  const et = ix.inputs.get(origin)?.type?.tensorType?.elemType;
  return ix.isGraphInput(origin) && (et === DataType.INT64 || et === DataType.INT32) ? origin : undefined;
}

/** Whether position indices are a graph input or 0, 1, … (a Range from 0 by 1), through reshapes. */
function plainPositions(ix: GraphIndex, t: string): boolean {
  const origin = backThrough(ix, t, [...ID_RESHAPE_OPS, 'Expand']).origin;
  if (ix.isGraphInput(origin)) return true;
  const range = ix.producer(origin);
  return isOp(range, 'Range') && ix.constantValues(in0(range))?.[0] === 0 && ix.constantValues(range.input?.[2] ?? '')?.[0] === 1;
}

/**
 * Gather(E, token ids) [+ Gather(P, positions) …] [· √d, Gemma] up to the tensor the first norm
 * reads. The ids may be reshaped on the way from the graph input.
 */
export function findEmbedding(ix: GraphIndex, rec: Recorder, norm: NormKind): Embedding {
  const gathers = ix.nodes.filter((n) => n.opType === 'Gather' && ix.isConstant(in0(n)) && idsInput(ix, n.input?.[1] ?? '')
    && tensorDims(ix.constantTensor(in0(n)) ?? {}).length === 2 && attrInt(n, 'axis', 0) === 0);
  if (!gathers.length) {
    throw new PatternBreak(undefined, '', 'a Gather of token ids (a graph input, possibly reshaped) from a 2-D embedding table');
  }
  const idsOf = (n: NodeProto): string => idsInput(ix, n.input?.[1] ?? '')!;
  const tok = gathers.find((n) => /input_ids|ids/i.test(idsOf(n))) ?? gathers[0]!;
  const ids = rec.found('inputIds', idsOf(tok));
  const weight = rec.found('embedding', in0(tok));
  const emb: Embedding = { ids, weight, output: out0(tok), r0: '' };
  let t = out0(tok);
  try {
    for (let guard = 0; guard < 6 && !norm.match(ix, t); guard++) {
      const step = soleConsumer(ix, t, ['Add', 'Mul'], `the embedding sum (or scale) feeding the first ${norm.what.replace(/^an? /, '')}`);
      if (step.opType === 'Mul') {
        if (!ix.isConstant(otherInput(step, t))) fail(ix, t, 'the embeddings scaled by a constant (√d_model)', step);
        emb.scale = otherInput(step, t);
        t = out0(step);
        continue;
      }
      const other = ix.producer(otherInput(step, t));
      if (isOp(other, 'Gather') && ix.isConstant(in0(other))) {
        emb.positionWeight = rec.found('positionEmbedding', in0(other));
        const pos = other.input?.[1] ?? '';
        if (ix.isGraphInput(pos)) emb.positionIds = rec.found('positionIds', pos);
        emb.plainPositions = plainPositions(ix, pos);
      }
      t = out0(step);
    }
    if (!norm.match(ix, t)) fail(ix, t, `${norm.what} reading the embeddings (the first block)`);
  } catch (e) {
    // reported where the walk started: the token embedding's first reader
    if (e instanceof PatternBreak) {
      rec.missing(['firstNorm'], new PatternBreak(ix.dataConsumers(emb.output)[0], emb.output,
        `${norm.what} reading the embeddings, after any position embeddings are added (the first block)`));
    }
    throw e;
  }
  emb.r0 = t;
  return emb;
}

export interface LmHead {
  weight: string;
  bias?: string;
  op: 'MatMul' | 'Gemm';
  layout: 'dV' | 'Vd';
  logits: string;
  vocab: number;
  /** Soft-capped logits c · tanh(z / c) (Gemma 2): c. */
  softcap?: number;
  /** Logits multiplied by a constant before any soft-cap (Granite, Cohere). */
  scale?: number;
}

/** c when `y` is soft-capped, c · tanh(y / c) (Div or Mul by 1/c, Tanh, Mul by c): the capped tensor and c. */
function softcapOf(ix: GraphIndex, y: string): { output: string; cap: number } | undefined {
  const [scale] = ix.dataConsumers(y);
  if (ix.dataConsumers(y).length !== 1 || !isOp(scale, 'Div', 'Mul') || in0(scale) !== y) return undefined;
  const k = ix.constantValues(scale.input?.[1] ?? '');
  const tanh = ix.dataConsumers(out0(scale))[0];
  const mul = tanh && isOp(tanh, 'Tanh') ? ix.dataConsumers(out0(tanh))[0] : undefined;
  const c = mul && isOp(mul, 'Mul') ? ix.constantValues(otherInput(mul, out0(tanh!))) : undefined;
  if (k?.length !== 1 || c?.length !== 1) return undefined;
  const inverse = scale.opType === 'Div' ? k[0]! : 1 / k[0]!;
  return Math.abs(inverse - c[0]!) <= 1e-6 * Math.abs(c[0]!) ? { output: out0(mul!), cap: c[0]! } : undefined;
}

/** The LM head reading the final norm, up to the logits graph output (through Identity / Cast / Reshape and a soft-cap). */
export function matchLmHead(ix: GraphIndex, rec: Recorder, finalNorm: NormMatch): LmHead {
  const lin = matchLinear(ix, finalNorm.output, 'the LM head');
  let y = lin.output;
  let softcap: number | undefined;
  let scale: number | undefined;
  for (let guard = 0; guard < 6 && !ix.outputs.has(y); guard++) {
    const capped = softcap === undefined ? softcapOf(ix, y) : undefined;
    if (capped) {
      softcap = capped.cap;
      y = capped.output;
      continue;
    }
    const next = ix.dataConsumers(y);
    // logits scaled by a constant (Granite divides, Cohere multiplies), before any soft-cap
    const k = next.length === 1 && isOp(next[0], 'Mul', 'Div') && softcap === undefined && scale === undefined ? ix.constantValues(otherInput(next[0], y)) : undefined;
    if (k?.length === 1 && (next[0]!.opType === 'Mul' || in0(next[0]!) === y)) {
      scale = next[0]!.opType === 'Mul' ? k[0]! : 1 / k[0]!;
      y = out0(next[0]!);
      continue;
    }
    if (next.length !== 1 || !isOp(next[0], 'Identity', 'Cast', 'Reshape')) break;
    y = out0(next[0]);
  }
  if (!ix.outputs.has(y)) fail(ix, y, 'the logits to be a graph output (after the LM head, at most a reshape, a cast and a soft-cap c·tanh(z/c))');
  const dims = tensorDims(ix.constantTensor(lin.weight) ?? {});
  rec.found('unembedding', lin.weight);
  rec.found('logits', y);
  const layout = lin.transposed ? 'Vd' as const : 'dV' as const;
  return {
    weight: lin.weight, ...(lin.bias ? { bias: lin.bias } : {}), op: lin.op, layout, logits: y, vocab: (layout === 'dV' ? dims[1] : dims[0]) ?? 0,
    ...(softcap !== undefined ? { softcap } : {}), ...(scale !== undefined ? { scale } : {}),
  };
}

/** The attention-mask input: named so, else the one other int64 input. */
export function findAttentionMask(ix: GraphIndex, rec: Recorder, emb: Embedding, pastNames: ReadonlySet<string>): string | undefined {
  const inputs = [...ix.inputs.keys()].filter((n) => ix.isGraphInput(n));
  const attentionMask = inputs.find((n) => /attention_mask/.test(n))
    ?? inputs.find((n) => n !== emb.ids && n !== emb.positionIds && !pastNames.has(n) && ix.inputs.get(n)?.type?.tensorType?.elemType === DataType.INT64);
  if (attentionMask) rec.found('attentionMask', attentionMask);
  return attentionMask;
}

/**
 * The start of block l at residual stream r: its pre-norm and the residual Adds reading r.
 * A norm with no Add beside it is the final norm. Records the block's findings.
 */
export interface BlockEntry { kind: 'block'; norm: NormMatch; adds: NodeProto[]; rec: Recorder; findings: LayerFindings }

export function enterBlock(
  ix: GraphIndex, r: string, l: number, model: SectionFindings, layers: LayerFindings[], kind: NormKind,
  overrides: readonly SiteOverride[] = [],
): { kind: 'broken' } | { kind: 'final'; norm: NormMatch } | BlockEntry {
  const norm = kind.match(ix, r);
  if (!norm) {
    model.missing.push({ site: `layer ${l} or final norm`, expected: `${kind.what} reading the residual stream`, at: nodeLabel(ix.dataConsumers(r)[0] ?? ix.producer(r)) });
    return { kind: 'broken' };
  }
  const adds = ix.dataConsumers(r).filter((n) => n.opType === 'Add' && !norm.nodes.has(n));
  if (adds.length === 0) return { kind: 'final', norm };
  const L: LayerFindings = { layer: l, found: [], missing: [] };
  layers.push(L);
  const rec = new Recorder(ix, L, overridesOfLayer(overrides, l));
  rec.found('residIn', r);
  return { kind: 'block', norm, adds, rec, findings: L };
}

/**
 * Walk the blocks from the residual stream r0 until the final norm (or a break). `step` matches
 * block l entered at r and returns the residual stream after it, or undefined to stop (incomplete).
 */
export function walkBlocks(
  ix: GraphIndex, r0: string, model: SectionFindings, layers: LayerFindings[], kind: NormKind,
  step: (entry: BlockEntry, r: string, l: number) => string | undefined, overrides: readonly SiteOverride[] = [],
): { finalNorm?: NormMatch; complete: boolean; r: string } {
  let r = r0;
  for (let l = 0; l < 4096; l++) {
    const entry = enterBlock(ix, r, l, model, layers, kind, overrides);
    if (entry.kind === 'broken') return { complete: false, r };
    if (entry.kind === 'final') return { finalNorm: entry.norm, complete: true, r };
    const next = step(entry, r, l);
    if (next === undefined) return { complete: false, r };
    r = next;
  }
  return { complete: true, r };
}

type Rotary = NonNullable<ModelSites['rotary']>;

/** Model-wide shapes taken from the first layer that has them; later layers that differ are noted. */
export class LayerTally {
  heads?: number;
  kvHeads?: number;
  dHead?: number;
  dMlp?: number;
  activation = '';
  rotary?: Rotary;

  constructor(private readonly notes: string[]) {}

  mlp(m: { dMlp: number; activation: string } | undefined): void {
    if (!m) return;
    this.dMlp ??= m.dMlp;
    this.activation ||= m.activation;
  }

  /** Head count and size; withKv: also key/value heads (grouped-query attention). */
  attention(l: number, facts: { heads?: number; kvHeads?: number; dHead?: number }, withKv = false): void {
    if (facts.heads === undefined) return;
    if (withKv) {
      if (this.heads !== undefined && (this.heads !== facts.heads || this.kvHeads !== facts.kvHeads)) {
        this.notes.push(`layer ${l} has ${facts.heads} heads (${facts.kvHeads} key/value), layer 0 has ${this.heads} (${this.kvHeads})`);
      }
    } else if (this.heads !== undefined && this.heads !== facts.heads) {
      this.notes.push(`layer ${l} has ${facts.heads} heads, layer 0 has ${this.heads}`);
    }
    this.heads ??= facts.heads;
    if (withKv) this.kvHeads ??= facts.kvHeads;
    this.dHead ??= facts.dHead;
  }

  rotaryOf(l: number, facts: { rotary?: Rotary }): void {
    if (!facts.rotary) return;
    const rotary = this.rotary;
    if (rotary && (rotary.dims !== facts.rotary.dims || rotary.style !== facts.rotary.style)) {
      this.notes.push(`layer ${l} has rotary on ${facts.rotary.dims} dims (${facts.rotary.style}), layer 0 on ${rotary.dims} (${rotary.style})`);
    }
    this.rotary ??= facts.rotary;
  }
}

/** The final norm's findings and the LM head reading it (or the final norm missing, when the blocks all matched). */
export function matchFinal(
  ix: GraphIndex, mrec: Recorder, model: SectionFindings, walk: { finalNorm?: NormMatch; r: string }, complete: boolean, kind: NormKind,
): LmHead | undefined {
  const fn = walk.finalNorm;
  if (fn) {
    mrec.found('finalNorm', fn.output);
    return mrec.attempt(['unembedding', 'logits'], () => matchLmHead(ix, mrec, fn));
  }
  if (complete) model.missing.push({ site: 'finalNorm', expected: `a final ${kind.what.replace(/^an? /, '')}`, at: nodeLabel(ix.producer(walk.r)) });
  return undefined;
}

/** The model width (the embedding's), noting when heads × head size differs from it. */
export function modelWidth(ix: GraphIndex, emb: Embedding, tally: LayerTally, notes: string[]): number {
  const dModel = tensorDims(ix.constantTensor(emb.weight) ?? {})[1] ?? 0;
  const { heads, dHead } = tally;
  if (heads !== undefined && dHead !== undefined && heads * dHead !== dModel) {
    notes.push(`heads × head size = ${heads} × ${dHead} differs from the embedding width ${dModel}`);
  }
  return dModel;
}

/** The detection, with the model's sites when every site was found. */
export function assembleDetection(a: {
  family: ArchitectureFamily; dtypes: ReadonlyMap<string, number>; model: SectionFindings; layers: LayerFindings[]; notes: string[];
  complete: boolean; finalNorm?: NormMatch; head?: LmHead; perLayer: LayerSites[]; tally: LayerTally; dModel: number;
  emb: Embedding; attentionMask?: string; past: KvCacheInput[]; block: ModelSites['block']; positionWeight: boolean;
  rotaryPositions?: string;
}): Detection {
  const { family, model, layers, notes, finalNorm, head, perLayer, tally, emb, attentionMask } = a;
  const { heads, kvHeads, dHead, rotary } = tally;
  const allFound = a.complete && !!finalNorm && !!head && model.missing.length === 0 && layers.every((L) => L.missing.length === 0) && perLayer.length > 0;
  const dtype = a.dtypes.get(perLayer[0]?.scores ?? '') ?? a.dtypes.get(head?.logits ?? '') ?? DataType.FLOAT;
  const detection: Detection = { family, matched: true, model, layers, notes };
  if (!allFound || !head || !finalNorm || heads === undefined || dHead === undefined) return detection;
  const sites: ModelSites = {
    family,
    layers: perLayer.length,
    heads,
    ...(kvHeads !== undefined && kvHeads !== heads ? { kvHeads } : {}),
    dHead,
    dModel: a.dModel,
    dMlp: tally.dMlp ?? 0,
    vocab: head.vocab,
    dtype,
    activation: tally.activation,
    block: a.block,
    ...(rotary ? { rotary } : {}),
    perLayer,
    finalNorm: { input: finalNorm.input, output: finalNorm.output, op: finalNorm.op },
    embedding: { weight: emb.weight, output: emb.output, ...(a.positionWeight && emb.positionWeight ? { positionWeight: emb.positionWeight } : {}) },
    unembedding: {
      weight: head.weight, layout: head.layout, ...(head.bias ? { bias: head.bias } : {}), op: head.op, ...(head.softcap !== undefined ? { softcap: head.softcap } : {}),
      ...(head.scale !== undefined ? { scale: head.scale } : {}),
    },
    logits: head.logits,
    ...(a.rotaryPositions ? { rotaryPositions: a.rotaryPositions } : {}),
    inputs: {
      inputIds: emb.ids,
      ...(attentionMask ? { attentionMask } : {}),
      ...(emb.positionIds ? { positionIds: emb.positionIds } : {}),
      past: a.past,
    },
  };
  return { ...detection, sites };
}

/** What lies between q·kᵀ and the Softmax: scale, soft-cap (Gemma 2: c·tanh(s/c)), causal and padding masks. */
const SCORE_PASS_OPS = ['Div', 'Mul', 'Cast', 'Where', 'Add', 'Sub', 'Identity', 'Tanh'];

/**
 * The attention Softmax after q·kᵀ (`qk` is the MatMul's output), or the one producing the
 * tensor a site override names for probs; records scores (its input) and probs.
 */
export function matchSoftmax(ix: GraphIndex, rec: Recorder, qk: string): { softmaxNode: string; probs: string } {
  const probs = rec.override('probs')
    ?? out0(forwardTo(ix, qk, SCORE_PASS_OPS, ['Softmax'], 'a Softmax over the attention scores (after scale and masks)').node);
  const softmax = soleProducer(ix, probs, 'Softmax', 'a Softmax producing the attention probabilities');
  const axis = attrInt(softmax, 'axis', -1);
  if (axis !== -1 && axis !== 3) fail(ix, in0(softmax), 'a Softmax over the last axis (keys)', softmax);
  rec.found('scores', in0(softmax));
  rec.found('probs', probs);
  return { softmaxNode: softmax.name ?? '', probs };
}

/**
 * How a sublayer's output `y` reaches `target`, the update the residual add reads: directly,
 * scaled by a constant (Granite's residual multiplier), or through a norm of its own (a
 * sandwich norm, Gemma 2); undefined when it does not.
 */
export function updateReaching(ix: GraphIndex, y: string, target: string): { postNorm?: NormMatch } | undefined {
  if (y === target) return {};
  const readers = ix.dataConsumers(y);
  const scale = readers[0];
  if (readers.length === 1 && isOp(scale, 'Mul', 'Div') && out0(scale) === target && ix.isConstant(otherInput(scale, y))) return {};
  const n = matchNorm(ix, y);
  return n && n.output === target ? { postNorm: n } : undefined;
}

/**
 * From the per-head context (probs·V, [b, h, s, dh]) to the attention update: heads moved
 * back with a Transpose [0,2,1,3], merged by a Reshape, then the output projection, which
 * must produce `attnOut`, directly or through a norm of its own (Gemma 2's post-attention norm).
 */
export function matchOutputProjection(ix: GraphIndex, rec: Recorder, context: string, attnOut: string): { proj: LinearMatch; postNorm?: NormMatch } {
  const cT = soleConsumer(ix, context, ['Transpose'], 'a Transpose of the context to [b, s, h, dh]');
  if (perm(cT) !== '0,2,1,3') fail(ix, context, 'a Transpose with perm [0,2,1,3]', cT);
  const merge = soleConsumer(ix, out0(cT), ['Reshape'], 'a Reshape merging the heads into [b, s, d]');
  const merged = rec.found('contextMerged', out0(merge));
  const proj = matchLinear(ix, merged, 'attention output projection');
  const via = updateReaching(ix, proj.output, attnOut);
  if (via) return { proj, ...via };
  return fail(ix, proj.output, `the attention output projection (or a norm of it) to be the update added to the residual stream ('${attnOut}')`, ix.producer(attnOut));
}
