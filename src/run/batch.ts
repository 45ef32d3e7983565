// Batch rows → the feeds of a compiled variant, one typed array per input, each input filled
// by the rule its manifest entry names (FILLERS; the compiler describes every input once, in
// src/onnx/inputs.ts and the passes). Rows are padded on the RIGHT to the longest row with
// PAD_ID and attention_mask 0: the TorchScript GPT-2 exports derive positions from the
// sequence length, so left padding would shift every position. Last-position rows feed the
// manifest's cache inputs with the keys / values their clean pass returned, as it returned
// them: one entry per prompt (dissect_past_row picks each row's), right-padded to that pass's
// longest prompt P, whose keys come first: attention_mask is then [batch, P + 1], 1 on each
// row's earlier positions, and the knockout input [batch, layers, heads|1, 1, P + 1], the token
// itself at key P. With the clean stream in the graph (src/onnx/passes/clean-stream.ts) the
// prompts' clean run is not fed but recomputed: the inputs of the graph's clean copy are filled
// by these same rules for the prompts the rows read, and a batch of whole prompts runs in the
// copy. Integer inputs are int64 (int32 is accepted too).

import * as ort from 'onnxruntime-node';
import type { FillRule } from '../onnx/inputs.js';
import { CLEAN_STREAM_PREFIX, OWN_TOP1_TARGET, type CacheSlot, type ManifestInput, type ManifestTensor, type VariantManifest } from '../onnx/variant.js';
import { InternalError } from './errors.js';
import { floatToHalfArray } from './half.js';

const PAD_ID = 0;

/** Packed bool [layers, heads, seq, seq], nonzero = blocked; seq ≥ the row's length (knockout-mask.ts's KnockoutMask fits). */
export interface BatchKnockout { readonly layers: number; readonly heads: number; readonly seq: number; readonly data: Uint8Array }

/**
 * What a chunk's last-position rows read of its clean run, `prompts` prompts of up to `seq`
 * tokens: the keys and values its clean pass returned (`tensors`: per manifest cache slot, per
 * layer keys then values, a [prompts, …, seq, …] tensor in the model's dtype; every batch feeds
 * these very tensors, neither copied per prompt nor rebuilt per pass), or, with the clean stream
 * in the graph, the prompts themselves (`prompts`: their clean rows).
 */
export type CleanCache =
  | { readonly kind: 'tensors'; readonly slots: readonly ort.Tensor[]; readonly prompts: number; readonly seq: number }
  | { readonly kind: 'prompts'; readonly rows: readonly BatchRow[]; readonly prompts: number; readonly seq: number };
export type TensorCache = Extract<CleanCache, { kind: 'tensors' }>;

/**
 * A last-position row: `ids` is the prompt's last token alone, at `position` (the number of
 * tokens before it); its past is prompt `prompt` of `cache`, whose first `position` entries it
 * reads (the rest is masked); the row's `knockout` is [layers, heads, 1, position + 1], key
 * `position` being the token itself.
 */
export interface PastOfRow { readonly position: number; readonly cache: CleanCache; readonly prompt: number }

export interface BatchRow {
  readonly ids: readonly number[];
  readonly lastIndex: number;
  /** The token whose probability and rank are read, or OWN_TOP1_TARGET: the row's own top-1. */
  readonly target: number;
  readonly knockout?: BatchKnockout;
  /** Sublayer gates [layers, n] per sublayer (1 keeps, 0 cancels); absent = all 1. */
  readonly gates?: { readonly attention?: Float32Array; readonly mlp?: Float32Array };
  /** Replace the input of block `layer` at the masked positions by `values` [n, d]. */
  readonly patch?: { readonly layer: number; readonly mask: Uint8Array; readonly values: Float32Array };
  /** Token positions whose sites are projected to the vocabulary (padded with 0 to the batch's longest list). */
  readonly projPositions?: readonly number[];
  /** Keys removed from the local recomputation of attention (`without`), [n]. */
  readonly recomputeRemove?: Uint8Array;
  /** Weights of the subject's mean token embedding, [n] (1/|subject| on the subject); absent = zeros. */
  readonly subjectWeights?: Float32Array;
  /** Present for a last-position row (then every row of the batch is one). */
  readonly past?: PastOfRow;
  /**
   * Begin at block `layer` (> 0) from the clean run's hidden state entering it, [ids.length, d];
   * absent = block 0. Every row of a batch starts at the same block.
   */
  readonly start?: StartOfRow;
}

/** `hidden`: absent with the clean stream in the graph, which reads it there. */
export interface StartOfRow { readonly layer: number; readonly hidden?: Float32Array }

export type FeedManifest = Pick<VariantManifest, 'inputs' | 'layers' | 'heads' | 'vocab'> & Partial<Pick<VariantManifest, 'dModel' | 'cache' | 'cleanStream'>>;

/** An integer input buffer: int64 (the usual) or int32. */
interface IntBuffer { readonly tensor: ort.Tensor; set(i: number, v: number): void; fill(v: number, from: number, to: number): void }

function intBuffer(t: ManifestTensor, dims: number[]): IntBuffer {
  const size = dims.reduce((a, b) => a * b, 1);
  if (t.dtype === 'int64') {
    const a = new BigInt64Array(size);
    return { tensor: new ort.Tensor('int64', a, dims), set: (i, v) => { a[i] = BigInt(v); }, fill: (v, f, e) => { a.fill(BigInt(v), f, e); } };
  }
  if (t.dtype === 'int32') {
    const a = new Int32Array(size);
    return { tensor: new ort.Tensor('int32', a, dims), set: (i, v) => { a[i] = v; }, fill: (v, f, e) => { a.fill(v, f, e); } };
  }
  throw new InternalError(`manifest input ${t.name} is ${t.dtype}; the runner feeds it as int64 or int32`);
}

function emptyTensor(t: ManifestTensor, dims: number[]): ort.Tensor {
  switch (t.dtype) {
    case 'float32': return new ort.Tensor('float32', new Float32Array(0), dims);
    case 'float16': return new ort.Tensor('float16', new Uint16Array(0), dims);
    case 'float64': return new ort.Tensor('float64', new Float64Array(0), dims);
    case 'int64': return new ort.Tensor('int64', new BigInt64Array(0), dims);
    case 'int32': return new ort.Tensor('int32', new Int32Array(0), dims);
    case 'bool': return new ort.Tensor('bool', new Uint8Array(0), dims);
    default: throw new InternalError(`manifest input ${t.name}: onnxruntime-node cannot feed ${t.dtype}`);
  }
}

/** What every filler of a batch reads besides its input. */
interface FeedContext {
  readonly manifest: FeedManifest;
  readonly rows: readonly BatchRow[];
  /** The longest row's tokens. */
  readonly S: number;
  /** Per row, the positions before its tokens (a last-position row's past; 0 for a whole prompt). */
  readonly before: readonly number[];
  /** The batch's longest past: every row's keys are [past padded to it, tokens]. */
  readonly pastLength: number;
  /** Last-position rows (then every row of the batch is one). */
  readonly decoding: boolean;
  /** The keys and values the batch feeds (last-position rows): the clean cache's prompts `prompts`. */
  readonly past?: { readonly cache: CleanCache; readonly prompts: readonly number[] };
  /** Per row, its prompt's entry of the fed past (0 for a whole prompt). */
  readonly pastOfRow: readonly number[];
}

type Filler = (input: ManifestInput, c: FeedContext) => ort.Tensor;

/** One filler per fill rule (the compiler's descriptors name the rule of each input; src/onnx/inputs.ts). */
const FILLERS: { readonly [R in FillRule]: Filler } = {
  token_ids: (input, { manifest, rows, S }) => {
    const a = intBuffer(input, [rows.length, S]); // zero-filled = PAD_ID
    rows.forEach((r, b) => {
      const base = b * S;
      for (let i = 0; i < r.ids.length; i++) {
        const id = r.ids[i]!;
        if (!Number.isInteger(id) || id < 0 || id >= manifest.vocab) {
          throw new InternalError(`buildFeeds: row ${b}: token id ${id} outside the vocabulary (${manifest.vocab})`);
        }
        a.set(base + i, id);
      }
      if (PAD_ID !== 0) a.fill(PAD_ID, base + r.ids.length, base + S);
    });
    return a.tensor;
  },
  attention_mask: (input, { rows, S, before, pastLength }) => {
    const K = pastLength + S;
    const a = intBuffer(input, [rows.length, K]);
    rows.forEach((r, b) => {
      a.fill(1, b * K, b * K + before[b]!);
      a.fill(1, b * K + pastLength, b * K + pastLength + r.ids.length);
    });
    return a.tensor;
  },
  positions: (input, { rows, S, before }) => {
    // [1, seq]: one row of positions for the whole batch (rows then share their past length)
    const rowsFed = input.shape[0] === 1 ? 1 : rows.length;
    if (rowsFed === 1 && before.some((p) => p !== before[0])) {
      throw new InternalError(`buildFeeds: ${input.name} is shared by the batch, but its rows start at ${[...new Set(before)].join(', ')}`);
    }
    const a = intBuffer(input, [rowsFed, S]);
    for (let b = 0; b < rowsFed; b++) for (let i = 0; i < S; i++) a.set(b * S + i, before[b]! + i);
    return a.tensor;
  },
  past: (input, { manifest, rows, S, past }) => {
    const cached = cacheSlots(manifest);
    const i = cached.findIndex((slot) => slot.input === input.name);
    if (i < 0) return emptyTensor(input, input.plainRow.shape.map((d) => (d === 'batch' ? rows.length : d === 'seq' ? S : d)));
    if (!past) {
      // whole prompts: one empty past
      const dims = [1, ...cached[i]!.dims];
      dims[cached[i]!.seqAxis] = 0;
      return emptyTensor(input, dims);
    }
    if (past.cache.kind !== 'tensors') throw new InternalError(`buildFeeds: ${input.name} of a variant whose clean stream is in the graph`);
    return past.cache.slots[i]!;
  },
  past_row: (input, { pastOfRow }) => {
    const a = intBuffer(input, [pastOfRow.length]);
    pastOfRow.forEach((p, b) => a.set(b, p));
    return a.tensor;
  },
  past_length: (input, { before }) => {
    const a = intBuffer(input, [before.length]);
    before.forEach((p, b) => a.set(b, p));
    return a.tensor;
  },
  last_index: (input, { rows }) => {
    const a = intBuffer(input, [rows.length]);
    rows.forEach((r, b) => a.set(b, r.lastIndex));
    return a.tensor;
  },
  target: (input, { rows }) => {
    const a = intBuffer(input, [rows.length]);
    rows.forEach((r, b) => a.set(b, r.target));
    return a.tensor;
  },
  knockout: (input, c) => (c.decoding ? lastRowKnockoutFeed(input, c.manifest, c.rows, c.pastLength) : knockoutFeed(input, c.manifest, c.rows, c.S)),
  gate_attention: (_, c) => gateFeed(c.manifest, c.rows, c.S, 'attention'),
  gate_mlp: (_, c) => gateFeed(c.manifest, c.rows, c.S, 'mlp'),
  patch_layer: (input, { rows }) => {
    const a = intBuffer(input, [rows.length]);
    rows.forEach((r, b) => a.set(b, r.patch ? r.patch.layer : -1));
    return a.tensor;
  },
  patch_mask: (_, { rows, S }) => {
    const a = new Uint8Array(rows.length * S);
    rows.forEach((r, b) => { if (r.patch) a.set(r.patch.mask, b * S); });
    return new ort.Tensor('bool', a, [rows.length, S]);
  },
  patch_values: (input, c) => rowVectorsFeed(input, c.manifest, c.rows, c.S, 'patch values', (r) => r.patch?.values),
  proj_positions: (input, { rows, before }) => {
    // P = 0 when no row projects: onnxruntime runs every node whether fetched or not,
    // and empty positions make the projections free.
    const P = Math.max(0, ...rows.map((r) => r.projPositions?.length ?? 0));
    const a = intBuffer(input, [rows.length, P]);
    // positions count from the prompt's start; a last-position row's tokens start at its past
    rows.forEach((r, b) => r.projPositions?.forEach((pos, i) => a.set(b * P + i, pos - before[b]!)));
    return a.tensor;
  },
  recompute_remove: (_, { rows, S, before, pastLength }) => {
    // [batch, 0] when no row recomputes: the recomputation then costs nothing. Over keys:
    // a last-position row's mask covers its prompt, whose last key moves behind the padded past.
    const R = rows.some((r) => r.recomputeRemove) ? pastLength + S : 0;
    const a = new Uint8Array(rows.length * R);
    rows.forEach((r, b) => {
      if (!r.recomputeRemove) return;
      const n = before[b]! + r.ids.length;
      if (r.recomputeRemove.length !== n) throw new InternalError(`buildFeeds: row ${b}: recompute mask has ${r.recomputeRemove.length} entries for ${n} tokens`);
      a.set(r.recomputeRemove.subarray(0, before[b]!), b * R);
      a.set(r.recomputeRemove.subarray(before[b]!), b * R + pastLength);
    });
    return new ort.Tensor('bool', a, [rows.length, R]);
  },
  start_layer: (input, { rows }) => {
    const a = intBuffer(input, [1]);
    a.set(0, startLayer(rows));
    return a.tensor;
  },
  start_hidden: (input, c) => rowVectorsFeed(input, c.manifest, c.rows, startLayer(c.rows) ? c.S : 0, 'start hidden state', (r) => {
    if (r.start && !r.start.hidden) throw new InternalError('buildFeeds: a row starting above block 0 without its hidden state');
    return r.start?.hidden;
  }),
  subject_weights: (_, { rows, S }) => {
    const a = new Float32Array(rows.length * S);
    rows.forEach((r, b) => {
      if (!r.subjectWeights) return;
      if (r.subjectWeights.length !== r.ids.length) throw new InternalError(`buildFeeds: row ${b}: subject weights have ${r.subjectWeights.length} entries for ${r.ids.length} tokens`);
      a.set(r.subjectWeights, b * S);
    });
    return new ort.Tensor('float32', a, [rows.length, S]);
  },
};

/** The feeds of `rows`: each manifest input filled by its rule. */
export function buildFeeds(manifest: FeedManifest, rows: readonly BatchRow[]): Record<string, ort.Tensor> {
  return manifest.cleanStream ? cleanStreamFeeds(manifest, rows) : plainFeeds(manifest, rows);
}

/**
 * The clean stream in the graph: last-position rows fill the rows' part, the prompts they read
 * the clean copy's inputs; whole prompts run in the copy, and the rows' part one placeholder
 * token against its first prompt.
 */
function cleanStreamFeeds(manifest: FeedManifest, rows: readonly BatchRow[]): Record<string, ort.Tensor> {
  const own = (clean: boolean): FeedManifest => ({
    ...manifest, cleanStream: undefined,
    inputs: manifest.inputs.filter((i) => i.name.startsWith(CLEAN_STREAM_PREFIX) === clean)
      .map((i) => (clean ? { ...i, name: i.name.slice(CLEAN_STREAM_PREFIX.length) } : i)),
  });
  let prompts: readonly BatchRow[];
  let rowFeeds: Record<string, ort.Tensor>;
  if (rows[0]?.past) {
    const past = pastOf(rows);
    const { cache } = past;
    if (cache.kind !== 'prompts') throw new InternalError('buildFeeds: a cache of tensors for a variant whose clean stream is in the graph');
    prompts = past.prompts.map((p) => cache.rows[p]!);
    rowFeeds = plainFeeds(own(false), rows, { past, length: longest(prompts) });
  } else {
    prompts = rows;
    const cache: CleanCache = { kind: 'prompts', rows, prompts: rows.length, seq: longest(rows) };
    const placeholder: BatchRow = { ids: [PAD_ID], lastIndex: 0, target: 0, past: { position: 0, cache, prompt: 0 } };
    rowFeeds = plainFeeds(own(false), [placeholder], { past: { cache, prompts: [0] }, length: cache.seq });
  }
  const cleanFeeds = plainFeeds(own(true), prompts);
  return { ...rowFeeds, ...Object.fromEntries(Object.entries(cleanFeeds).map(([name, t]) => [CLEAN_STREAM_PREFIX + name, t])) };
}

const longest = (rows: readonly BatchRow[]): number => Math.max(...rows.map((r) => r.ids.length));

/** `rows` fed to a variant that takes them alone; `clean`: with the clean stream in the graph, the prompts its last-position rows read and their keys' length. */
function plainFeeds(manifest: FeedManifest, rows: readonly BatchRow[], clean?: { readonly past: NonNullable<FeedContext['past']>; readonly length: number }): Record<string, ort.Tensor> {
  if (rows.length === 0) throw new InternalError('buildFeeds: empty batch');
  let S = 0;
  rows.forEach((r, b) => {
    const n = r.ids.length;
    if (n === 0) throw new InternalError(`buildFeeds: row ${b} has no tokens`);
    if (!Number.isInteger(r.lastIndex) || r.lastIndex < 0 || r.lastIndex >= n) {
      throw new InternalError(`buildFeeds: row ${b}: lastIndex ${r.lastIndex} outside its ${n} tokens`);
    }
    if (!Number.isInteger(r.target) || (r.target < 0 && r.target !== OWN_TOP1_TARGET) || r.target >= manifest.vocab) {
      throw new InternalError(`buildFeeds: row ${b}: target ${r.target} outside the vocabulary (${manifest.vocab})`);
    }
    if (n > S) S = n;
  });
  const decoding = rows[0]!.past !== undefined;
  if (rows.some((r) => (r.past !== undefined) !== decoding)) throw new InternalError('buildFeeds: last-position rows and whole prompts in one batch');
  if (decoding && !manifest.cache) throw new InternalError('buildFeeds: last-position rows for a variant without a cache');
  const before = rows.map((r) => r.past?.position ?? 0);
  const past = decoding ? clean?.past ?? pastOf(rows) : undefined;
  const pastOfRow = rows.map((r) => (past ? past.prompts.indexOf(r.past!.prompt) : 0));
  const pastLength = clean?.length ?? past?.cache.seq ?? 0;
  const context: FeedContext = { manifest, rows, S, before, pastLength, decoding, ...(past ? { past } : {}), pastOfRow };
  return Object.fromEntries(manifest.inputs.map((input) => {
    const filler = FILLERS[input.rule] as Filler | undefined;
    if (!filler) throw new InternalError(`manifest input ${input.name} has fill rule '${String(input.rule)}', unknown to the runner`);
    return [input.name, filler(input, context)];
  }));
}

/** The block every row of the batch starts at. */
function startLayer(rows: readonly BatchRow[]): number {
  const layer = rows[0]!.start?.layer ?? 0;
  if (rows.some((r) => (r.start?.layer ?? 0) !== layer)) throw new InternalError('buildFeeds: rows starting at different blocks in one batch');
  return layer;
}

/**
 * One [n, d] array per row (`pick`; absent: zeros) as a [batch, S, d] input: the rows' start
 * hidden states (S = 0 when the batch starts at block 0: nothing is read) or patch values.
 */
function rowVectorsFeed(
  input: ManifestTensor, manifest: FeedManifest, rows: readonly BatchRow[], S: number, what: string, pick: (r: BatchRow) => Float32Array | undefined,
): ort.Tensor {
  const d = widthOf(input, manifest);
  const values = new Float32Array(rows.length * S * d);
  rows.forEach((r, b) => {
    const v = pick(r);
    if (!v) return;
    if (v.length !== r.ids.length * d) throw new InternalError(`buildFeeds: row ${b}: ${what} is not [${r.ids.length}, ${d}]`);
    values.set(v, b * S * d);
  });
  return modelFloats(input, values, [rows.length, S, d]);
}

/** The model width of a [batch, seq, d] input. */
function widthOf(input: ManifestTensor, manifest: FeedManifest): number {
  const d = typeof input.shape[2] === 'number' ? input.shape[2] : manifest.dModel;
  if (d === undefined) throw new InternalError(`manifest input ${input.name}: model width unknown`);
  return d;
}

/** float32 values as the input's dtype (the model's: float32 or float16). */
function modelFloats(input: ManifestTensor, values: Float32Array, dims: readonly number[]): ort.Tensor {
  if (input.dtype === 'float32') return new ort.Tensor('float32', values, dims);
  if (input.dtype === 'float16') return new ort.Tensor('float16', floatToHalfArray(values), dims);
  throw new InternalError(`manifest input ${input.name} is ${input.dtype}; the runner feeds activations as float32 or float16`);
}

function gateFeed(manifest: FeedManifest, rows: readonly BatchRow[], S: number, sublayer: 'attention' | 'mlp'): ort.Tensor {
  const L = manifest.layers;
  const a = new Float32Array(rows.length * L * S).fill(1);
  rows.forEach((r, b) => {
    const g = r.gates?.[sublayer];
    if (!g) return;
    const n = r.ids.length;
    if (g.length !== L * n) throw new InternalError(`buildFeeds: row ${b}: ${sublayer} gates have ${g.length} entries, expected ${L}·${n}`);
    for (let l = 0; l < L; l++) a.set(g.subarray(l * n, (l + 1) * n), (b * L + l) * S);
  });
  return new ort.Tensor('float32', a, [rows.length, L, S]);
}

/** The manifest's cache slots in feed order: per layer, keys then values. */
const cacheSlots = (manifest: FeedManifest): CacheSlot[] => (manifest.cache ?? []).flatMap((c) => [c.key, c.value]);

type Outputs = Readonly<Record<string, { readonly dims: readonly number[]; readonly data: unknown }>>;

/**
 * The cache of a chunk's clean passes (`parts`, in order; the session decodes float16 outputs to
 * float32), in the model's dtype: one pass's float32 outputs are kept as they are; several
 * passes' are joined on the batch axis, each right-padded to the longest prompt.
 */
export function cleanCache(manifest: FeedManifest, parts: readonly Outputs[]): TensorCache {
  const slots = cacheSlots(manifest);
  if (!slots.length || !parts.length) throw new InternalError('a clean cache for a variant without one, or of no pass');
  const tensors = slots.map((slot) => parts.map((outputs) => {
    const t = outputs[slot.output];
    if (!(t?.data instanceof Float32Array) || t.dims.length !== slot.dims.length + 1) {
      throw new InternalError(`cache output ${slot.output} must arrive as [batch, ${slot.dims.join(', ')}] decoded to float32`);
    }
    return { dims: t.dims, data: t.data };
  }));
  const prompts = tensors[0]!.reduce((sum, t) => sum + t.dims[0]!, 0);
  const seq = Math.max(...tensors[0]!.map((t) => t.dims[slots[0]!.seqAxis]!));
  return {
    kind: 'tensors', prompts, seq,
    slots: slots.map((slot, i) => {
      const input = manifest.inputs.find((m) => m.name === slot.input)!;
      const own = tensors[i]!;
      if (own.some((t, k) => t.dims[0] !== tensors[0]![k]!.dims[0] || t.dims[slot.seqAxis] !== tensors[0]![k]!.dims[slots[0]!.seqAxis])) {
        throw new InternalError(`cache output ${slot.output} differs in prompts or positions from ${slots[0]!.output}`);
      }
      if (own.length === 1) return modelFloats(input, own[0]!.data, own[0]!.dims);
      const dims = [prompts, ...own[0]!.dims.slice(1)];
      dims[slot.seqAxis] = seq;
      const outer = dims.slice(1, slot.seqAxis).reduce((a, b) => a * b, 1);
      const inner = dims.slice(slot.seqAxis + 1).reduce((a, b) => a * b, 1);
      const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
      let at = 0;
      for (const t of own) {
        const len = t.dims[slot.seqAxis]!;
        for (let b = 0; b < t.dims[0]!; b++, at++) {
          for (let o = 0; o < outer; o++) {
            const from = (b * outer + o) * len * inner;
            data.set(t.data.subarray(from, from + len * inner), (at * outer + o) * seq * inner);
          }
        }
      }
      return modelFloats(input, data, dims);
    }),
  };
}

/** The cache and prompts a batch of last-position rows feeds: every row reads one clean pass's cache. */
function pastOf(rows: readonly BatchRow[]): NonNullable<FeedContext['past']> {
  const cache = rows[0]!.past!.cache;
  rows.forEach((r, b) => {
    if (r.past!.cache !== cache) throw new InternalError('buildFeeds: last-position rows of two clean passes in one batch');
    if (!Number.isInteger(r.past!.prompt) || r.past!.prompt < 0 || r.past!.prompt >= cache.prompts || r.past!.position >= cache.seq) {
      throw new InternalError(`buildFeeds: row ${b}: past of prompt ${r.past!.prompt} at ${r.past!.position}, the cache holds ${cache.prompts} prompts of ${cache.seq}`);
    }
  });
  // keys and values: the cache as it is, every prompt (no copy; on the CPU a feed costs nothing);
  // in the graph: the prompts read, the copy runs those alone
  const prompts = cache.kind === 'tensors' ? Array.from({ length: cache.prompts }, (_, i) => i) : [...new Set(rows.map((r) => r.past!.prompt))].sort((a, b) => a - b);
  return { cache, prompts };
}

/** Last-position rows: each row's [layers, heads, 1, position + 1], key `position` (the token itself) moved to P. */
function lastRowKnockoutFeed(input: ManifestTensor, manifest: FeedManifest, rows: readonly BatchRow[], P: number): ort.Tensor {
  if (input.shape.length !== 5) throw new InternalError(`manifest input ${input.name} must be [batch, layers, heads|1, seq, kv]`);
  const L = manifest.layers;
  const H = rows.find((r) => r.knockout)?.knockout?.heads ?? 1;
  const K = P + 1;
  const a = new Uint8Array(rows.length * L * H * K);
  rows.forEach((r, b) => {
    const k = r.knockout;
    if (!k) return;
    const n = r.past!.position + 1;
    if (k.layers !== L || k.heads !== H || k.seq !== 1 || k.data.length !== L * H * n) {
      throw new InternalError(`buildFeeds: row ${b}: a last-position knockout must be [${L}, ${H}, 1, ${n}]`);
    }
    for (let s = 0; s < L * H; s++) {
      const dst = (b * L * H + s) * K;
      a.set(k.data.subarray(s * n, s * n + n - 1), dst);
      a[dst + P] = k.data[s * n + n - 1]!;
    }
  });
  return new ort.Tensor('bool', a, [rows.length, L, H, 1, K]);
}

function knockoutFeed(input: ManifestTensor, manifest: FeedManifest, rows: readonly BatchRow[], S: number): ort.Tensor {
  if (input.dtype !== 'bool' || input.shape.length !== 5) {
    throw new InternalError(`manifest input ${input.name} must be bool [batch, layers, heads|1, seq, seq], is ${input.dtype} ${JSON.stringify(input.shape)}`);
  }
  const B = rows.length;
  const ld = input.shape[1]!;
  const L = typeof ld === 'number' ? ld : manifest.layers;
  const hd = input.shape[2]!;
  const given = rows.find((r) => r.knockout)?.knockout?.heads;
  const H = typeof hd === 'number' ? hd : /^heads$/.test(hd) ? manifest.heads : given ?? 1;
  const slab = S * S;
  const rowSize = L * H * slab;
  const a = new Uint8Array(B * rowSize);
  rows.forEach((r, b) => {
    const k = r.knockout;
    if (!k) return;
    if (k.layers !== L || k.heads !== H) {
      throw new InternalError(`buildFeeds: row ${b}: knockout is [${k.layers} layers, ${k.heads} heads], the variant takes [${L}, ${H}]`);
    }
    const base = b * rowSize;
    if (k.data.length !== L * H * k.seq * k.seq) {
      throw new InternalError(`buildFeeds: row ${b}: packed knockout has ${k.data.length} entries, expected ${L}·${H}·${k.seq}²`);
    }
    if (k.seq < r.ids.length) throw new InternalError(`buildFeeds: row ${b}: knockout covers ${k.seq} of its ${r.ids.length} tokens`);
    const m = Math.min(k.seq, S);
    for (let s = 0; s < L * H; s++) {
      const src = s * k.seq * k.seq;
      const dst = base + s * slab;
      if (k.seq === S) {
        a.set(k.data.subarray(src, src + slab), dst);
      } else {
        for (let q = 0; q < m; q++) a.set(k.data.subarray(src + q * k.seq, src + q * k.seq + m), dst + q * S);
      }
    }
  });
  return new ort.Tensor('bool', a, [B, L, H, S, S]);
}
