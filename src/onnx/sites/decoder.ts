// One detector for decoder-only transformers. They share a skeleton:
//
//   ids → token embedding [+ position embedding] [· scale] = r
//   per block: r → norm → attention → (+) → norm → MLP → (+)      sequential (GPT-2, OPT, Llama, …)
//              r → norm(s) → attention and MLP → r + attn + mlp    parallel (GPT-J: one norm; GPT-NeoX: two)
//   final norm → LM head [→ soft-cap] → logits
//
// and vary in parts the matcher finds by structure, never by name:
//   - norm: LayerNorm or RMSNorm, fused or decomposed (pattern.ts); an update may pass through
//     its own norm before the residual add (Gemma 2's sandwich norms);
//   - q, k, v: three linear layers, or one fused layer split into q | k | v (Split or Slices on its
//     last axis: GPT-2, Phi-3), or split per head after a Reshape to [b, s, h, 3·dh] (GPT-NeoX);
//   - heads: from the head Reshape ([b, s, h, dh], h or dh possibly −1); grouped-query attention
//     when k and v have fewer heads, repeated (Expand / Tile) before the MatMuls;
//   - rotary embedding on q and k, or none (learned positions);
//   - scores: q·kᵀ with scale, soft-capping and masks before the Softmax (common.ts);
//   - MLP: linear → activation → linear, or gated act(gate) ⊙ up with separate or fused gate | up.
// A family is then a name for a combination of parts (FAMILIES below): a graph built from known
// parts in a new combination is still recognised, as `decoder`.

import { GraphIndex } from '../graph.js';
import type { NodeProto } from '../proto.js';
import { attrFloat, attrInt, attrInts } from '../tensor.js';
import {
  AttentionInputs, headsOf, linearWidth, matchRegionAttention, type AttentionFacts, type QkvPart,
} from './attention-region.js';
import {
  LayerTally, assembleDetection, updateReaching, findAttentionMask, findEmbedding, matchFinal, modelWidth, walkBlocks, weightsOf, type NormKind,
} from './common.js';
import { Recorder, type Detection, type LayerFindings, type SectionFindings } from './findings.js';
import {
  PatternBreak, fail, in0, isOp, linearConsumers, matchActivation, matchLinear, matchNorm, normsReading, otherInput, out0,
  type LinearMatch, type NormMatch,
} from './pattern.js';
import type { ArchitectureFamily, LayerSites, SiteOverride } from './types.js';

const ANY_NORM: NormKind = { match: matchNorm, what: 'a LayerNorm or RMSNorm' };
/** Single-node SiLU activations (Sigmoid·x is recognised by matchActivation). */
const SILU_OPS = ['Silu', 'Swish'];

/** The parts a graph was found to be built from. */
export interface Parts {
  norm: 'layer_norm' | 'rms_norm';
  block: 'sequential' | 'parallel';
  /** Norms reading the residual stream of a parallel block (GPT-J 1, GPT-NeoX 2). */
  parallelNorms?: number;
  /** An update passes through its own norm before the residual add (Gemma 2). */
  sandwich: boolean;
  positions: 'learned' | 'rotary' | 'none';
  qkv: 'separate' | 'fused' | 'fused_per_head';
  mlp: 'plain' | 'gated' | 'gated_fused';
  embeddingScale: boolean;
}

/** Families, most specific first: the first whose parts all agree names the graph. */
const FAMILIES: readonly { readonly family: ArchitectureFamily; readonly parts: Partial<Parts> }[] = [
  { family: 'gpt2', parts: { norm: 'layer_norm', block: 'sequential', positions: 'learned', qkv: 'fused', mlp: 'plain' } },
  { family: 'opt', parts: { norm: 'layer_norm', block: 'sequential', positions: 'learned', qkv: 'separate', mlp: 'plain' } },
  { family: 'gptj', parts: { norm: 'layer_norm', block: 'parallel', parallelNorms: 1, positions: 'rotary', qkv: 'separate', mlp: 'plain' } },
  { family: 'gpt_neox', parts: { norm: 'layer_norm', block: 'parallel', parallelNorms: 2, positions: 'rotary', qkv: 'fused_per_head', mlp: 'plain' } },
  { family: 'gemma2', parts: { norm: 'rms_norm', block: 'sequential', sandwich: true, positions: 'rotary', qkv: 'separate', mlp: 'gated', embeddingScale: true } },
  { family: 'gemma', parts: { norm: 'rms_norm', block: 'sequential', sandwich: false, positions: 'rotary', qkv: 'separate', mlp: 'gated', embeddingScale: true } },
  { family: 'phi3', parts: { norm: 'rms_norm', block: 'sequential', sandwich: false, positions: 'rotary', qkv: 'fused', mlp: 'gated_fused' } },
  { family: 'llama', parts: { norm: 'rms_norm', block: 'sequential', sandwich: false, positions: 'rotary', qkv: 'separate', mlp: 'gated', embeddingScale: false } },
];

export function familyOf(parts: Parts): ArchitectureFamily {
  const agrees = (want: Partial<Parts>): boolean => Object.entries(want).every(([k, v]) => parts[k as keyof Parts] === v);
  return FAMILIES.find((f) => agrees(f.parts))?.family ?? 'decoder';
}

// in matching order, so the first missing site is where matching stopped
const BLOCK_SITES = ['attnNorm', 'attnOut', 'residMid', 'mlpNorm', 'mlpOut', 'residPost'] as const;
const ATTENTION_SITES = ['q', 'k', 'scores', 'probs', 'v', 'context', 'contextMerged'] as const;
const MLP_SITES = ['mlpAct', 'mlpPre'] as const;

/** The residual structure of one block, before its sublayers are matched. */
interface BlockShape {
  block: 'sequential' | 'parallel';
  attnNorm?: NormMatch;
  /** Sequential: the MLP's pre-norm; parallel: the norms reading the stream (one shared, or two). */
  mlpNorm?: NormMatch;
  norms: NormMatch[];
  /** Sequential: attnOut and mlpOut; parallel: the two updates, not yet told apart. */
  updates: [string, string];
  residMid: string;
  residPost: string;
  /** The Add that reads update u on its way into the residual stream. */
  addOut: (u: string) => string;
}

/**
 * Sequential: r + a is read by a norm (the MLP's) and an Add. Parallel: the Add reading r adds the
 * sum of two updates, r + (a + b), or adds one and only an Add reads it, (r + a) + b.
 */
function blockShape(ix: GraphIndex, r: string, norms: NormMatch[], adds: NodeProto[]): BlockShape {
  if (adds.length !== 1) fail(ix, r, 'one residual Add reading the residual stream', adds[1]);
  const add1 = adds[0]!;
  const other = otherInput(add1, r);
  const live = (t: string): boolean => !!t && t !== r && !ix.isConstant(t);
  const p = ix.producer(other);
  if (isOp(p, 'Add') && (p.input ?? []).every(live) && ix.dataConsumers(other).length === 1) {
    return { block: 'parallel', norms, updates: [in0(p), p.input![1]!], residMid: r, residPost: out0(add1), addOut: () => other };
  }
  const t = out0(add1);
  const n2 = matchNorm(ix, t);
  const next = ix.dataConsumers(t).filter((n) => isOp(n, 'Add') && !n2?.nodes.has(n));
  if (!n2 && next.length === 1 && live(otherInput(next[0]!, t)) && ix.dataConsumers(t).length === 1) {
    const residPost = out0(next[0]!);
    return { block: 'parallel', norms, updates: [other, otherInput(next[0]!, t)], residMid: r, residPost, addOut: (u) => (u === other ? t : residPost) };
  }
  if (norms.length !== 1) fail(ix, r, `one norm reading the residual stream before the attention (found ${norms.length})`, norms[1]?.nodes.values().next().value);
  if (!n2) fail(ix, t, `${ANY_NORM.what} before the MLP (a sequential block), or the second update of a parallel block`);
  if (next.length !== 1) fail(ix, t, 'one residual Add after the MLP', next[1] ?? ix.dataConsumers(t)[0]);
  const add2 = next[0]!;
  const mlpOut = otherInput(add2, t);
  return {
    block: 'sequential', attnNorm: norms[0]!, mlpNorm: n2, norms, updates: [other, mlpOut], residMid: t, residPost: out0(add2),
    addOut: (u) => (u === other ? t : out0(add2)),
  };
}

interface Mlp {
  kind: 'plain' | 'gated' | 'gated_fused';
  fc: LinearMatch;
  up?: LinearMatch;
  pre: string;
  act: string;
  proj: LinearMatch;
  activation: string;
  dMlp: number;
  out: string;
  postNorm?: NormMatch;
}

/** A single-node SiLU: Silu, Swish, or onnxruntime's QuickGelu x·σ(αx) with α = 1. */
function isSilu(n: NodeProto): boolean {
  return isOp(n, ...SILU_OPS) || (isOp(n, 'QuickGelu') && attrFloat(n, 'alpha', 1.702) === 1);
}

/** act(gate) for a gate's output: one SiLU node, or an elementwise region (Sigmoid·x, gelu). */
function gateActivation(ix: GraphIndex, t: string): { output: string; kind: string } {
  const single = ix.dataConsumers(t).filter((n) => isSilu(n) && in0(n) === t);
  if (single.length === 1 && ix.dataConsumers(t).length === 1) return { output: out0(single[0]!), kind: 'silu' };
  const act = matchActivation(ix, t, 'gated MLP');
  return { output: act.output, kind: act.kind };
}

/** The parts of a fused projection's output split on its last axis (Split, or Slices with constant bounds), in unit order. */
function lastAxisParts(
  ix: GraphIndex, t: string, rank: number, readers: readonly NodeProto[] = ix.dataConsumers(t),
): { tensor: string; offset: number; width?: number }[] | undefined {
  const lastAxis = (axis: number | undefined): boolean => axis === -1 || axis === rank - 1;
  const total = ix.shapes.dims(t)?.[rank - 1];
  if (readers.length === 1 && isOp(readers[0], 'Split')) {
    const split = readers[0];
    if (!lastAxis(attrInt(split, 'axis', 0))) return undefined;
    const sizes = split.input?.[1] ? ix.shapes.values(split.input[1]) : undefined;
    if (sizes?.some((x) => x === undefined)) return undefined;
    const outs = split.output ?? [];
    let offset = 0;
    return outs.map((o, i) => {
      const part = { tensor: o, offset, ...(sizes ? { width: sizes[i]! } : {}) };
      offset += sizes?.[i] ?? 0;
      return part;
    });
  }
  if (readers.length >= 1 && readers.every((n) => isOp(n, 'Slice'))) {
    const parts = readers.map((n) => {
      const [start, end, axes, steps] = [1, 2, 3, 4].map((i) => (n.input?.[i] ? ix.shapes.values(n.input[i]!) : undefined));
      if ([start, end, axes, steps].some((v) => v?.includes(undefined))) return undefined;
      if (start?.length !== 1 || end?.length !== 1 || (axes && (axes.length !== 1 || !lastAxis(axes[0]))) || (steps && steps[0] !== 1)) return undefined;
      // an open end (INT64_MAX) stops at the last unit
      const stop = Math.min(end[0]!, total ?? 2 ** 52);
      return { tensor: out0(n), offset: start[0]!, width: stop - start[0]! };
    });
    if (parts.some((x) => !x)) return undefined;
    return (parts as { tensor: string; offset: number; width: number }[]).sort((a, b) => a.offset - b.offset);
  }
  return undefined;
}

/**
 * The MLP among `linears` whose update reaches one of `targets`: plain (fc → act → proj), gated
 * with separate gate and up layers, or gated with one fused gate | up layer split in two.
 */
function findMlp(ix: GraphIndex, rec: Recorder, linears: readonly LinearMatch[], targets: readonly string[]): Mlp {
  const named = rec.override('mlpAct');
  const attempts: { kind: Mlp['kind']; match: () => Mlp | undefined }[] = [];
  const finish = (kind: Mlp['kind'], fc: LinearMatch, act: { output: string; kind: string }, pre: string, up?: LinearMatch): Mlp | undefined => {
    const proj = matchLinear(ix, act.output, 'MLP output projection');
    for (const target of targets) {
      const via = updateReaching(ix, proj.output, target);
      if (!via) continue;
      const width = linearWidth(ix, fc) ?? 0;
      return {
        kind, fc, ...(up ? { up } : {}), pre, act: act.output, proj, activation: act.kind, dMlp: kind === 'gated_fused' ? width / 2 : width,
        out: target, ...(via.postNorm ? { postNorm: via.postNorm } : {}),
      };
    }
    return undefined;
  };
  for (const fc of linears) {
    for (const up of linears) {
      if (up === fc) continue;
      attempts.push({ kind: 'gated', match: () => {
        const act = gateActivation(ix, fc.output);
        const product = ix.dataConsumers(act.output).find((n) => isOp(n, 'Mul') && otherInput(n, act.output) === up.output);
        if (!product || ix.dataConsumers(up.output).length !== 1) return undefined;
        return finish('gated', fc, { output: out0(product), kind: act.kind }, out0(product), up);
      } });
    }
    attempts.push({ kind: 'gated_fused', match: () => {
      const parts = lastAxisParts(ix, fc.output, 3);
      const [gate, up] = parts ?? [];
      if (parts?.length !== 2 || !gate || !up) return undefined;
      const act = gateActivation(ix, gate.tensor);
      const product = ix.dataConsumers(act.output).find((n) => isOp(n, 'Mul') && otherInput(n, act.output) === up.tensor);
      return product ? finish('gated_fused', fc, { output: out0(product), kind: act.kind }, out0(product)) : undefined;
    } });
    attempts.push({ kind: 'plain', match: () => {
      const act = named !== undefined ? { output: named, kind: 'named by a site override' } : matchActivation(ix, fc.output, 'MLP');
      return finish('plain', fc, act, fc.output);
    } });
  }
  // The break to report: the plain MLP's when one layer reads the norm, else the gated MLP's.
  let reported: PatternBreak | undefined;
  for (const [i, attempt] of attempts.entries()) {
    try {
      const m = attempt.match();
      if (m) return m;
    } catch (e) {
      if (!(e instanceof PatternBreak)) throw e;
      if (!reported || (linears.length === 1 && attempt.kind === 'plain') || (i === 0 && linears.length > 1)) reported = e;
    }
  }
  if (reported) throw reported;
  return fail(ix, linears[0]?.input ?? targets[0] ?? '',
    'an MLP writing the block\'s update: linear → activation → linear, or act(gate) ⊙ up → down (gate and up separate or one fused layer)',
    linears[0]?.node);
}

/** q, k and v as parts of the attention's linear layers: three layers, one fused and split, or one fused and split per head. */
function qkvParts(ix: GraphIndex, linears: readonly LinearMatch[], normOut: string): { parts: QkvPart[]; qkv: Parts['qkv'] } {
  if (linears.length === 3) return { parts: linears.map((lin) => ({ lin, start: lin.output, offset: 0 })), qkv: 'separate' };
  if (linears.length !== 1) {
    fail(ix, normOut, `the attention's q, k and v projections: three linear layers or one fused q|k|v layer (found ${linears.length} reading the norm)`);
  }
  const lin = linears[0]!;
  const direct = lastAxisParts(ix, lin.output, 3);
  if (direct?.length === 3) {
    // a Split without sizes cuts three equal parts
    const third = (linearWidth(ix, lin) ?? 0) / 3;
    return { parts: direct.map((p, i) => ({ lin, start: p.tensor, offset: p.width === undefined ? i * third : p.offset, width: p.width ?? third })), qkv: 'fused' };
  }
  // GPT-NeoX: view(b, s, h, 3·dh) [then heads first], and q, k, v are thirds of each head
  const reshape = ix.dataConsumers(lin.output).find((n) => isOp(n, 'Reshape') && in0(n) === lin.output);
  const perHead = reshape ? headsOf(ix, reshape, linearWidth(ix, lin)) : undefined;
  // the thirds are sliced after the heads-first Transpose, or before it (onnxruntime's optimizer
  // moves it after the k and v slices), or some of each
  const readers = reshape ? ix.dataConsumers(out0(reshape)) : [];
  const headsFirst = readers.find((n) => isOp(n, 'Transpose') && attrInts(n, 'perm')?.join(',') === '0,2,1,3');
  const unmoved = readers.filter((n) => n !== headsFirst);
  const pieces = [
    ...(reshape && unmoved.length ? lastAxisParts(ix, out0(reshape), 4, unmoved) ?? [undefined] : []),
    ...(headsFirst ? lastAxisParts(ix, out0(headsFirst), 4) ?? [undefined] : []),
  ];
  const split = pieces.every(Boolean) ? (pieces as { tensor: string; offset: number }[]).sort((a, b) => a.offset - b.offset) : undefined;
  if (!reshape || !perHead || split?.length !== 3 || perHead.dHead % 3 !== 0) {
    return fail(ix, lin.output, 'the fused q|k|v projection split into three on its last axis (Split or Slices), directly or per head after a Reshape to [b, s, h, 3·dh]', ix.dataConsumers(lin.output)[0]);
  }
  const dh = perHead.dHead / 3;
  const parts = split.map((p) => ({ lin, start: p.tensor, offset: p.offset, perHead: { heads: perHead.heads, dHead: dh, stride: perHead.dHead } }));
  return { parts, qkv: 'fused_per_head' };
}

export function detectDecoder(ix: GraphIndex, dtypes: ReadonlyMap<string, number>, overrides: readonly SiteOverride[] = []): Detection {
  const model: SectionFindings = { found: [], missing: [] };
  const mrec = new Recorder(ix, model);
  const layers: LayerFindings[] = [];
  const notes: string[] = [];
  const emb = mrec.attempt(['inputIds', 'embedding'], () => findEmbedding(ix, mrec, ANY_NORM));
  if (!emb) return { family: 'decoder', matched: false, model, layers, notes };

  const perLayer: LayerSites[] = [];
  const tally = new LayerTally(notes);
  const inputs = new AttentionInputs();
  const seen: Partial<Parts>[] = [];
  let layersOk = true;
  const walk = walkBlocks(ix, emb.r0, model, layers, ANY_NORM, (entry, r, l) => {
    const { rec, findings: L } = entry;
    const norms = normsReading(ix, r);
    const shape = rec.attempt([...BLOCK_SITES, ...ATTENTION_SITES, ...MLP_SITES], () => blockShape(ix, r, norms, entry.adds));
    if (!shape) return undefined;
    const facts: AttentionFacts = {};
    const layerParts: Partial<Parts> = { block: shape.block, ...(shape.block === 'parallel' ? { parallelNorms: norms.length } : {}) };
    seen.push(layerParts);
    // The MLP: in a sequential block, the layers reading its norm; in a parallel one, whichever
    // layers reading the block's norms write one of the two updates.
    const mlpLinears = shape.block === 'sequential'
      ? linearConsumers(ix, shape.mlpNorm!.output, 'a layer reading the MLP\'s norm')
      : norms.flatMap((n) => linearConsumers(ix, n.output, 'a layer reading the block\'s norm'));
    if (shape.block === 'sequential') {
      rec.found('attnNorm', shape.attnNorm!.output);
      rec.found('attnOut', shape.updates[0]);
      rec.found('residMid', shape.residMid);
      rec.found('mlpNorm', shape.mlpNorm!.output);
    }
    const attention = (attnNorm: NormMatch, attnOut: string, mlp?: Mlp): boolean => !!rec.attempt([...ATTENTION_SITES], () => {
      const attnLinears = linearConsumers(ix, attnNorm.output, 'a layer reading the attention\'s norm')
        .filter((x) => x.node !== mlp?.fc.node && x.node !== mlp?.up?.node);
      const { parts, qkv: kind } = qkvParts(ix, attnLinears, attnNorm.output);
      layerParts.qkv = kind;
      matchRegionAttention(ix, rec, attnNorm.output, parts, attnOut, facts);
      return true;
    });
    const mlp = rec.attempt(['mlpAct', 'mlpPre', 'mlpOut', 'residPost', ...BLOCK_SITES], () => findMlp(ix, rec, mlpLinears, shape.block === 'sequential' ? [shape.updates[1]] : shape.updates));
    if (!mlp) {
      // a sequential block's attention is matched still, so inspect shows all that breaks
      if (shape.block === 'sequential') attention(shape.attnNorm!, shape.updates[0]);
      else rec.missing([...ATTENTION_SITES], new PatternBreak(undefined, r, 'the MLP found first, to tell the attention\'s layers from it'));
      return undefined;
    }
    const attnOut = shape.updates[0] === mlp.out ? shape.updates[1] : shape.updates[0];
    // a parallel block's MLP reads one of its norms; the attention the other, or the same (GPT-J)
    const mlpNorm = shape.mlpNorm ?? norms.find((n) => n.output === mlp.fc.input)!;
    const attnNorm = shape.attnNorm ?? norms.find((n) => n !== mlpNorm) ?? mlpNorm;
    if (shape.block === 'parallel') {
      rec.found('attnNorm', attnNorm.output);
      rec.found('attnOut', attnOut);
      rec.found('residMid', shape.residMid);
      rec.found('mlpNorm', mlpNorm.output);
    }
    rec.found('mlpOut', mlp.out);
    rec.found('residPost', shape.residPost);
    rec.found('mlpPre', mlp.pre);
    rec.found('mlpAct', mlp.act);
    layerParts.mlp = mlp.kind;
    const qkv = attention(attnNorm, attnOut, mlp);
    layerParts.sandwich = !!(mlp.postNorm || facts.attnPostNorm);
    layerParts.positions = facts.rotary ? 'rotary' : emb.positionWeight ? 'learned' : 'none';
    tally.mlp(mlp);
    tally.attention(l, facts, true);
    tally.rotaryOf(l, facts);
    inputs.add(l, facts);
    if (!qkv || L.missing.length || !facts.qProj || !facts.kProj || !facts.vProj || !facts.attnProj) layersOk = false;
    else {
      const g = (s: string): string => rec.get(s)!;
      perLayer.push({
        layer: l, residIn: r, attnNorm: attnNorm.output, q: g('q'), k: g('k'), kLayout: facts.kLayout!, v: g('v'),
        scores: g('scores'), softmaxNode: facts.softmaxNode ?? '', probs: g('probs'), context: g('context'),
        contextMerged: g('contextMerged'), attnOut, residMid: shape.residMid, mlpNorm: mlpNorm.output,
        mlpPre: mlp.pre, mlpAct: mlp.act, mlpOut: mlp.out, residPost: shape.residPost,
        attnAddOut: shape.addOut(attnOut), mlpAddOut: shape.addOut(mlp.out),
        qProj: facts.qProj, kProj: facts.kProj, vProj: facts.vProj, attnProj: facts.attnProj,
        mlpFc: weightsOf(mlp.fc), ...(mlp.up ? { mlpUp: weightsOf(mlp.up) } : {}), mlpProj: weightsOf(mlp.proj),
        ...(facts.attnPostNorm || mlp.postNorm ? { postNorms: true as const } : {}),
      });
    }
    return shape.residPost;
  }, overrides);
  const complete = walk.complete && layersOk;
  const { finalNorm } = walk;
  const head = matchFinal(ix, mrec, model, walk, complete, ANY_NORM);
  const withPositions = inputs.embedding(mrec, emb);
  const attentionMask = findAttentionMask(ix, mrec, withPositions, inputs.pastNames());
  const dModel = modelWidth(ix, emb, tally, notes);

  const first = seen[0] ?? {};
  const parts: Parts = {
    norm: finalNorm?.op.startsWith('RMS') || finalNorm?.op === 'SimplifiedLayerNormalization' ? 'rms_norm' : 'layer_norm',
    block: first.block ?? 'sequential', ...(first.parallelNorms ? { parallelNorms: first.parallelNorms } : {}),
    sandwich: seen.some((p) => p.sandwich), positions: first.positions ?? 'none', qkv: first.qkv ?? 'separate', mlp: first.mlp ?? 'plain',
    embeddingScale: emb.scale !== undefined,
  };
  const family = familyOf(parts);
  describe(notes, parts, tally, finalNorm, inputs, emb.positionWeight !== undefined && !emb.plainPositions);
  return assembleDetection({
    family, dtypes, model, layers, notes, complete, ...(finalNorm ? { finalNorm } : {}), ...(head ? { head } : {}),
    perLayer, tally, dModel, emb: withPositions, ...(attentionMask ? { attentionMask } : {}), past: inputs.past,
    ...(inputs.rotaryPositions() ? { rotaryPositions: inputs.rotaryPositions()! } : {}), block: parts.block,
    positionWeight: emb.plainPositions === true,
  });
}

/** What inspect says of the parts found. */
function describe(notes: string[], parts: Parts, tally: LayerTally, finalNorm: NormMatch | undefined, inputs: AttentionInputs, computedPositions: boolean): void {
  const { heads, kvHeads, dHead, rotary } = tally;
  notes.push(`parts: ${parts.norm === 'rms_norm' ? 'RMSNorm' : 'LayerNorm'}, ${parts.block} blocks` +
    `${parts.block === 'parallel' ? ` (${parts.parallelNorms === 1 ? 'one norm shared by attention and MLP' : 'attention and MLP each with its own norm'})` : ''}, ` +
    `${{ separate: 'separate q, k, v projections', fused: 'one fused q|k|v projection', fused_per_head: 'one fused q|k|v projection split per head' }[parts.qkv]}, ` +
    `${{ plain: 'MLP linear → activation → linear', gated: 'gated MLP act(gate) ⊙ up', gated_fused: 'gated MLP with one fused gate|up projection' }[parts.mlp]}` +
    `${parts.embeddingScale ? ', embeddings scaled' : ''}${parts.sandwich ? ', updates normed before the residual add (sandwich norms)' : ''}`);
  if (parts.block === 'parallel') notes.push('parallel blocks: residMid is the block input (no stream between the sublayers)');
  if (finalNorm) notes.push(`norms: ${finalNorm.op}${finalNorm.epsilon !== undefined ? `, ε = ${Number(finalNorm.epsilon.toPrecision(6))}` : ''}`);
  if (rotary) notes.push(`rotary position embedding on the first ${rotary.dims} of ${dHead ?? '?'} head dimensions of q and k (${rotary.style})`);
  if (computedPositions) notes.push('learned positions looked up at indices computed from the attention mask: rows run over whole prompts');
  if (heads !== undefined && kvHeads !== undefined && kvHeads < heads) {
    notes.push(`grouped-query attention: ${kvHeads} key/value heads for ${heads} query heads; k and v sites are after the repeat (per query head)`);
  }
  inputs.note(notes, `keys${rotary ? ' after the rotary embedding' : ''}, ${kvHeads ?? heads ?? '?'} key/value heads (before any repeat)`);
  if (parts.mlp !== 'plain') notes.push('gated MLP: mlpPre = mlpAct = act(gate) ⊙ up, the down projection\'s input');
}
