// Llama family: a token embedding (no position embedding), then sequential blocks
//   r → RMSNorm → { q, k, v projections → heads → rotary (rotate_half) on q and k → k, v repeated
//                   to the query heads (grouped-query attention) → q·kᵀ → scale / causal and
//                   padding masks → Softmax → ·V → merge heads → output projection } → (+ r)
//     → RMSNorm → down(silu(gate(x)) ⊙ up(x)) → (+)
// and finally RMSNorm → LM head. Matched by structure only (the TorchScript export of Hugging
// Face's LlamaForCausalLM maths; names are never read):
//   - RMSNorm: x² → ReduceMean → + ε → Sqrt → 1/· (Div or Reciprocal) → · x [· γ], or the fused
//     SimplifiedLayerNormalization / RMSNormalization op (pattern.ts matchRmsNorm);
//   - attention: three linear layers on the pre-norm; forward from each, a region of reshapes,
//     transposes, slices, Neg, Concat, Mul/Add, Unsqueeze/Expand/Tile reaches an activation ×
//     activation MatMul: q and k meet in q·kᵀ (slots 0 and 1), v in probs·V;
//   - rotary: the q and k regions each hold a Neg, a Concat and a Mul by a position-dependent
//     (non-constant, outside) tensor; 'half' (rotate_half) unless pairs are sliced with step 2;
//     its width is the head size unless the cos/sin Mul reads a Slice [0, r) of the head;
//   - grouped-query attention: the head split of k (and v) has kvHeads ≤ heads heads, and when
//     fewer, their regions repeat them (Expand or Tile, then Reshape) before the MatMuls. The k
//     and v sites are the MatMul inputs (after the repeat): [b, heads, kv, dh] like q;
//   - MLP: two linear layers on the second RMSNorm, gate and up; an elementwise activation of
//     gate (Sigmoid·x, or one Silu / Swish node) times up, then the down projection. The
//     product, the down projection's input, is both mlpPre and mlpAct (see types.ts).
//   - Optimum exports (text-generation-with-past): the k and v regions concatenate past inputs
//     [b, kv_heads, past, dh] after the rotary and before the repeat (the present.* outputs read
//     those Concats); the k and v sites stay after the repeat. position_ids, a graph input,
//     feeds the sin/cos.

import { GraphIndex } from '../graph.js';
import type { NodeProto } from '../proto.js';
import { tensorDims } from '../tensor.js';
import { AttentionInputs, headSplit, matchRotaryAttention, type AttentionFacts, type Region, type RotaryFamily } from './attention-region.js';
import {
  LayerTally, RMS_NORM, assembleDetection, findAttentionMask, findEmbedding, matchFinal, matchSequentialBlock, modelWidth, walkBlocks,
  weightsOf,
} from './common.js';
import { Recorder, type Detection, type LayerFindings, type SectionFindings } from './findings.js';
import {
  PatternBreak, fail, in0, isOp, linearConsumers, matchActivation, matchLinear, otherInput, out0, type LinearMatch,
  type NormMatch,
} from './pattern.js';
import type { LayerSites, LinearWeights, SiteOverride } from './types.js';

const FAMILY = 'llama';
/** Ops between a q/k/v projection and its attention MatMul: head split, rotary, kv repeat, dtype casts. */
const HEAD_REGION_OPS = ['Reshape', 'Transpose', 'Slice', 'Neg', 'Concat', 'Mul', 'Add', 'Sub', 'Unsqueeze', 'Squeeze', 'Cast', 'Identity',
  'Split', 'Flatten', 'Expand', 'Tile'];
const REPEAT_OPS = ['Expand', 'Tile'];
/** Single-node SiLU activations (Sigmoid·x is recognised by matchActivation). */
const SILU_OPS = ['Silu', 'Swish'];

const LLAMA: RotaryFamily = {
  name: FAMILY,
  regionOps: HEAD_REGION_OPS,
  regionWhat: 'head reshapes, transposes, the rotary embedding and the key/value repeat',
  heads: llamaHeads,
  // partial rotary: the cos / sin Muls read a Slice [0, r) of the head; else the whole head rotates
  partialRotary: (ix, { inRegion, positional, lastAxis }) => positional.flatMap((m) => {
    const x = (m.input ?? []).find((i) => inRegion.has(i));
    const src = x ? ix.producer(x) : undefined;
    return isOp(src, 'Slice') && lastAxis(src) ? [src] : [];
  }),
  updateWhat: 'the update added to the residual stream',
  biasFree: false,
};

/** The head splits [b, s, h, dh] of q, and of k and v (grouped-query attention: fewer heads). */
function llamaHeads(ix: GraphIndex, q: Region, k: Region, v: Region, facts: AttentionFacts): void {
  const qs = headSplit(ix, q);
  if (!qs) fail(ix, q.lin.output, 'a Reshape of q into heads [b, s, h, dh] with constant head count and head size', q.lin.node);
  facts.heads = qs.heads;
  facts.dHead = qs.dHead;
  const ks = headSplit(ix, k);
  const vs = headSplit(ix, v);
  if (!ks || !vs || ks.dHead !== qs.dHead || vs.dHead !== qs.dHead || ks.heads !== vs.heads) {
    fail(ix, (ks ? v : k).lin.output, `Reshapes of k and v into the same number of heads of size ${qs.dHead} [b, s, kv_heads, ${qs.dHead}]`, (ks ? v : k).lin.node);
  }
  if (ks.heads < 1 || ks.heads > qs.heads || qs.heads % ks.heads !== 0) {
    fail(ix, k.lin.output, `key/value heads dividing the ${qs.heads} query heads (found ${ks.heads})`, k.lin.node);
  }
  facts.kvHeads = ks.heads;
  if (ks.heads < qs.heads) {
    for (const [name, g] of [['keys', k], ['values', v]] as const) {
      if (!g.nodes.some((n) => REPEAT_OPS.includes(n.opType ?? ''))) {
        fail(ix, g.lin.output, `the ${ks.heads} ${name} heads repeated to the ${qs.heads} query heads (Expand or Tile) before the attention MatMul`, g.hits[0]!.node);
      }
    }
  }
}

function matchAttention(ix: GraphIndex, rec: Recorder, norm: NormMatch, attnOut: string, facts: AttentionFacts): void {
  const lnOut = rec.found('attnNorm', norm.output);
  const linears = linearConsumers(ix, lnOut, 'a layer reading the attention\'s RMSNorm');
  if (linears.length !== 3) {
    fail(ix, lnOut, `three attention projections q, k and v reading the attention's RMSNorm (found ${linears.length}; a fused q|k|v layer is not supported for llama)`);
  }
  matchRotaryAttention(ix, rec, lnOut, linears, attnOut, facts, LLAMA);
}

interface Mlp {
  dMlp: number;
  activation: string;
  gate: LinearWeights;
  up: LinearWeights;
  down: LinearWeights;
}

/** act(gate) for a gate projection's output: one Silu / Swish node, or an elementwise region (Sigmoid·x). */
function gateActivation(ix: GraphIndex, t: string): { output: string; kind: string } {
  const single = ix.dataConsumers(t).filter((n) => isOp(n, ...SILU_OPS) && in0(n) === t);
  if (single.length === 1 && ix.dataConsumers(t).length === 1) return { output: out0(single[0]!), kind: 'silu' };
  const act = matchActivation(ix, t, 'gated MLP');
  return { output: act.output, kind: act.kind };
}

function matchMlp(ix: GraphIndex, rec: Recorder, norm: NormMatch, mlpOut: string): Mlp {
  const x = rec.found('mlpNorm', norm.output);
  const linears = linearConsumers(ix, x, 'a layer reading the MLP\'s RMSNorm');
  if (linears.length !== 2) {
    fail(ix, x, `two MLP input projections, gate and up, reading the MLP's RMSNorm (found ${linears.length}): a gated (SwiGLU) MLP`);
  }
  let found: { gate: LinearMatch; up: LinearMatch; product: NodeProto; kind: string } | undefined;
  for (const [gate, up] of [[linears[0]!, linears[1]!], [linears[1]!, linears[0]!]] as const) {
    let act: { output: string; kind: string };
    try {
      act = gateActivation(ix, gate.output);
    } catch (e) {
      if (e instanceof PatternBreak) continue;
      throw e;
    }
    const product = ix.dataConsumers(act.output).find((n) => isOp(n, 'Mul') && otherInput(n, act.output) === up.output);
    if (product && ix.dataConsumers(up.output).length === 1) {
      found = { gate, up, product, kind: act.kind };
      break;
    }
  }
  if (!found) {
    fail(ix, x, 'a gated MLP: act(gate projection) (Sigmoid·x or Silu) times the up projection, both reading the MLP\'s RMSNorm', linears[0]!.node);
  }
  const product = out0(found.product);
  rec.found('mlpPre', product);
  rec.found('mlpAct', product);
  const down = matchLinear(ix, product, 'MLP down projection');
  if (down.output !== mlpOut) {
    fail(ix, down.output, `the MLP down projection to be the update added to the residual stream ('${mlpOut}')`, ix.producer(mlpOut));
  }
  const dims = tensorDims(ix.constantTensor(found.gate.weight) ?? {});
  return {
    dMlp: (found.gate.transposed ? dims[0] : dims[1]) ?? 0, activation: found.kind,
    gate: weightsOf(found.gate), up: weightsOf(found.up), down: weightsOf(down),
  };
}

export function detectLlama(ix: GraphIndex, dtypes: ReadonlyMap<string, number>, overrides: readonly SiteOverride[] = []): Detection {
  const model: SectionFindings = { found: [], missing: [] };
  const mrec = new Recorder(ix, model);
  const layers: LayerFindings[] = [];
  const notes: string[] = [];
  const emb = mrec.attempt(['inputIds', 'embedding'], () => findEmbedding(ix, mrec, RMS_NORM));
  if (!emb) return { family: FAMILY, matched: false, model, layers, notes };

  const perLayer: LayerSites[] = [];
  const tally = new LayerTally(notes);
  const inputs = new AttentionInputs();
  let layersOk = true;
  const walk = walkBlocks(ix, emb.r0, model, layers, RMS_NORM, (entry, r, l) => {
    const { norm: n1, rec, findings: L } = entry;
    const facts: AttentionFacts = {};
    const block = matchSequentialBlock(ix, r, entry, RMS_NORM, 'one residual Add after the MLP (a sequential block: attention, then MLP)',
      (norm, attnOut) => matchAttention(ix, rec, norm, attnOut, facts), (n2, mlpOut) => matchMlp(ix, rec, n2, mlpOut));
    if (!block) return undefined;
    const { attnOut, residMid, mlpOut, residPost, mlp } = block;
    tally.mlp(mlp);
    tally.attention(l, facts, true);
    tally.rotaryOf(l, facts);
    inputs.add(l, facts);
    if (L.missing.length || !mlp || !facts.qProj || !facts.kProj || !facts.vProj || !facts.attnProj) layersOk = false;
    else {
      const g = (s: string): string => rec.get(s)!;
      perLayer.push({
        layer: l, residIn: r, attnNorm: n1.output, q: g('q'), k: g('k'), kLayout: facts.kLayout!, v: g('v'),
        scores: g('scores'), softmaxNode: facts.softmaxNode ?? '', probs: g('probs'), context: g('context'),
        contextMerged: g('contextMerged'), attnOut, residMid, mlpNorm: block.mlpNorm!.output,
        mlpPre: g('mlpPre'), mlpAct: g('mlpAct'), mlpOut, residPost,
        attnAddOut: residMid, mlpAddOut: residPost,
        qProj: facts.qProj, kProj: facts.kProj, vProj: facts.vProj, attnProj: facts.attnProj,
        mlpFc: mlp.gate, mlpUp: mlp.up, mlpProj: mlp.down,
      });
    }
    return residPost;
  }, overrides);
  const complete = walk.complete && layersOk;
  const { finalNorm } = walk;

  // final RMSNorm and LM head (tied or untied; Llama's has no bias)
  const head = matchFinal(ix, mrec, model, walk, complete, RMS_NORM);
  const withPositions = inputs.embedding(mrec, emb);
  const attentionMask = findAttentionMask(ix, mrec, withPositions, inputs.pastNames());

  const dModel = modelWidth(ix, emb, tally, notes);
  const { heads, kvHeads, dHead, rotary } = tally;
  if (finalNorm) notes.push(`norms: ${finalNorm.op}${finalNorm.epsilon !== undefined ? `, ε = ${Number(finalNorm.epsilon.toPrecision(6))}` : ''}`);
  if (rotary) notes.push(`rotary position embedding on the first ${rotary.dims} of ${dHead ?? '?'} head dimensions of q and k (${rotary.style})`);
  if (heads !== undefined && kvHeads !== undefined && kvHeads < heads) {
    notes.push(`grouped-query attention: ${kvHeads} key/value heads for ${heads} query heads; k and v sites are after the repeat (per query head)`);
  }
  inputs.note(notes, `keys after the rotary embedding, ${kvHeads ?? '?'} key/value heads (before the repeat)`);
  notes.push('gated MLP: mlpPre = mlpAct = act(gate) ⊙ up, the down projection\'s input');
  return assembleDetection({
    family: FAMILY, dtypes, model, layers, notes, complete, ...(finalNorm ? { finalNorm } : {}), ...(head ? { head } : {}),
    perLayer, tally, dModel, emb: withPositions, ...(attentionMask ? { attentionMask } : {}), past: inputs.past, ...(inputs.rotaryPositions() ? { rotaryPositions: inputs.rotaryPositions()! } : {}), block: 'sequential', positionWeight: false,
  });
}
