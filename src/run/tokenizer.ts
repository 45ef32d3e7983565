// Tokenizers from a Hugging Face `tokenizer.json`, through @huggingface/tokenizers (pure JS).
// That library gives ids and token strings but no character offsets, so they are derived
// here:
// - byte-level BPE (GPT-2, GPT-J): each token string maps back to UTF-8 bytes through the
//   byte-level alphabet; the bytes of the tokens, laid end to end, are the bytes of the text
//   (plus a prefix space when the pre-tokenizer adds one), which gives each token's byte
//   range and so its character range. A token that ends inside a multi-byte character
//   covers that whole character, so neighbouring offsets may overlap there.
// - anything else (word-level without a decoder, WordPiece, Metaspace, a byte-level
//   tokenizer behind a normalizer): each token's surface string is matched left to right in
//   the original text, skipping whitespace; an unknown-token is given the text up to the
//   next matched token (or the next whitespace).
// Offsets are [start, end) in UTF-16 code units of the original string (what String.indexOf
// and String.slice use); for ASCII text they are plain character positions.
// Special tokens are never added by `encode`: the BOS policy is applied by example.ts.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { RunUserError, runError, unreadable, type RunError } from './errors.js';

export interface Encoded {
  readonly ids: number[];
  /** [start, end) of each token in the original text, in UTF-16 code units. */
  readonly offsets: [number, number][];
  /** The vocabulary strings of the tokens (byte-level alphabet for GPT-2: "ĠMusic"). */
  readonly tokens: string[];
}

export type TokenizerKind = 'byte-level' | 'word-level' | 'other';

export interface Tokenizer {
  /** The tokenizer.json that was read. */
  readonly path: string;
  readonly kind: TokenizerKind;
  /** `<|endoftext|>` if the vocabulary has it, else tokenizer_config's bos_token, else its eos_token. */
  readonly bosId: number | undefined;
  /** Largest token id + 1 (added tokens included). */
  readonly vocabSize: number;
  /** Throws RunUserError (code 'tokenizer') only when offsets cannot be aligned with the text. */
  encode(text: string): Encoded;
  /** Whether the vocabulary has this id: a model may have more embedding rows than its tokenizer has ids (GPT-J). */
  has(id: number): boolean;
  /** The text of one token (" Music"); no clean-up of spaces before punctuation. */
  decode(id: number): string;
  /** The text of a token sequence, no clean-up. */
  decodeIds(ids: readonly number[]): string;
  /** The vocabulary string of a token ("ĠMusic"). */
  tokenString(id: number): string;
  /** The id of a vocabulary string, if any. */
  tokenId(token: string): number | undefined;
}

type Json = Record<string, unknown>;

function isObject(x: unknown): x is Json {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/**
 * Read a Hugging Face tokenizer.json (or a folder holding one). A tokenizer_config.json
 * beside it, if present, supplies bos/eos/unk token names.
 */
export function loadTokenizer(path: string): Tokenizer | RunError {
  let file = path;
  if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'tokenizer.json');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    return unreadable('tokenizer', 'the tokenizer', file, e, {
      hint: 'point the model declaration\'s tokenizer at a Hugging Face tokenizer.json (or the folder holding it)',
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return runError('tokenizer', `tokenizer file ${file} is not valid JSON: ${(e as Error).message}`, { file });
  }
  let config: Json = {};
  const configFile = join(dirname(file), 'tokenizer_config.json');
  if (existsSync(configFile)) {
    let configText: string;
    try {
      configText = readFileSync(configFile, 'utf8');
    } catch (e) {
      return unreadable('tokenizer', 'the tokenizer configuration', configFile, e);
    }
    try {
      const c: unknown = JSON.parse(configText);
      if (!isObject(c)) return runError('tokenizer', `${configFile} must hold a JSON object`, { file: configFile });
      config = c;
    } catch (e) {
      return runError('tokenizer', `${configFile} is not valid JSON: ${(e as Error).message}`, { file: configFile });
    }
  }
  return tokenizerFromJson(json, config, file);
}

/** Build a tokenizer from an already parsed tokenizer.json (and optional tokenizer_config.json). */
export function tokenizerFromJson(json: unknown, config: Json = {}, source = '<tokenizer.json>'): Tokenizer | RunError {
  const bad = (what: string): RunError =>
    runError('tokenizer', `${source} is not a Hugging Face tokenizer.json: ${what}`, {
      file: source, hint: 'save the tokenizer with `tokenizer.save("tokenizer.json")` (Hugging Face tokenizers) or `save_pretrained`',
    });
  if (!isObject(json)) return bad('expected a JSON object');
  const model = json['model'];
  if (!isObject(model)) return bad('missing "model" object');
  if (!isObject(model['vocab']) && !Array.isArray(model['vocab'])) return bad('missing "model.vocab"');
  if (json['added_tokens'] !== undefined && !Array.isArray(json['added_tokens'])) return bad('"added_tokens" must be an array');
  // The library wants every top-level key present; older files omit some.
  const full: Json = {
    normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, added_tokens: [], ...json,
  };
  const cfg: Json = { ...config };
  // A WordLevel model is built as the library's "legacy" model, which reads unk from the config.
  if (model['type'] === 'WordLevel' && cfg['unk_token'] === undefined && typeof model['unk_token'] === 'string') {
    cfg['unk_token'] = model['unk_token'];
  }
  let hf: HfTokenizer;
  try {
    hf = new HfTokenizer(full, cfg);
  } catch (e) {
    return bad((e as Error).message);
  }
  const tokenizer = new HfBackedTokenizer(hf, full, cfg, source);
  const unk = tokenizer.missingUnknownToken();
  if (unk !== undefined) {
    return runError('tokenizer', `${source} declares the unknown-token ${JSON.stringify(unk)} (unk_token), but its vocabulary has no such token`, {
      file: source, hint: 'add the token to the vocabulary, or remove unk_token from the tokenizer (and from tokenizer_config.json)',
    });
  }
  return tokenizer;
}

/**
 * Whether every id of the tokenizer has a row in the model's token embedding. Fewer ids than
 * rows is normal (GPT-J pads its 50,257 tokens to 50,400 rows); more would send ids the
 * model cannot look up.
 */
export function tokenizerMismatch(tokenizer: Tokenizer, model: { readonly path: string; readonly embeddingRows: number }): RunError | undefined {
  if (tokenizer.vocabSize <= model.embeddingRows) return undefined;
  const largest = tokenizer.vocabSize - 1;
  return runError('tokenizer',
    `the tokenizer ${tokenizer.path} has ids up to ${largest} (${JSON.stringify(tokenizer.tokenString(largest))}, ${tokenizer.vocabSize} ids), ` +
      `but the model ${model.path} has ${model.embeddingRows} token embedding rows (ids 0..${model.embeddingRows - 1})`,
    { file: tokenizer.path, hint: 'use the tokenizer the model was trained with (it may have fewer ids than the model has rows, never more)' });
}

/** GPT-2's byte ↔ unicode alphabet (bytes_to_unicode). */
const UNICODE_TO_BYTE: ReadonlyMap<string, number> = (() => {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) { bs.push(b); cs.push(256 + n); n++; }
  }
  const m = new Map<string, number>();
  bs.forEach((b, i) => m.set(String.fromCharCode(cs[i]!), b));
  return m;
})();

function hasComponent(component: unknown, type: string): boolean {
  if (!isObject(component)) return false;
  if (component['type'] === type) return true;
  for (const key of ['pretokenizers', 'decoders', 'normalizers', 'processors']) {
    const list = component[key];
    if (Array.isArray(list) && list.some((c) => hasComponent(c, type))) return true;
  }
  return false;
}

function findComponent(component: unknown, type: string): Json | undefined {
  if (!isObject(component)) return undefined;
  if (component['type'] === type) return component;
  for (const key of ['pretokenizers', 'decoders']) {
    const list = component[key];
    if (Array.isArray(list)) for (const c of list) { const f = findComponent(c, type); if (f) return f; }
  }
  return undefined;
}

function tokenName(x: unknown): string | undefined {
  if (typeof x === 'string') return x;
  if (isObject(x) && typeof x['content'] === 'string') return x['content'];
  return undefined;
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: false });

class HfBackedTokenizer implements Tokenizer {
  readonly kind: TokenizerKind;
  readonly bosId: number | undefined;
  readonly vocabSize: number;
  private readonly addedIds: ReadonlySet<number>;
  private readonly addPrefixSpace: boolean;
  private readonly unkId: number | undefined;
  private readonly unkToken: string | undefined;
  private readonly subwordPrefix: string;
  private readonly wordSuffix: string;
  private readonly metaspace: string | undefined;

  constructor(private readonly hf: HfTokenizer, json: Json, config: Json, readonly path: string) {
    const model = json['model'] as Json;
    const byteLevel = hasComponent(json['pre_tokenizer'], 'ByteLevel') || hasComponent(json['decoder'], 'ByteLevel');
    this.kind = byteLevel ? 'byte-level' : model['type'] === 'WordLevel' ? 'word-level' : 'other';
    const bl = findComponent(json['pre_tokenizer'], 'ByteLevel');
    this.addPrefixSpace = bl?.['add_prefix_space'] === true;
    const ms = findComponent(json['pre_tokenizer'], 'Metaspace') ?? findComponent(json['decoder'], 'Metaspace');
    this.metaspace = ms ? (typeof ms['replacement'] === 'string' ? ms['replacement'] : '\u2581') : undefined;
    this.subwordPrefix = typeof model['continuing_subword_prefix'] === 'string' ? model['continuing_subword_prefix'] : '';
    this.wordSuffix = typeof model['end_of_word_suffix'] === 'string' ? model['end_of_word_suffix'] : '';
    this.unkToken = tokenName(model['unk_token']) ?? tokenName(config['unk_token']);
    if (typeof model['unk_id'] === 'number') this.unkId = model['unk_id'];
    else this.unkId = this.unkToken !== undefined ? hf.token_to_id(this.unkToken) : undefined;

    const added = new Set<number>();
    for (const t of json['added_tokens'] as unknown[]) if (isObject(t) && typeof t['id'] === 'number') added.add(t['id']);
    this.addedIds = added;

    let maxId = -1;
    for (const id of hf.get_vocab(true).values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;

    const candidates = ['<|endoftext|>', tokenName(config['bos_token']), tokenName(config['eos_token'])];
    let bos: number | undefined;
    for (const c of candidates) {
      if (c === undefined) continue;
      bos = hf.token_to_id(c);
      if (bos !== undefined) break;
    }
    this.bosId = bos;
  }

  /**
   * The unknown-token declared (unk_token, or a Unigram model's unk_id) when the vocabulary lacks
   * it. A byte-level BPE encodes any text without one, so it never needs the token it declares.
   */
  missingUnknownToken(): string | undefined {
    if (this.kind === 'byte-level' || (this.unkToken === undefined && this.unkId === undefined)) return undefined;
    if (this.unkId !== undefined && this.hf.id_to_token(this.unkId) !== undefined) return undefined;
    return this.unkToken ?? `id ${this.unkId}`;
  }

  encode(text: string): Encoded {
    if (text.length === 0) return { ids: [], offsets: [], tokens: [] };
    const enc = this.hf.encode(text, { add_special_tokens: false });
    const ids: number[] = enc.ids.map(Number);
    const tokens = enc.tokens;
    // Without an unknown-token, a word outside the vocabulary comes back with no id.
    const lost = ids.findIndex((id) => !Number.isInteger(id));
    if (lost >= 0) {
      throw new RunUserError(runError('tokenizer', `${this.path} has no token for ${JSON.stringify(tokens[lost])} (in ${JSON.stringify(text)}) and no unknown-token to stand for it`, {
        file: this.path, hint: 'add an unk_token to the tokenizer, or leave such words out of the dataset',
      }));
    }
    const offsets = (this.kind === 'byte-level' ? this.byteOffsets(text, ids, tokens) : undefined)
      ?? this.matchOffsets(text, ids, tokens);
    return { ids, offsets, tokens };
  }

  decode(id: number): string {
    return this.decodeIds([id]);
  }

  decodeIds(ids: readonly number[]): string {
    if (ids.length === 0) return '';
    for (const id of ids) this.checkId(id);
    return this.hf.decode([...ids], { clean_up_tokenization_spaces: false });
  }

  tokenString(id: number): string {
    this.checkId(id);
    return this.hf.id_to_token(id) as string;
  }

  tokenId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  has(id: number): boolean {
    return Number.isInteger(id) && id >= 0 && id < this.vocabSize && this.hf.id_to_token(id) !== undefined;
  }

  private checkId(id: number): void {
    if (!this.has(id)) {
      throw new RangeError(`token id ${id} is not in the vocabulary of ${this.path} (size ${this.vocabSize})`);
    }
  }

  /** Token bytes through the byte-level alphabet; undefined if a token is not byte-level. */
  private tokenBytes(id: number, token: string): Uint8Array | undefined {
    if (this.addedIds.has(id)) return textEncoder.encode(token);
    const out = new Uint8Array(token.length);
    for (let i = 0; i < token.length; i++) {
      const b = UNICODE_TO_BYTE.get(token[i]!);
      if (b === undefined) return undefined;
      out[i] = b;
    }
    return out;
  }

  private byteOffsets(text: string, ids: number[], tokens: string[]): [number, number][] | undefined {
    const bytes = textEncoder.encode(text);
    // charAt[b]: UTF-16 index where the character holding byte b starts; charEnd[b]: where it ends.
    const charAt = new Int32Array(bytes.length + 1);
    const charEnd = new Int32Array(bytes.length + 1);
    let b = 0;
    for (let u = 0; u < text.length;) {
      const cp = text.codePointAt(u)!;
      const units = cp > 0xffff ? 2 : 1;
      const nb = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
      for (let k = 0; k < nb; k++) { charAt[b + k] = u; charEnd[b + k] = u + units; }
      b += nb;
      u += units;
    }
    if (b !== bytes.length) return undefined; // lone surrogates: let the matcher try
    charAt[bytes.length] = text.length;
    const atBoundary = (p: number): boolean => p === bytes.length || p === 0 || charAt[p] !== charAt[p - 1];
    const offsets: [number, number][] = [];
    let p = 0;
    for (let i = 0; i < ids.length; i++) {
      const tb = this.tokenBytes(ids[i]!, tokens[i]!);
      if (tb === undefined) return undefined;
      let skip = 0;
      if (!matchesAt(bytes, p, tb, 0)) {
        // ByteLevel(add_prefix_space) puts a space before each section that lacks one.
        if (this.addPrefixSpace && tb[0] === 0x20 && matchesAt(bytes, p, tb, 1)) skip = 1;
        else return undefined;
      }
      const len = tb.length - skip;
      if (len === 0) { offsets.push([charAt[p]!, charAt[p]!]); continue; }
      const end = p + len;
      offsets.push([charAt[p]!, atBoundary(end) ? charAt[end]! : charEnd[end - 1]!]);
      p = end;
    }
    return p === bytes.length ? offsets : undefined;
  }

  private surface(id: number, token: string): string {
    if (this.addedIds.has(id)) return token;
    let s = token;
    if (this.kind === 'byte-level') {
      const tb = this.tokenBytes(id, token);
      if (tb) s = textDecoder.decode(tb);
    }
    if (this.subwordPrefix && s.startsWith(this.subwordPrefix)) s = s.slice(this.subwordPrefix.length);
    if (this.wordSuffix && s.endsWith(this.wordSuffix)) s = s.slice(0, s.length - this.wordSuffix.length);
    if (this.metaspace) s = s.split(this.metaspace).join(' ');
    return s.trim();
  }

  private matchOffsets(text: string, ids: number[], tokens: string[]): [number, number][] {
    const offsets: [number, number][] = [];
    const lower = text.toLowerCase();
    const sameLength = lower.length === text.length;
    const skipSpace = (c: number): number => { while (c < text.length && /\s/.test(text[c]!)) c++; return c; };
    const find = (s: string, from: number): number => {
      const at = text.indexOf(s, from);
      if (at >= 0 || !sameLength) return at;
      return lower.indexOf(s.toLowerCase(), from);
    };
    let cursor = 0;
    let pendingUnk: number[] = []; // indices of unknown-tokens waiting for the next match
    const closeUnk = (end: number): void => {
      // Several unknowns in a row share the gap: each gets the whole of it.
      for (const k of pendingUnk) offsets[k] = [offsets[k]![0], Math.max(offsets[k]![0], end)];
      pendingUnk = [];
    };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      const token = tokens[i]!;
      const isUnk = this.unkId !== undefined && id === this.unkId && (token === this.unkToken || this.unkToken === undefined);
      const start = skipSpace(cursor);
      if (isUnk && token === this.unkToken) {
        offsets.push([start, start]);
        pendingUnk.push(i);
        continue;
      }
      const s = this.surface(id, token);
      if (s.length === 0) { offsets.push([cursor, start]); cursor = start; continue; }
      let at: number;
      if (pendingUnk.length > 0) {
        at = find(s, start + 1);
        if (at < 0) at = find(s, start);
      } else {
        at = text.startsWith(s, start) || (sameLength && lower.startsWith(s.toLowerCase(), start)) ? start : find(s, start);
      }
      if (at < 0) {
        throw new RunUserError(runError('tokenizer',
          `cannot find token ${i} (${JSON.stringify(token)}) of ${this.path} in the text ${JSON.stringify(text)} after character ${start}`,
          { file: this.path, hint: 'the tokenizer normalizes the text in a way dissect cannot map back to characters' }));
      }
      if (pendingUnk.length > 0) {
        let end = at;
        while (end > start && /\s/.test(text[end - 1]!)) end--;
        closeUnk(end);
      }
      offsets.push([at, at + s.length]);
      cursor = at + s.length;
    }
    if (pendingUnk.length > 0) {
      const from = offsets[pendingUnk[0]!]![0];
      let end = from;
      while (end < text.length && !/\s/.test(text[end]!)) end++;
      closeUnk(end);
    }
    return offsets;
  }
}

function matchesAt(bytes: Uint8Array, p: number, tb: Uint8Array, from: number): boolean {
  if (p + tb.length - from > bytes.length) return false;
  for (let k = from; k < tb.length; k++) if (bytes[p + k - from] !== tb[k]) return false;
  return true;
}
