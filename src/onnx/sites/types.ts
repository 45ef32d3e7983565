// What site detection returns: the tensors of a transformer LM that experiments read or
// rewrite, by name, per layer. Shapes use batch (b), heads (h), query positions (s), key
// positions (kv = past + s), head size (dh), model width (d), MLP width (dm).
//
// Two block shapes exist. Sequential (GPT-2, Llama): r → LN → attention → (+ r = residMid) → LN →
// MLP → (+ residMid = residPost) (Llama: RMSNorm for LN). Parallel (GPT-J): one LN feeds both sublayers and
// residPost = residIn + attnOut + mlpOut; no residual stream exists between the two
// sublayers, so residMid is residIn (the stream the MLP's pre-norm reads, as in GPT-2) and
// mlpNorm is attnNorm. Passes must not assume residPost − residMid = mlpOut: they gate an
// update where attnAddOut / mlpAddOut's Add reads it.
//
// Llama (RMSNorm, gated SwiGLU MLP down(silu(gate(x)) ⊙ up(x)), rotary, grouped-query attention):
// mlpPre and mlpAct are both the product silu(gate(x)) ⊙ up(x), the down projection's input —
// the gated MLP has no single pre-activation whose activation is the down projection's input;
// mlpFc is the gate projection and mlpUp the up projection. q, k and v are per query head:
// with fewer key/value heads (ModelSites.kvHeads) k and v are read AFTER the repeat to the query
// heads, so every site keeps the shapes below with h = query heads.

/** A name for the combination of parts a graph is built from (sites/decoder.ts); `decoder` when no family has that combination. */
export type ArchitectureFamily = 'gpt2' | 'opt' | 'gptj' | 'gpt_neox' | 'llama' | 'gemma' | 'gemma2' | 'phi3' | 'decoder';

export interface LayerSites {
  readonly layer: number;
  /** Residual stream entering the block [b, s, d]. */
  readonly residIn: string;
  /** Output of the attention pre-norm [b, s, d]. */
  readonly attnNorm: string;
  /** Queries per head [b, h, s, dh] (rotary models: after the rotary embedding). */
  readonly q: string;
  /** Keys per head, past included: [b, h, kv, dh] ('bhsd') or transposed [b, h, dh, kv] ('bhds'); after any rotary embedding. */
  readonly k: string;
  readonly kLayout: 'bhsd' | 'bhds';
  /** Values per head, past included [b, h, kv, dh]. */
  readonly v: string;
  /** Pre-softmax attention scores, after scale and masks: the Softmax input [b, h, s, kv]. */
  readonly scores: string;
  /** Name of the Softmax node (for messages; the rewrite finds it as the consumer of `scores`). */
  readonly softmaxNode: string;
  /** Attention probabilities [b, h, s, kv]. */
  readonly probs: string;
  /** Per-head context probs·V [b, h, s, dh]. */
  readonly context: string;
  /** Heads merged, the input of the output projection [b, s, d]. */
  readonly contextMerged: string;
  /** Attention update added to the residual stream [b, s, d]. */
  readonly attnOut: string;
  /**
   * The residual stream the MLP's pre-norm reads [b, s, d]: after the attention add in a
   * sequential block; in a parallel block (GPT-J) there is none between the sublayers and
   * this is residIn (residPost = residIn + attnOut + mlpOut).
   */
  readonly residMid: string;
  /** Output of the MLP pre-norm [b, s, d] (parallel block: the shared norm, = attnNorm). */
  readonly mlpNorm: string;
  /** MLP pre-activations, the activation's input [b, s, dm] (Llama: the gated product, = mlpAct). */
  readonly mlpPre: string;
  /** MLP activations, the output projection's input [b, s, dm] (Llama: silu(gate) ⊙ up). */
  readonly mlpAct: string;
  /** MLP update added to the residual stream [b, s, d]. */
  readonly mlpOut: string;
  /** Residual stream after the block [b, s, d]. */
  readonly residPost: string;
  /**
   * Output of the Add that reads attnOut on its way into the residual stream: residMid
   * (sequential), the parallel sum attnOut + mlpOut, or residPost (parallel, x + attn + mlp
   * in another order). The attention gate scales attnOut where this Add reads it.
   */
  readonly attnAddOut: string;
  /** Output of the Add that reads mlpOut (sequential: residPost; parallel: see attnAddOut). */
  readonly mlpAddOut: string;
  /**
   * The q, k and v input projections: one fused q|k|v layer (offsets 0, d, 2d) or three layers
   * (offset 0). With grouped-query attention k and v have kvHeads · dh output units, and query
   * head h reads key/value head ⌊h / (heads / kvHeads)⌋.
   */
  readonly qProj: HeadProjection;
  readonly kProj: HeadProjection;
  readonly vProj: HeadProjection;
  /** The attention output projection (reads contextMerged, writes attnOut). */
  readonly attnProj: LinearWeights;
  /** The MLP input projection (writes mlpPre; Llama: the gate projection, whose silu multiplies mlpUp's output). */
  readonly mlpFc: LinearWeights;
  /** Gated MLP (Llama): the up projection; mlpPre = act(mlpFc · x) ⊙ (mlpUp · x). */
  readonly mlpUp?: LinearWeights;
  /** The MLP output projection (reads mlpAct, writes mlpOut). */
  readonly mlpProj: LinearWeights;
  /**
   * The attention or MLP update passes through its own norm before the residual add (Gemma 2):
   * attnOut / mlpOut are the normed updates, so a head's share of attnOut is not additive.
   */
  readonly postNorms?: true;
}

/** A linear layer's constant weight (and bias), as the graph holds them. */
export interface LinearWeights {
  readonly weight: string;
  readonly bias?: string;
  readonly op: 'Gemm' | 'MatMul';
  /** 'io': weight is [in, out] (MatMul, Gemm without transB; GPT-2's Conv1D); 'oi': [out, in] (Gemm transB). */
  readonly layout: 'io' | 'oi';
}

/**
 * q, k or v: output units [offset, offset + d) of a linear layer (a fused q|k|v layer: offsets 0, d, 2d);
 * with headStride, a fused layer split per head (GPT-NeoX): head h's units start at offset + h · headStride.
 */
export interface HeadProjection extends LinearWeights {
  readonly offset: number;
  readonly headStride?: number;
}

export const LAYER_SITE_NAMES = [
  'residIn', 'attnNorm', 'q', 'k', 'v', 'scores', 'probs', 'context', 'contextMerged', 'attnOut',
  'residMid', 'mlpNorm', 'mlpPre', 'mlpAct', 'mlpOut', 'residPost',
] as const;
export type LayerSiteName = (typeof LAYER_SITE_NAMES)[number];

/** How the language names a site: snake_case (`mlp_act` is mlpAct), as `site` statements and inspect's text write it. */
export function siteStatementName(site: string): string {
  return site.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** The site a language name denotes (the inverse of siteStatementName). */
export function siteOfStatementName(name: string): string {
  return name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
}

/**
 * A tensor the user names for a layer site (a `.dissect` `site` statement): detection records it
 * for the site, where it would have found another tensor or none, and matches on from it.
 */
export interface SiteOverride {
  readonly site: LayerSiteName;
  readonly layers: 'all' | readonly number[];
  /** `{layer}` stands for the layer number. */
  readonly tensor: string;
}

export interface KvCacheInput {
  readonly layer: number;
  /** Graph inputs holding past keys and values [b, kvHeads, past, dh] (grouped-query: the key/value heads), fed with past = 0. */
  readonly key: string;
  readonly value: string;
}

export interface ModelInputs {
  readonly inputIds: string;
  readonly attentionMask?: string;
  readonly positionIds?: string;
  readonly past: readonly KvCacheInput[];
}

export interface ModelSites {
  readonly family: ArchitectureFamily;
  readonly layers: number;
  readonly heads: number;
  readonly dHead: number;
  readonly dModel: number;
  readonly dMlp: number;
  readonly vocab: number;
  /** ONNX element type of the activations (scores, logits): 1 = float32, 10 = float16 ... */
  readonly dtype: number;
  readonly activation: string;
  /** Grouped-query attention (Llama): key/value heads, fewer than `heads` and dividing it; absent = heads. */
  readonly kvHeads?: number;
  /** Sequential (GPT-2, Llama: attention, then MLP) or parallel (GPT-J: both off one norm) blocks. */
  readonly block: 'sequential' | 'parallel';
  /** Rotary position embedding on q and k: on the first `dims` of each head; 'interleaved' rotates pairs (2i, 2i+1) (GPT-J), 'half' pairs (i, i + dims/2) (NeoX, Llama's rotate_half). */
  readonly rotary?: { readonly dims: number; readonly style: 'interleaved' | 'half' };
  readonly perLayer: readonly LayerSites[];
  /** The final norm (op: as NormMatch.op — a LayerNorm, or an RMSNorm for Llama). */
  readonly finalNorm: { readonly input: string; readonly output: string; readonly op: string };
  /** The input embedding: a Gather on `weight` [vocab, d] with the token ids. */
  readonly embedding: { readonly weight: string; readonly output: string; readonly positionWeight?: string };
  /** The LM head: logits = finalNorm.output · weight (+ bias). */
  readonly unembedding: {
    readonly weight: string;
    /** 'dV': weight is [d, vocab] (MatMul); 'Vd': [vocab, d] (Gemm transB). */
    readonly layout: 'dV' | 'Vd';
    readonly bias?: string;
    readonly op: 'MatMul' | 'Gemm';
    /** The logits are soft-capped, c · tanh(z / c) (Gemma 2): c. */
    readonly softcap?: number;
    /** The logits are multiplied by this constant before any soft-cap (Granite, Cohere). */
    readonly scale?: number;
  };
  /** The graph output holding the logits [b, s, vocab]. */
  readonly logits: string;
  readonly inputs: ModelInputs;
  /**
   * A plain rotary export's token positions [1 or b, s], computed in the graph from the sequence
   * length, that every layer looks its sin/cos up by in a constant table (GPT-J's embed_positions).
   */
  readonly rotaryPositions?: string;
  /** onnxruntime's fused ops expanded back into standard ops before matching, op → count. */
  readonly expandedFusedOps?: Readonly<Record<string, number>>;
}
