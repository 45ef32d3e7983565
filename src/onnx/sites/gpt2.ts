// GPT-2 family: token + position embeddings, then blocks
//   r → LN → qkv projection → Split → per-head q, k, v → q·kᵀ → scale/causal/padding masks →
//   Softmax → ·V → merge heads → output projection → (+ r) → LN → fc → gelu → proj → (+)
// and finally LN → LM head. Matches the TorchScript exports (opsets 14–17, LayerNorm
// decomposed or fused, Gemm on a reshaped 2-D input or MatMul + Add) and Optimum-style
// graphs (position_ids input, past key/value inputs concatenated before attention).

import { GraphIndex, nodeLabel } from '../graph.js';
import { tensorDims } from '../tensor.js';
import {
  LAYER_NORM, LayerTally, assembleDetection, findAttentionMask, findEmbedding, matchFinal, matchSequentialBlock, matchOutputProjection, modelWidth, perm,
  matchSoftmax, walkBlocks, weightsOf,
} from './common.js';
import { Recorder, type Detection, type LayerFindings, type SectionFindings } from './findings.js';
import {
  backThrough, fail, isOp, matchActivation, matchLinear, out0, soleConsumer, type NormMatch,
} from './pattern.js';
import { AttentionInputs, headsOf } from './attention-region.js';
import type { LayerSites, LinearWeights, SiteOverride } from './types.js';

const HEAD_PATH_OPS = ['Transpose', 'Concat', 'Reshape', 'Identity'];

interface AttentionFacts {
  heads?: number;
  dHead?: number;
  kLayout?: 'bhsd' | 'bhds';
  softmaxNode?: string;
  pastKey?: string;
  /** The kv-cache inputs, when both keys and values concatenate one (Optimum exports). */
  past?: { key: string; value: string };
  qkvProj?: LinearWeights;
  attnProj?: LinearWeights;
}

function matchAttention(ix: GraphIndex, rec: Recorder, norm: NormMatch, attnOut: string, facts: AttentionFacts): void {
  rec.found('attnNorm', norm.output);
  const cAttn = matchLinear(ix, norm.output, 'attention input projection');
  facts.qkvProj = weightsOf(cAttn);
  const split = soleConsumer(ix, cAttn.output, ['Split'], 'a Split of the fused qkv projection into q, k and v');
  if ((split.output ?? []).length !== 3) fail(ix, cAttn.output, 'a Split into exactly 3 parts (q, k, v)', split);
  const [qPart, kPart, vPart] = split.output as [string, string, string];

  // q: Split → Reshape [b, s, h, dh] → Transpose [b, h, s, dh]
  const qReshape = soleConsumer(ix, qPart, ['Reshape'], 'a Reshape of q into heads [b, s, h, dh]');
  const split4 = headsOf(ix, qReshape, third(ix, facts.qkvProj));
  if (!split4) fail(ix, qPart, 'a head split whose target shape has constant head count and head size', qReshape);
  facts.heads = split4.heads;
  facts.dHead = split4.dHead;
  const qT = soleConsumer(ix, out0(qReshape), ['Transpose'], 'a Transpose of q to [b, h, s, dh]');
  if (perm(qT) !== '0,2,1,3') fail(ix, out0(qReshape), 'a Transpose with perm [0,2,1,3]', qT);
  const q = rec.found('q', out0(qT));

  // scores = q · kᵀ, k from the same Split (through the kv cache, if any)
  const qk = soleConsumer(ix, q, ['MatMul'], 'the MatMul q·kᵀ', 0);
  const kSide = qk.input?.[1] ?? '';
  const kTrace = backThrough(ix, kSide, HEAD_PATH_OPS);
  if (kTrace.origin !== kPart) fail(ix, kSide, `keys coming from output 1 of the qkv Split ${nodeLabel(split)}`, qk);
  const kConcat = kTrace.via.find((n) => n.opType === 'Concat');
  if (kConcat) {
    facts.kLayout = 'bhsd';
    const past = (kConcat.input ?? []).find((i) => ix.isGraphInput(i));
    if (past) facts.pastKey = past;
    rec.found('k', out0(kConcat));
  } else {
    const kReshape = kTrace.via.find((n) => n.opType === 'Reshape');
    const kT = kReshape ? ix.dataConsumers(out0(kReshape)).find((n) => isOp(n, 'Transpose') && perm(n) === '0,2,1,3') : undefined;
    if (kT) {
      facts.kLayout = 'bhsd';
      rec.found('k', out0(kT));
    } else {
      facts.kLayout = 'bhds';
      rec.found('k', kSide);
    }
  }

  const { softmaxNode, probs } = matchSoftmax(ix, rec, out0(qk));
  facts.softmaxNode = softmaxNode;

  const pv = soleConsumer(ix, probs, ['MatMul'], 'the MatMul probs·V', 0);
  const vSide = pv.input?.[1] ?? '';
  const vTrace = backThrough(ix, vSide, HEAD_PATH_OPS);
  if (vTrace.origin !== vPart) fail(ix, vSide, `values coming from output 2 of the qkv Split ${nodeLabel(split)}`, pv);
  const vConcat = vTrace.via.find((n) => n.opType === 'Concat');
  const pastV = vConcat ? (vConcat.input ?? []).find((i) => ix.isGraphInput(i)) : undefined;
  if (facts.pastKey && pastV) facts.past = { key: facts.pastKey, value: pastV };
  rec.found('v', vSide);
  const context = rec.found('context', out0(pv));

  const proj = matchOutputProjection(ix, rec, context, attnOut, 'the update added to the residual stream');
  facts.attnProj = weightsOf(proj);
}

function matchMlp(ix: GraphIndex, rec: Recorder, norm: NormMatch, mlpOut: string): { dMlp: number; activation: string; fc: LinearWeights; proj: LinearWeights } {
  rec.found('mlpNorm', norm.output);
  const fc = matchLinear(ix, norm.output, 'MLP input projection');
  const pre = rec.found('mlpPre', fc.output);
  let kind = 'named by a site override';
  const act = rec.override('mlpAct') ?? (() => {
    const m = matchActivation(ix, pre, 'MLP');
    kind = m.kind;
    return m.output;
  })();
  const proj = matchLinear(ix, act, 'MLP output projection');
  rec.found('mlpAct', act);
  if (proj.output !== mlpOut) {
    fail(ix, proj.output, `the MLP output projection to be the update added to the residual stream ('${mlpOut}')`, ix.producer(mlpOut));
  }
  const w = ix.constantTensor(fc.weight);
  const dims = w ? tensorDims(w) : [];
  const dMlp = (fc.transposed ? dims[0] : dims[1]) ?? 0;
  return { dMlp, activation: kind, fc: weightsOf(fc), proj: weightsOf(proj) };
}

/** A third of the fused q|k|v layer's output units: where k and v start. */
function third(ix: GraphIndex, w: LinearWeights): number {
  const dims = tensorDims(ix.constantTensor(w.weight) ?? {});
  return ((w.layout === 'io' ? dims[1] : dims[0]) ?? 0) / 3;
}

export function detectGpt2(ix: GraphIndex, dtypes: ReadonlyMap<string, number>, overrides: readonly SiteOverride[] = []): Detection {
  const model: SectionFindings = { found: [], missing: [] };
  const mrec = new Recorder(ix, model);
  const layers: LayerFindings[] = [];
  const notes: string[] = [];
  const emb = mrec.attempt(['inputIds', 'embedding'], () => findEmbedding(ix, mrec));
  if (!emb) return { family: 'gpt2', matched: false, model, layers, notes };

  const perLayer: LayerSites[] = [];
  const inputs = new AttentionInputs();
  const tally = new LayerTally(notes);
  let layersOk = true;
  const walk = walkBlocks(ix, emb.r0, model, layers, LAYER_NORM, (entry, r, l) => {
    const { rec, findings: L } = entry;
    const facts: AttentionFacts = {};
    const block = matchSequentialBlock(ix, r, entry, LAYER_NORM, 'one residual Add after the MLP',
      (ln1, attnOut) => matchAttention(ix, rec, ln1, attnOut, facts), (ln2, mlpOut) => matchMlp(ix, rec, ln2, mlpOut));
    if (!block) return undefined;
    const { mlp } = block;
    tally.mlp(mlp);
    tally.attention(l, facts);
    inputs.add(l, facts);
    if (L.missing.length || !mlp || !facts.qkvProj || !facts.attnProj) layersOk = false;
    else {
      const g = (s: string): string => rec.get(s)!;
      perLayer.push({
        layer: l, residIn: g('residIn'), attnNorm: g('attnNorm'), q: g('q'), k: g('k'), kLayout: facts.kLayout!, v: g('v'),
        scores: g('scores'), softmaxNode: facts.softmaxNode ?? '', probs: g('probs'), context: g('context'),
        contextMerged: g('contextMerged'), attnOut: g('attnOut'), residMid: g('residMid'), mlpNorm: g('mlpNorm'),
        mlpPre: g('mlpPre'), mlpAct: g('mlpAct'), mlpOut: g('mlpOut'), residPost: g('residPost'),
        attnAddOut: g('residMid'), mlpAddOut: g('residPost'),
        qProj: { ...facts.qkvProj, offset: 0 }, kProj: { ...facts.qkvProj, offset: third(ix, facts.qkvProj) },
        vProj: { ...facts.qkvProj, offset: 2 * third(ix, facts.qkvProj) },
        attnProj: facts.attnProj, mlpFc: mlp.fc, mlpProj: mlp.proj,
      });
    }
    return block.residPost;
  }, overrides);
  const complete = walk.complete && layersOk;

  // final norm and LM head
  const head = matchFinal(ix, mrec, model, walk, complete, LAYER_NORM);

  const attentionMask = findAttentionMask(ix, mrec, emb, inputs.pastNames());
  inputs.note(notes, 'keys and values per head');

  const dModel = modelWidth(ix, emb, tally, notes);
  return assembleDetection({
    family: 'gpt2', dtypes, model, layers, notes, complete, ...(walk.finalNorm ? { finalNorm: walk.finalNorm } : {}), ...(head ? { head } : {}),
    perLayer, tally, dModel, emb, ...(attentionMask ? { attentionMask } : {}), past: inputs.past, block: 'sequential', positionWeight: true,
  });
}
