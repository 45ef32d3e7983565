// Turns a plan row's symbolic knockout edges into the `dissect_knockout` slab of one
// batch row: bool [layers, heads_or_1, seq, seq], true = the edge query→key is blocked.

import type { KnockoutEdges } from '../plan/plan.js';
import { resolvePositions, type ExampleGeometry } from './positions.js';

export interface KnockoutMask {
  readonly layers: number;
  readonly heads: number; // 1 = the same mask for every head
  readonly seq: number;
  readonly data: Uint8Array; // [layers, heads, seq, seq]
  /** Query rows (per layer and head slot) whose every causal key is blocked: they become uniform. */
  readonly fullyBlockedRows: number;
}

export function buildKnockoutMask(
  edges: readonly KnockoutEdges[], ex: ExampleGeometry, layers: number, heads: number, seq: number,
): KnockoutMask {
  const data = new Uint8Array(layers * heads * seq * seq);
  for (const edge of edges) {
    const queries = resolvePositions(edge.target, ex);
    const keys = resolvePositions(edge.source, ex);
    const headSlots = edge.heads === 'all' ? range(heads) : edge.heads;
    for (const layer of edge.layers) {
      for (const head of headSlots) {
        const base = (layer * heads + head) * seq * seq;
        for (const q of queries) {
          // Blocked edges are intersected with the causal mask: a key after the query
          // is already invisible, and blocking it would let it into a uniform row.
          for (const k of keys) if (k <= q) data[base + q * seq + k] = 1;
        }
      }
    }
  }
  return { layers, heads, seq, data, fullyBlockedRows: countFullyBlocked(data, layers * heads, seq, ex.n) };
}

function countFullyBlocked(data: Uint8Array, slabs: number, seq: number, n: number): number {
  let count = 0;
  for (let s = 0; s < slabs; s++) {
    for (let q = 0; q < n; q++) {
      const row = s * seq * seq + q * seq;
      let all = true;
      for (let k = 0; k <= q && all; k++) all = data[row + k] === 1;
      if (all) count++;
    }
  }
  return count;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
