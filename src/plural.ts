// One way to write a count with its noun, for every message and page dissect writes.

/** `3 layers`, `1 layer`; `many` for nouns whose plural is not noun + s (`batches`). */
export function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`;
}
