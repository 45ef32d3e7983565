// What site detection returns: the tensors of a transformer LM that experiments read or
// rewrite, by name, per layer. Shapes use batch (b), heads (h), query positions (s), key
// positions (kv = past + s), head size (dh), model width (d), MLP width (dm).

export type ArchitectureFamily = 'gpt2';

export interface LayerSites {
  readonly layer: number;
  /** Residual stream entering the block [b, s, d]. */
  readonly residIn: string;
  /** Output of the attention pre-norm [b, s, d]. */
  readonly attnNorm: string;
  /** Queries per head [b, h, s, dh]. */
  readonly q: string;
  /** Keys per head, past included: [b, h, kv, dh] ('bhsd') or transposed [b, h, dh, kv] ('bhds'). */
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
  /** Residual stream after the attention add [b, s, d]. */
  readonly residMid: string;
  /** Output of the MLP pre-norm [b, s, d]. */
  readonly mlpNorm: string;
  /** MLP pre-activations, the activation's input [b, s, dm]. */
  readonly mlpPre: string;
  /** MLP activations, the output projection's input [b, s, dm]. */
  readonly mlpAct: string;
  /** MLP update added to the residual stream [b, s, d]. */
  readonly mlpOut: string;
  /** Residual stream after the block [b, s, d]. */
  readonly residPost: string;
  /** The fused q|k|v input projection (output [b, s, 3d]: q, k, v in that order). */
  readonly qkvProj: LinearWeights;
  /** The attention output projection (reads contextMerged, writes attnOut). */
  readonly attnProj: LinearWeights;
  /** The MLP input projection (writes mlpPre). */
  readonly mlpFc: LinearWeights;
  /** The MLP output projection (reads mlpAct, writes mlpOut). */
  readonly mlpProj: LinearWeights;
}

/** A linear layer's constant weight (and bias), as the graph holds them. */
export interface LinearWeights {
  readonly weight: string;
  readonly bias?: string;
  readonly op: 'Gemm' | 'MatMul';
  /** 'io': weight is [in, out] (MatMul, Gemm without transB; GPT-2's Conv1D); 'oi': [out, in] (Gemm transB). */
  readonly layout: 'io' | 'oi';
}

export const LAYER_SITE_NAMES = [
  'residIn', 'attnNorm', 'q', 'k', 'v', 'scores', 'probs', 'context', 'contextMerged', 'attnOut',
  'residMid', 'mlpNorm', 'mlpPre', 'mlpAct', 'mlpOut', 'residPost',
] as const;
export type LayerSiteName = (typeof LAYER_SITE_NAMES)[number];

export interface KvCacheInput {
  readonly layer: number;
  /** Graph inputs holding past keys and values [b, h, past, dh], fed with past = 0. */
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
  readonly perLayer: readonly LayerSites[];
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
  };
  /** The graph output holding the logits [b, s, vocab]. */
  readonly logits: string;
  readonly inputs: ModelInputs;
}
