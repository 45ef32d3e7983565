// The one seeded generator of the project (sampling facts, bootstrap resamples), so that
// every random choice is reproducible across platforms and languages.

/**
 * mulberry32 (Tommy Ettinger, public domain): 32-bit state advanced by a Weyl increment
 * 0x6D2B79F5, output mixed by two xorshift-multiply rounds. Period 2^32, which is ample
 * for ≤ 10^7 draws per interval. Returns a function giving unsigned 32-bit integers.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** Floats in [0, 1) from mulberry32: each uint32 draw divided by 2^32. */
export function mulberry32Float(seed: number): () => number {
  const next = mulberry32(seed);
  return () => next() / 4294967296;
}
