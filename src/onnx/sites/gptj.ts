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
//   - no bias on q, k, v and the output projection; an untied LM head with a bias.
//
// Sites in a parallel block: residMid = residIn and mlpNorm = attnNorm (see types.ts);
// attnAddOut / mlpAddOut are the Add(s) that sum the updates, where the gates act.

import { GraphIndex, nodeLabel } from '../graph.js';
import { DataType, type NodeProto } from '../proto.js';
import { attrInt, attrInts, tensorDims } from '../tensor.js';
import { enterBlock, findAttentionMask, findEmbedding, matchLmHead, weightsOf, type LmHead } from './common.js';
import { Recorder, type Detection, type LayerFindings, type SectionFindings } from './findings.js';
import {
  PatternBreak, fail, forwardTo, in0, isOp, linearConsumers, matchActivation, matchLayerNorm, matchLinear, otherInput, out0,
  soleConsumer, type LinearMatch, type NormMatch,
} from './pattern.js';
import type { HeadProjection, LayerSites, LinearWeights, ModelSites } from './types.js';

const FAMILY = 'gptj';
const SCORE_PASS_OPS = ['Div', 'Mul', 'Cast', 'Where', 'Add', 'Sub', 'Identity'];
/** Ops between a q/k/v projection and its attention MatMul: head split, rotary, dtype casts. */
const HEAD_REGION_OPS = ['Reshape', 'Transpose', 'Slice', 'Neg', 'Concat', 'Mul', 'Add', 'Sub', 'Unsqueeze', 'Squeeze', 'Cast', 'Identity',
  'Split', 'Flatten', 'Expand'];
const PROBS_PASS_OPS = ['Cast', 'Identity', 'Dropout'];
const CAST_OPS = ['Cast', 'Identity'];
const HEAD_REGION_LIMIT = 256;

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

interface AttentionFacts {
  heads?: number;
  dHead?: number;
  kLayout?: 'bhsd' | 'bhds';
  softmaxNode?: string;
  rotary?: { dims: number; style: 'interleaved' | 'half' };
  qProj?: HeadProjection;
  kProj?: HeadProjection;
  vProj?: HeadProjection;
  attnProj?: LinearWeights;
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
  for (const fc of linears) {
    try {
      const act = matchActivation(ix, fc.output, 'MLP');
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

interface Region {
  readonly lin: LinearMatch;
  readonly nodes: readonly NodeProto[];
  /** The activation × activation MatMul(s) reached, and the input slot read. */
  readonly hits: readonly { readonly node: NodeProto; readonly slot: number }[];
}

/** Everything between a projection's output and the attention MatMul it reaches. */
function headRegion(ix: GraphIndex, lin: LinearMatch): Region {
  const nodes: NodeProto[] = [];
  const hits: { node: NodeProto; slot: number }[] = [];
  const seen = new Set<string>([lin.output]);
  const stack = [lin.output];
  while (stack.length) {
    const t = stack.pop()!;
    for (const n of ix.dataConsumers(t)) {
      if (isOp(n, 'MatMul') && !ix.isConstant(n.input?.[1] ?? '') && !ix.isConstant(in0(n))) {
        const slot = (n.input ?? []).indexOf(t);
        if (!hits.some((h) => h.node === n && h.slot === slot)) hits.push({ node: n, slot });
        continue;
      }
      if (!HEAD_REGION_OPS.includes(n.opType ?? '')) {
        fail(ix, t, 'q, k and v reaching the attention MatMuls through head reshapes, transposes and the rotary embedding', n);
      }
      if (isOp(n, 'Concat') && (n.input ?? []).some((i) => ix.isGraphInput(i))) {
        fail(ix, t, 'no past key/value inputs (a kv cache is not supported for gptj)', n);
      }
      if (nodes.includes(n)) continue;
      nodes.push(n);
      if (nodes.length > HEAD_REGION_LIMIT) fail(ix, t, `an attention projection reaching its MatMul within ${HEAD_REGION_LIMIT} nodes`, n);
      for (const o of n.output ?? []) {
        if (o && !seen.has(o)) {
          seen.add(o);
          stack.push(o);
        }
      }
    }
  }
  return { lin, nodes, hits };
}

function back(ix: GraphIndex, t: string, ops: readonly string[]): string {
  let cur = t;
  for (let guard = 0; guard < 8; guard++) {
    const p = ix.producer(cur);
    if (!p || !ops.includes(p.opType ?? '')) break;
    cur = in0(p);
  }
  return cur;
}

function perm(node: NodeProto): string {
  return (attrInts(node, 'perm') ?? []).join(',');
}

/** Constant 1-element int input of a Slice (starts, ends, axes, steps). */
function sliceArg(ix: GraphIndex, n: NodeProto, i: number): number | undefined {
  const t = n.input?.[i];
  if (!t) return undefined;
  const v = ix.constantValues(t);
  return v?.length === 1 ? v[0] : undefined;
}

/** Rotary on the head dimension within a q or k region: its width and style, or undefined. */
function rotaryOf(ix: GraphIndex, region: Region, dHead: number): { dims: number; style: 'interleaved' | 'half' } | undefined {
  const inRegion = new Set(region.nodes.flatMap((n) => n.output ?? []));
  inRegion.add(region.lin.output);
  const has = (op: string): boolean => region.nodes.some((n) => n.opType === op);
  const positional = region.nodes.some((n) => isOp(n, 'Mul') && (n.input ?? []).some((i) => i && !inRegion.has(i) && !ix.isConstant(i)));
  if (!has('Neg') || !has('Concat') || !positional) return undefined;
  const lastAxis = (n: NodeProto): boolean => {
    const axis = sliceArg(ix, n, 3);
    return axis === 3 || axis === -1;
  };
  const slices = region.nodes.filter((n) => isOp(n, 'Slice') && lastAxis(n));
  const style = slices.some((n) => sliceArg(ix, n, 4) === 2) ? 'interleaved' as const : 'half' as const;
  // the rotary part: a Slice [0, r) of a whole-head tensor (the head split or a transpose of it)
  let dims = dHead;
  for (const n of slices) {
    const src = ix.producer(in0(n));
    if (!isOp(src, 'Reshape', 'Transpose')) continue;
    const start = sliceArg(ix, n, 1);
    const end = sliceArg(ix, n, 2);
    const step = sliceArg(ix, n, 4) ?? 1;
    if (start === 0 && step === 1 && end !== undefined && end > 0 && end < dHead) dims = Math.min(dims, end);
  }
  return { dims, style };
}

function matchAttention(ix: GraphIndex, rec: Recorder, lnOut: string, linears: readonly LinearMatch[], attnOut: string, facts: AttentionFacts): void {
  if (linears.length !== 3) {
    fail(ix, lnOut, `three attention projections q, k and v reading the block's LayerNorm besides the MLP (found ${linears.length}; a fused q|k|v layer is not gptj)`);
  }
  const regions = linears.map((lin) => headRegion(ix, lin));
  for (const g of regions) {
    if (g.hits.length !== 1) fail(ix, g.lin.output, `one attention MatMul reached from each of q, k, v (found ${g.hits.length})`, g.hits[1]?.node ?? g.lin.node);
  }
  const qkRegions = regions.filter((g) => regions.some((o) => o !== g && o.hits[0]!.node === g.hits[0]!.node));
  const q = qkRegions.find((g) => g.hits[0]!.slot === 0);
  const k = qkRegions.find((g) => g.hits[0]!.slot === 1);
  const v = regions.find((g) => !qkRegions.includes(g));
  if (qkRegions.length !== 2 || !q || !k || !v || v.hits[0]!.slot !== 1) {
    fail(ix, lnOut, 'q and k meeting in one MatMul q·kᵀ (inputs 0 and 1) and v as input 1 of another (probs·V)', regions[0]!.hits[0]!.node);
  }
  const qk = q.hits[0]!.node;

  // heads: the head split of q, [b, s, h, dh] with constant h and dh
  const split = ix.dataConsumers(q.lin.output).find((n) => isOp(n, 'Reshape') && in0(n) === q.lin.output);
  const shape = split ? ix.partialShape(split.input?.[1] ?? '') : undefined;
  if (!split || !shape || shape.length !== 4 || shape[2] === undefined || shape[3] === undefined) {
    fail(ix, q.lin.output, 'a Reshape of q into heads [b, s, h, dh] with constant head count and head size', split);
  }
  facts.heads = shape[2];
  facts.dHead = shape[3];
  for (const [name, g] of [['q', q], ['k', k], ['v', v]] as const) {
    if (g.lin.bias) fail(ix, g.lin.output, `a ${name} projection without bias (gptj)`, g.lin.node);
  }

  // rotary on q and k
  const rq = rotaryOf(ix, q, facts.dHead);
  const rk = rotaryOf(ix, k, facts.dHead);
  if (!rq || !rk) {
    fail(ix, (rq ? k : q).lin.output, `a rotary position embedding on ${rq ? 'the keys' : 'the queries'} (Neg, Concat and a Mul by position-dependent sin/cos on the head dimension)`, qk);
  }
  if (rq.dims !== rk.dims || rq.style !== rk.style) {
    fail(ix, k.lin.output, `the same rotary embedding on q and k (q: ${rq.dims} dims ${rq.style}, k: ${rk.dims} dims ${rk.style})`, qk);
  }
  facts.rotary = rq;

  // q, k after rotary: the MatMul's inputs before dtype casts (and before the keys' transpose)
  const inRegion = (g: Region, t: string): boolean => g.nodes.some((n) => (n.output ?? []).includes(t));
  const qT = back(ix, qk.input?.[0] ?? '', CAST_OPS);
  if (!inRegion(q, qT)) fail(ix, qk.input?.[0] ?? '', 'the queries computed in the q region', qk);
  rec.found('q', qT);
  let kT = back(ix, qk.input?.[1] ?? '', CAST_OPS);
  const kTranspose = ix.producer(kT);
  if (isOp(kTranspose, 'Transpose') && perm(kTranspose) === '0,1,3,2') {
    kT = back(ix, in0(kTranspose), CAST_OPS);
    facts.kLayout = 'bhsd';
  } else {
    facts.kLayout = 'bhds';
  }
  if (!inRegion(k, kT)) fail(ix, qk.input?.[1] ?? '', 'the keys computed in the k region', qk);
  rec.found('k', kT);

  const softmax = forwardTo(ix, out0(qk), SCORE_PASS_OPS, ['Softmax'], 'a Softmax over the attention scores (after scale and masks)').node;
  const axis = attrInt(softmax, 'axis', -1);
  if (axis !== -1 && axis !== 3) fail(ix, in0(softmax), 'a Softmax over the last axis (keys)', softmax);
  facts.softmaxNode = softmax.name ?? '';
  rec.found('scores', in0(softmax));
  const probs = rec.found('probs', out0(softmax));

  const pv = v.hits[0]!.node;
  const reached = forwardTo(ix, probs, PROBS_PASS_OPS, ['MatMul'], 'the MatMul probs·V').node;
  if (reached !== pv || back(ix, in0(pv), PROBS_PASS_OPS) !== probs) {
    fail(ix, probs, `the probabilities as input 0 of the MatMul the values reach (${nodeLabel(pv)})`, reached);
  }
  const vT = back(ix, pv.input?.[1] ?? '', CAST_OPS);
  if (!inRegion(v, vT)) fail(ix, pv.input?.[1] ?? '', 'the values computed in the v region', pv);
  rec.found('v', vT);
  const context = rec.found('context', out0(pv));

  const cT = soleConsumer(ix, context, ['Transpose'], 'a Transpose of the context to [b, s, h, dh]');
  if (perm(cT) !== '0,2,1,3') fail(ix, context, 'a Transpose with perm [0,2,1,3]', cT);
  const merge = soleConsumer(ix, out0(cT), ['Reshape'], 'a Reshape merging the heads into [b, s, d]');
  const merged = rec.found('contextMerged', out0(merge));
  const proj = matchLinear(ix, merged, 'attention output projection');
  if (proj.output !== attnOut) {
    fail(ix, proj.output, `the attention output projection to be the update the block adds ('${attnOut}')`, ix.producer(attnOut));
  }
  if (proj.bias) fail(ix, merged, 'an attention output projection without bias (gptj)', proj.node);
  facts.qProj = { ...weightsOf(q.lin), offset: 0 };
  facts.kProj = { ...weightsOf(k.lin), offset: 0 };
  facts.vProj = { ...weightsOf(v.lin), offset: 0 };
  facts.attnProj = weightsOf(proj);
}

export function detectGptj(ix: GraphIndex, dtypes: ReadonlyMap<string, number>): Detection {
  const model: SectionFindings = { found: [], missing: [] };
  const mrec = new Recorder(ix, model);
  const layers: LayerFindings[] = [];
  const notes: string[] = [];
  const emb = mrec.attempt(['inputIds', 'embedding'], () => findEmbedding(ix, mrec));
  if (!emb) return { family: FAMILY, matched: false, model, layers, notes };

  const perLayer: LayerSites[] = [];
  let heads: number | undefined;
  let dHead: number | undefined;
  let dMlp: number | undefined;
  let rotary: AttentionFacts['rotary'];
  let activation = '';
  let r = emb.r0;
  let finalNorm: NormMatch | undefined;
  let complete = true;
  for (let l = 0; l < 4096; l++) {
    const entry = enterBlock(ix, r, l, model, layers);
    if (entry.kind === 'broken') {
      complete = false;
      break;
    }
    if (entry.kind === 'final') {
      finalNorm = entry.norm;
      break;
    }
    const { norm: ln, adds, rec, findings: L } = entry;
    if (adds.length > 1) {
      rec.missing([...BLOCK_SITES, ...ATTENTION_SITES], new PatternBreak(adds[1], r, 'one residual Add reading the residual stream'));
      complete = false;
      break;
    }
    const block = rec.attempt([...BLOCK_SITES, ...ATTENTION_SITES], () => matchBlock(ix, rec, r, adds[0]!, ln));
    if (!block) {
      complete = false;
      // not a parallel block at all: the gptj signature does not match this graph
      if (l === 0) return { family: FAMILY, matched: false, model, layers, notes };
      break;
    }
    dMlp ??= block.dMlp;
    activation ||= block.activation;
    const facts: AttentionFacts = {};
    rec.attempt([...ATTENTION_SITES], () => matchAttention(ix, rec, ln.output, block.attnLinears, block.attnOut, facts));
    if (facts.heads !== undefined) {
      if (heads !== undefined && heads !== facts.heads) notes.push(`layer ${l} has ${facts.heads} heads, layer 0 has ${heads}`);
      heads ??= facts.heads;
      dHead ??= facts.dHead;
    }
    if (facts.rotary) {
      if (rotary && (rotary.dims !== facts.rotary.dims || rotary.style !== facts.rotary.style)) {
        notes.push(`layer ${l} has rotary on ${facts.rotary.dims} dims (${facts.rotary.style}), layer 0 on ${rotary.dims} (${rotary.style})`);
      }
      rotary ??= facts.rotary;
    }
    if (L.missing.length || !facts.qProj || !facts.kProj || !facts.vProj || !facts.attnProj) complete = false;
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
    r = block.residPost;
  }

  // final norm and LM head: untied, with a bias
  let head: LmHead | undefined;
  if (finalNorm) {
    mrec.found('finalNorm', finalNorm.output);
    const fn = finalNorm;
    head = mrec.attempt(['unembedding', 'logits'], () => matchLmHead(ix, mrec, fn));
    const headNode = head ? ix.dataConsumers(head.weight)[0] : undefined;
    if (head && head.weight === emb.weight) {
      model.missing.push({ site: 'unembedding', expected: 'an untied LM head (its own weight, not the input embedding: gptj)', at: nodeLabel(headNode) });
    }
    if (head && !head.bias) {
      model.missing.push({ site: 'unembeddingBias', expected: 'an LM head with a bias (gptj)', at: nodeLabel(headNode) });
    }
  } else if (complete) {
    model.missing.push({ site: 'finalNorm', expected: 'a final LayerNorm', at: nodeLabel(ix.producer(r)) });
  }
  const attentionMask = findAttentionMask(ix, mrec, emb, new Set());

  const dModel = tensorDims(ix.constantTensor(emb.weight) ?? {})[1] ?? 0;
  if (heads !== undefined && dHead !== undefined && heads * dHead !== dModel) {
    notes.push(`heads × head size = ${heads} × ${dHead} differs from the embedding width ${dModel}`);
  }
  notes.push('parallel blocks: attention and MLP read one LayerNorm; residMid is the block input, mlpNorm = attnNorm');
  if (rotary) notes.push(`rotary position embedding on the first ${rotary.dims} of ${dHead ?? '?'} head dimensions of q and k (${rotary.style})`);
  const allFound = complete && !!finalNorm && !!head && model.missing.length === 0 && layers.every((L) => L.missing.length === 0) && perLayer.length > 0;
  const dtype = dtypes.get(perLayer[0]?.scores ?? '') ?? dtypes.get(head?.logits ?? '') ?? DataType.FLOAT;
  const detection: Detection = { family: FAMILY, matched: true, model, layers, notes };
  if (!allFound || !head || !finalNorm || heads === undefined || dHead === undefined) return detection;
  const sites: ModelSites = {
    family: 'gptj',
    layers: perLayer.length,
    heads,
    dHead,
    dModel,
    dMlp: dMlp ?? 0,
    vocab: head.vocab,
    dtype,
    activation,
    block: 'parallel',
    ...(rotary ? { rotary } : {}),
    perLayer,
    finalNorm: { input: finalNorm.input, output: finalNorm.output, op: finalNorm.op },
    embedding: { weight: emb.weight, output: emb.output, ...(emb.positionWeight ? { positionWeight: emb.positionWeight } : {}) },
    unembedding: { weight: head.weight, layout: head.layout, ...(head.bias ? { bias: head.bias } : {}), op: head.op },
    logits: head.logits,
    inputs: {
      inputIds: emb.ids,
      ...(attentionMask ? { attentionMask } : {}),
      ...(emb.positionIds ? { positionIds: emb.positionIds } : {}),
      past: [],
    },
  };
  return { ...detection, sites };
}
