// The attributes rate (subject enrichment): how many of the top tokens of a projected
// hidden state are attributes of the subject. Matching follows the paper's code: decoded
// token strings are compared as they are (leading space kept); candidates are cleaned on
// strip().lower(), the attribute set case-sensitively on strip().

import { englishStopwords } from './stopwords.js';

export interface Cleaning {
  /** Strings shorter than this after trimming are dropped (3 drops len ≤ 2, as the paper); 0 = off. */
  readonly minLength: number;
  readonly stopwords: 'english' | 'none';
}

function dropped(trimmed: string, forStopwords: string, c: Cleaning): boolean {
  return trimmed.length < c.minLength || (c.stopwords === 'english' && englishStopwords.has(forStopwords));
}

/** A subject's attribute set from its decoded tokens: unique, cleaned (stopwords case-sensitive). */
export function attributeSet(decodedTokens: Iterable<string>, c: Cleaning): Set<string> {
  const out = new Set<string>();
  for (const tok of decodedTokens) {
    const t = tok.trim();
    if (!dropped(t, t, c)) out.add(tok);
  }
  return out;
}

export interface AttributesRate {
  /** 100 · |set(kept) ∩ attributes| / |kept|; null when no candidate survives cleaning. */
  readonly rate: number | null;
  /** The cleaned candidates that were scored, in rank order. */
  readonly kept: readonly string[];
}

/** Cleans the ranked candidates, keeps the first `keep`, and scores them against the set. */
export function attributesRate(rankedCandidates: readonly string[], attributes: ReadonlySet<string>, keep: number, c: Cleaning): AttributesRate {
  const kept: string[] = [];
  for (const tok of rankedCandidates) {
    if (kept.length === keep) break;
    const t = tok.trim();
    if (!dropped(t, t.toLowerCase(), c)) kept.push(tok);
  }
  if (kept.length === 0) return { rate: null, kept };
  // The paper's code intersects sets but divides by the list's length.
  let hits = 0;
  for (const tok of new Set(kept)) if (attributes.has(tok)) hits++;
  return { rate: (100 * hits) / kept.length, kept };
}
