// GPT-J family: a token embedding (no position embedding), then parallel blocks
//   r → LN → { q, k, v projections (no bias) → heads → rotary embedding on the first
//              rotary_dim of each head of q and k → q·kᵀ → causal / scale / padding masks →
//              Softmax → ·V → merge heads → output projection (no bias) }
//          + { fc_in → gelu → fc_out }  (both off the same LN output)
//          + r
// and finally LN → LM head (untied, with bias). Matched by structure only (the TorchScript
// export of Hugging Face's GPTJForCausalLM maths; names are never read):
//   - the parallel block: the Add reading the residual stream also adds the sum of two
//     updates (HF: attn + mlp + r), or adds one and is then read only by an Add adding the
//     other ((r + attn) + mlp); one update is an MLP (linear → elementwise activation →
//     linear) reading the block's LayerNorm, the other the attention reading the same norm;
//   - q, k, v: three linear layers on that norm; forward from each, a region of reshapes,
//     transposes, slices, Neg, Concat, Mul/Add reaches an activation × activation MatMul:
//     q and k meet in q·kᵀ (slots 0 and 1), v in probs·V;
//   - rotary: the q and k regions each hold a Neg, a Concat and a Mul by a position-dependent
//     (non-constant, outside) tensor; its width is the Slice [0, r) of the head dimension
//     (r = head size when there is none), interleaved when pairs are taken with step 2;
//   - no bias on q, k, v and the output projection; an untied LM head with a bias;
//   - Optimum exports (text-generation-with-past): the k and v regions concatenate past inputs
//     [b, h, past, dh] before the new positions (keys after the rotary); the k and v sites are
//     those Concats (the present.* outputs read them). position_ids, a graph input, feeds the sin/cos.
//
// Sites in a parallel block: residMid = residIn and mlpNorm = attnNorm (see types.ts);
// attnAddOut / mlpAddOut are the Add(s) that sum the updates, where the gates act.

import { GraphIndex, nodeLabel } from '../graph.js';
import type { NodeProto } from '../proto.js';
import { tensorDims } from '../tensor.js';
import { AttentionInputs, headReshape, headSplit, matchRotaryAttention, type AttentionFacts, type Region, type RotaryFamily } from './attention-region.js';
import {
  LAYER_NORM, LayerTally, assembleDetection, findAttentionMask, findEmbedding, matchFinal, modelWidth, walkBlocks, weightsOf,
} from './common.js';
import { Recorder, type Detection, type LayerFindings, type SectionFindings } from './findings.js';
import {
  PatternBreak, fail, in0, isOp, linearConsumers, matchActivation, matchLayerNorm, matchLinear, otherInput, out0, type LinearMatch,
  type NormMatch,
} from './pattern.js';
import type { LayerSites, LinearWeights, SiteOverride } from './types.js';

const FAMILY = 'gptj';
/** Ops between a q/k/v projection and its attention MatMul: head split, rotary, dtype casts. */
const HEAD_REGION_OPS = ['Reshape', 'Transpose', 'Slice', 'Neg', 'Concat', 'Mul', 'Add', 'Sub', 'Unsqueeze', 'Squeeze', 'Cast', 'Identity',
  'Split', 'Flatten', 'Expand'];

// in matching order, so the first missing site is where matching stopped
const BLOCK_SITES = ['attnNorm', 'mlpNorm', 'attnOut', 'mlpOut', 'residMid', 'residPost', 'mlpPre', 'mlpAct'] as const;
const ATTENTION_SITES = ['q', 'k', 'scores', 'probs', 'v', 'context', 'contextMerged'] as const;

interface Block {
  attnOut: string;
  mlpOut: string;
  residPost: string;
  attnAddOut: string;
  mlpAddOut: string;
  attnLinears: LinearMatch[];
  mlpFc: LinearWeights;
  mlpProj: LinearWeights;
  dMlp: number;
  activation: string;
}

/** The residual structure of a parallel block: the residual Add `add1` reads r and … */
function residualShape(ix: GraphIndex, r: string, add1: NodeProto): { updates: [string, string]; residPost: string; addOut: (u: string) => string } {
  const other = otherInput(add1, r);
  const p = ix.producer(other);
  const live = (t: string): boolean => !!t && t !== r && !ix.isConstant(t);
  // … the sum of the two updates: r + (attn + mlp)
  if (isOp(p, 'Add') && (p.input ?? []).every(live) && ix.dataConsumers(other).length === 1) {
    return { updates: [in0(p), p.input![1]!], residPost: out0(add1), addOut: () => other };
  }
  // … one update, then an Add (the stream's only reader: no norm between) adds the other: (r + a) + b
  const t = out0(add1);
  const next = ix.dataConsumers(t);
  if (live(other) && next.length === 1 && isOp(next[0], 'Add') && !matchLayerNorm(ix, t) && live(otherInput(next[0], t))) {
    const add2 = next[0];
    const residPost = out0(add2);
    return { updates: [other, otherInput(add2, t)], residPost, addOut: (u) => (u === other ? t : residPost) };
  }
  return fail(ix, r, 'a parallel block: the residual Add also adding a second update (residual + attention + MLP off one LayerNorm)', add1);
}

function matchBlock(ix: GraphIndex, rec: Recorder, r: string, add1: NodeProto, ln: NormMatch): Block {
  const shape = residualShape(ix, r, add1);
  const linears = linearConsumers(ix, ln.output, 'a layer reading the block\'s LayerNorm');
  let mlp: { fc: LinearMatch; pre: string; act: string; kind: string; proj: LinearMatch } | undefined;
  const named = rec.override('mlpAct');
  for (const fc of linears) {
    try {
      const act = named !== undefined ? { output: named, kind: 'named by a site override' } : matchActivation(ix, fc.output, 'MLP');
      const proj = matchLinear(ix, act.output, 'MLP output projection');
      if (shape.updates.includes(proj.output)) {
        mlp = { fc, pre: fc.output, act: act.output, kind: act.kind, proj };
        break;
      }
    } catch (e) {
      if (!(e instanceof PatternBreak)) throw e;
    }
  }
  if (!mlp) {
    fail(ix, ln.output, 'an MLP (linear → activation → linear) reading the block\'s LayerNorm and writing one of the two updates the residual Add sums (a parallel block)');
  }
  const mlpOut = mlp.proj.output;
  const attnOut = shape.updates[0] === mlpOut ? shape.updates[1] : shape.updates[0];
  rec.found('attnNorm', ln.output);
  rec.found('mlpNorm', ln.output);
  rec.found('attnOut', attnOut);
  rec.found('mlpOut', mlpOut);
  rec.found('residMid', r);
  rec.found('residPost', shape.residPost);
  rec.found('mlpPre', mlp.pre);
  rec.found('mlpAct', mlp.act);
  const w = ix.constantTensor(mlp.fc.weight);
  const dims = w ? tensorDims(w) : [];
  return {
    attnOut, mlpOut, residPost: shape.residPost, attnAddOut: shape.addOut(attnOut), mlpAddOut: shape.addOut(mlpOut),
    attnLinears: linears.filter((x) => x.node !== mlp!.fc.node),
    mlpFc: weightsOf(mlp.fc), mlpProj: weightsOf(mlp.proj), dMlp: (mlp.fc.transposed ? dims[0] : dims[1]) ?? 0, activation: mlp.kind,
  };
}

const GPTJ: RotaryFamily = {
  name: FAMILY,
  regionOps: HEAD_REGION_OPS,
  regionWhat: 'head reshapes, transposes and the rotary embedding',
  heads: gptjHeads,
  // the rotary part: a Slice [0, r) of a whole-head tensor (the head split or a transpose of it)
  partialRotary: (ix, { slices }) => slices.filter((n) => isOp(ix.producer(in0(n)), 'Reshape', 'Transpose')),
  updateWhat: 'the update the block adds',
  biasFree: true,
};

/** The head split of q, [b, s, h, dh] with constant h and dh. */
function gptjHeads(ix: GraphIndex, q: Region, _k: Region, _v: Region, facts: AttentionFacts): void {
  const s = headSplit(ix, q);
  if (!s) fail(ix, q.lin.output, 'a Reshape of q into heads [b, s, h, dh] with constant head count and head size', headReshape(ix, q));
  facts.heads = s.heads;
  facts.dHead = s.dHead;
}

function matchAttention(ix: GraphIndex, rec: Recorder, lnOut: string, linears: readonly LinearMatch[], attnOut: string, facts: AttentionFacts): void {
  if (linears.length !== 3) {
    fail(ix, lnOut, `three attention projections q, k and v reading the block's LayerNorm besides the MLP (found ${linears.length}; a fused q|k|v layer is not gptj)`);
  }
  matchRotaryAttention(ix, rec, lnOut, linears, attnOut, facts, GPTJ);
}

export function detectGptj(ix: GraphIndex, dtypes: ReadonlyMap<string, number>, overrides: readonly SiteOverride[] = []): Detection {
  const model: SectionFindings = { found: [], missing: [] };
  const mrec = new Recorder(ix, model);
  const layers: LayerFindings[] = [];
  const notes: string[] = [];
  const emb = mrec.attempt(['inputIds', 'embedding'], () => findEmbedding(ix, mrec));
  if (!emb) return { family: FAMILY, matched: false, model, layers, notes };

  const perLayer: LayerSites[] = [];
  const tally = new LayerTally(notes);
  const inputs = new AttentionInputs();
  let layersOk = true;
  let unmatched = false;
  const walk = walkBlocks(ix, emb.r0, model, layers, LAYER_NORM, (entry, r, l) => {
    const { norm: ln, adds, rec, findings: L } = entry;
    if (adds.length > 1) {
      rec.missing([...BLOCK_SITES, ...ATTENTION_SITES], new PatternBreak(adds[1], r, 'one residual Add reading the residual stream'));
      return undefined;
    }
    const block = rec.attempt([...BLOCK_SITES, ...ATTENTION_SITES], () => matchBlock(ix, rec, r, adds[0]!, ln));
    if (!block) {
      // not a parallel block at all: the gptj signature does not match this graph
      if (l === 0) unmatched = true;
      return undefined;
    }
    tally.mlp(block);
    const facts: AttentionFacts = {};
    rec.attempt([...ATTENTION_SITES], () => matchAttention(ix, rec, ln.output, block.attnLinears, block.attnOut, facts));
    tally.attention(l, facts);
    tally.rotaryOf(l, facts);
    inputs.add(l, facts);
    if (L.missing.length || !facts.qProj || !facts.kProj || !facts.vProj || !facts.attnProj) layersOk = false;
    else {
      const g = (s: string): string => rec.get(s)!;
      perLayer.push({
        layer: l, residIn: r, attnNorm: ln.output, q: g('q'), k: g('k'), kLayout: facts.kLayout!, v: g('v'),
        scores: g('scores'), softmaxNode: facts.softmaxNode ?? '', probs: g('probs'), context: g('context'),
        contextMerged: g('contextMerged'), attnOut: block.attnOut, residMid: r, mlpNorm: ln.output,
        mlpPre: g('mlpPre'), mlpAct: g('mlpAct'), mlpOut: block.mlpOut, residPost: block.residPost,
        attnAddOut: block.attnAddOut, mlpAddOut: block.mlpAddOut,
        qProj: facts.qProj, kProj: facts.kProj, vProj: facts.vProj, attnProj: facts.attnProj, mlpFc: block.mlpFc, mlpProj: block.mlpProj,
      });
    }
    return block.residPost;
  }, overrides);
  if (unmatched) return { family: FAMILY, matched: false, model, layers, notes };
  const complete = walk.complete && layersOk;
  const { finalNorm } = walk;

  // final norm and LM head: untied, with a bias
  const head = matchFinal(ix, mrec, model, walk, complete, LAYER_NORM);
  if (head) {
    const headNode = ix.dataConsumers(head.weight)[0];
    if (head.weight === emb.weight) {
      model.missing.push({ site: 'unembedding', expected: 'an untied LM head (its own weight, not the input embedding: gptj)', at: nodeLabel(headNode) });
    }
    if (!head.bias) {
      model.missing.push({ site: 'unembeddingBias', expected: 'an LM head with a bias (gptj)', at: nodeLabel(headNode) });
    }
  }
  const withPositions = inputs.embedding(mrec, emb);
  const attentionMask = findAttentionMask(ix, mrec, withPositions, inputs.pastNames());

  const dModel = modelWidth(ix, emb, tally, notes);
  const { dHead, rotary } = tally;
  notes.push('parallel blocks: attention and MLP read one LayerNorm; residMid is the block input, mlpNorm = attnNorm');
  if (rotary) notes.push(`rotary position embedding on the first ${rotary.dims} of ${dHead ?? '?'} head dimensions of q and k (${rotary.style})`);
  inputs.note(notes, 'keys after the rotary embedding');
  return assembleDetection({
    family: FAMILY, dtypes, model, layers, notes, complete, ...(finalNorm ? { finalNorm } : {}), ...(head ? { head } : {}),
    perLayer, tally, dModel, emb: withPositions, ...(attentionMask ? { attentionMask } : {}), past: inputs.past, ...(inputs.rotaryPositions() ? { rotaryPositions: inputs.rotaryPositions()! } : {}), block: 'parallel', positionWeight: true,
  });
}
