// Model-level matching shared by the architecture families: the token embedding (and any
// added position embedding) up to the first norm (a LayerNorm, or an RMSNorm for Llama), the final norm's LM head and the
// logits output, the attention-mask input, and linear-layer descriptions.

import { GraphIndex, nodeLabel } from '../graph.js';
import type { NodeProto } from '../proto.js';
import { DataType } from '../proto.js';
import { attrInt, attrInts, tensorDims } from '../tensor.js';
import { Recorder, type LayerFindings, type SectionFindings } from './findings.js';
import {
  PatternBreak, fail, in0, isOp, matchLayerNorm, matchLinear, matchRmsNorm, otherInput, out0, soleConsumer, type LinearMatch,
  type NormMatch,
} from './pattern.js';
import type { LinearWeights } from './types.js';

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

export const LAYER_NORM: NormKind = { match: matchLayerNorm, what: 'a LayerNorm' };
export const RMS_NORM: NormKind = { match: matchRmsNorm, what: 'an RMSNorm' };

export interface Embedding {
  ids: string;
  weight: string;
  output: string;
  /** The residual stream entering block 0 (the first norm's input). */
  r0: string;
  positionWeight?: string;
  positionIds?: string;
}

/** Gather(E, token ids) [+ Gather(P, positions) ...] up to the tensor the first norm reads. */
export function findEmbedding(ix: GraphIndex, rec: Recorder, norm: NormKind = LAYER_NORM): Embedding {
  const isIntInput = (t: string): boolean => {
    const et = ix.inputs.get(t)?.type?.tensorType?.elemType;
    return ix.isGraphInput(t) && (et === DataType.INT64 || et === DataType.INT32);
  };
  const gathers = ix.nodes.filter((n) => n.opType === 'Gather' && ix.isConstant(in0(n)) && isIntInput(n.input?.[1] ?? '')
    && tensorDims(ix.constantTensor(in0(n)) ?? {}).length === 2 && attrInt(n, 'axis', 0) === 0);
  if (!gathers.length) {
    throw new PatternBreak(undefined, '', 'a Gather of token ids (a graph input) from a 2-D embedding table');
  }
  const tok = gathers.find((n) => /input_ids|ids/i.test(n.input?.[1] ?? '')) ?? gathers[0]!;
  const ids = rec.found('inputIds', tok.input![1]!);
  const weight = rec.found('embedding', in0(tok));
  const emb: Embedding = { ids, weight, output: out0(tok), r0: '' };
  let t = out0(tok);
  try {
    for (let guard = 0; guard < 6 && !norm.match(ix, t); guard++) {
      const add = soleConsumer(ix, t, ['Add'], `the embedding sum feeding the first ${norm.what.replace(/^an? /, '')}`);
      const other = ix.producer(otherInput(add, t));
      if (isOp(other, 'Gather') && ix.isConstant(in0(other))) {
        emb.positionWeight = rec.found('positionEmbedding', in0(other));
        const pos = other.input?.[1] ?? '';
        if (ix.isGraphInput(pos)) emb.positionIds = rec.found('positionIds', pos);
      }
      t = out0(add);
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
}

/** The LM head reading the final norm, up to the logits graph output (through Identity / Cast / Reshape). */
export function matchLmHead(ix: GraphIndex, rec: Recorder, finalNorm: NormMatch): LmHead {
  const lin = matchLinear(ix, finalNorm.output, 'the LM head');
  let y = lin.output;
  for (let guard = 0; guard < 4 && !ix.outputs.has(y); guard++) {
    const next = ix.dataConsumers(y);
    if (next.length !== 1 || !isOp(next[0], 'Identity', 'Cast', 'Reshape')) break;
    y = out0(next[0]);
  }
  if (!ix.outputs.has(y)) fail(ix, y, 'the logits to be a graph output');
  const dims = tensorDims(ix.constantTensor(lin.weight) ?? {});
  rec.found('unembedding', lin.weight);
  rec.found('logits', y);
  const layout = lin.transposed ? 'Vd' as const : 'dV' as const;
  return { weight: lin.weight, ...(lin.bias ? { bias: lin.bias } : {}), op: lin.op, layout, logits: y, vocab: (layout === 'dV' ? dims[1] : dims[0]) ?? 0 };
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
export function enterBlock(
  ix: GraphIndex, r: string, l: number, model: SectionFindings, layers: LayerFindings[], kind: NormKind = LAYER_NORM,
): { kind: 'broken' } | { kind: 'final'; norm: NormMatch } | { kind: 'block'; norm: NormMatch; adds: NodeProto[]; rec: Recorder; findings: LayerFindings } {
  const norm = kind.match(ix, r);
  if (!norm) {
    model.missing.push({ site: `layer ${l} or final norm`, expected: `${kind.what} reading the residual stream`, at: nodeLabel(ix.dataConsumers(r)[0] ?? ix.producer(r)) });
    return { kind: 'broken' };
  }
  const adds = ix.dataConsumers(r).filter((n) => n.opType === 'Add' && !norm.nodes.has(n));
  if (adds.length === 0) return { kind: 'final', norm };
  const L: LayerFindings = { layer: l, found: [], missing: [] };
  layers.push(L);
  const rec = new Recorder(ix, L);
  rec.found('residIn', r);
  return { kind: 'block', norm, adds, rec, findings: L };
}
