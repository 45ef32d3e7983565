// Head mappings (Dar et al. 2023): each head's OV circuit read in token space,
// M = S · W_V^h · W_O^h · Sᵀ, reduced to its largest entries as token → token pairs. M is
// |V|×|V| (about 10 GB per head for GPT-2), so a small generated graph computes it a chunk
// of rows at a time with a top-k per row, and this module keeps the running top pairs.
// The `token_frequency` normalisation first scans the vocabulary once for its per-token
// normalisers, which every head's graph then divides by.

import {
  buildHeadMappingGraph, buildTokenNormaliserGraph, HeadMappingNames, TokenNormaliserNames,
  type HeadMappingGraph, type TokenNormalisers, type VocabularySide,
} from '../onnx/head-mappings.js';
import * as ort from 'onnxruntime-node';
import { orThrow } from './errors.js';
import { createSession, type DecodedTensor, type SessionOptions } from './session.js';
import type { Tokenizer } from './tokenizer.js';
import type { ExampleId } from '../measure/schema.js';
import type { SourceModel } from '../onnx/source.js';

export interface MappingPair {
  readonly from: number;
  readonly to: number;
  readonly fromToken: string;
  readonly toToken: string;
  readonly score: number;
}

export interface HeadMapping {
  readonly layer: number;
  readonly head: number;
  /** The head's top entries of M, by score (ties: lower row, then lower column). */
  readonly pairs: readonly MappingPair[];
  /** Facts one of whose subject tokens maps to the fact's prediction among these pairs, in the order of the facts given. */
  readonly subjectAttributeFacts: readonly ExampleId[];
}

/** A fact's side of the flag: its subject tokens (last or all, per the choice) and its prediction. */
export interface FactPair {
  readonly id: ExampleId;
  readonly subjectTokens: readonly number[];
  readonly target: number;
}

export interface HeadMappingOptions {
  readonly layers: readonly number[];
  readonly heads: number;
  readonly top: number;
  readonly side: VocabularySide;
  /** The `head_mapping_normalisation` choice. */
  readonly normalisation: 'none' | 'token_frequency';
  /** Rows and columns ≥ this are not tokens (GPT-J's padded embedding). */
  readonly vocabLimit: number;
  /** Rows of M (and of S, for the normalisers) per forward pass. */
  readonly chunk?: number;
  readonly session?: SessionOptions;
}

/** A bounded min-heap of the best `size` entries: (score, row, col), larger score first, ties to lower row/col. */
class TopPairs {
  private readonly items: { score: number; row: number; col: number }[] = [];
  constructor(private readonly size: number) {}
  private better(a: { score: number; row: number; col: number }, b: { score: number; row: number; col: number }): boolean {
    return a.score !== b.score ? a.score > b.score : a.row !== b.row ? a.row < b.row : a.col < b.col;
  }
  push(score: number, row: number, col: number): void {
    const h = this.items;
    const x = { score, row, col };
    if (h.length < this.size) {
      h.push(x);
      let i = h.length - 1;
      while (i > 0) { const p = (i - 1) >> 1; if (!this.better(h[p]!, h[i]!)) break; [h[p], h[i]] = [h[i]!, h[p]!]; i = p; }
      return;
    }
    if (!this.better(x, h[0]!)) return;
    h[0] = x;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let w = i;
      if (l < h.length && this.better(h[w]!, h[l]!)) w = l;
      if (r < h.length && this.better(h[w]!, h[r]!)) w = r;
      if (w === i) break;
      [h[w], h[i]] = [h[i]!, h[w]!];
      i = w;
    }
  }
  sorted(): { score: number; row: number; col: number }[] {
    return [...this.items].sort((a, b) => (this.better(a, b) ? -1 : 1));
  }
}

/** Runs `graph` on every chunk of its rows, handing each run's outputs to `take` with the chunk's first row. */
async function scanRows(
  graph: HeadMappingGraph, rows: number, chunk: number, session: SessionOptions | undefined,
  take: (outputs: Record<string, DecodedTensor>, start: number) => void,
): Promise<void> {
  const s = orThrow(await createSession(graph.bytes, { ...session, ...(graph.sessionConfig ? { sessionConfig: graph.sessionConfig } : {}) }));
  for (let start = 0; start < rows; start += chunk) {
    take(await s.run({ [HeadMappingNames.rowStart]: new ort.Tensor('int64', BigInt64Array.from([BigInt(start)]), []) }), start);
  }
  await s.release();
}

/** n_in and n_out of every token of S, over all heads of the model. */
async function tokenNormalisers(
  source: SourceModel, side: VocabularySide, chunk: number, session?: SessionOptions,
): Promise<TokenNormalisers> {
  const graph = buildTokenNormaliserGraph(source, { side, chunk });
  const input = new Float32Array(graph.vocab);
  const output = new Float32Array(graph.vocab);
  await scanRows(graph, graph.vocab, chunk, session, (r, start) => {
    input.set(r[TokenNormaliserNames.input]!.data as Float32Array, start);
    output.set(r[TokenNormaliserNames.output]!.data as Float32Array, start);
  });
  return { input, output };
}

export async function headMappings(
  source: SourceModel, opts: HeadMappingOptions, tokenizer: Tokenizer, facts: readonly FactPair[],
): Promise<HeadMapping[]> {
  const chunk = opts.chunk ?? 256;
  const wanted = new Map<string, ExampleId[]>();
  for (const f of facts) for (const s of f.subjectTokens) {
    const key = `${s}>${f.target}`;
    wanted.set(key, [...(wanted.get(key) ?? []), f.id]);
  }
  const out: HeadMapping[] = [];
  const normalisers = opts.normalisation === 'token_frequency' ? await tokenNormalisers(source, opts.side, chunk, opts.session) : undefined;
  for (const layer of opts.layers) {
    for (let head = 0; head < opts.heads; head++) {
      const graph = buildHeadMappingGraph(source, {
        layer, head, side: opts.side, k: opts.top, chunk, vocabLimit: opts.vocabLimit, ...(normalisers ? { normalisers } : {}),
      });
      const top = new TopPairs(opts.top);
      const rows = Math.min(graph.vocab, opts.vocabLimit);
      await scanRows(graph, rows, chunk, opts.session, (r, start) => {
        const ids = r[HeadMappingNames.ids]!;
        const scores = r[HeadMappingNames.scores]!.data as Float32Array;
        const [n, k] = ids.dims as [number, number];
        for (let i = 0; i < n && start + i < rows; i++) {
          for (let j = 0; j < k; j++) top.push(scores[i * k + j]!, start + i, Number(ids.data[i * k + j]!));
        }
      });
      const pairs = top.sorted().map((p) => ({
        from: p.row, to: p.col, fromToken: tokenizer.decode(p.row), toToken: tokenizer.decode(p.col), score: p.score,
      }));
      const flagged = new Set<ExampleId>();
      for (const p of pairs) for (const id of wanted.get(`${p.from}>${p.to}`) ?? []) flagged.add(id);
      // in the facts' order, which `dissect merge` can restore from the shards' lists
      out.push({ layer, head, pairs, subjectAttributeFacts: facts.filter((f) => flagged.has(f.id)).map((f) => f.id) });
    }
  }
  return out;
}
