import test from 'ava';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { encode as gptEncode } from 'gpt-3-encoder';
import { isRunError, RunUserError } from '../../src/run/errors.js';
import { loadTokenizer, tokenizerFromJson, tokenizerMismatch, type Tokenizer } from '../../src/run/tokenizer.js';
import { tempDir, wordLevelTokenizerJson, writeGpt2Tokenizer, writeWordLevelTokenizer } from './_tokenizers.js';

const gpt2Path = writeGpt2Tokenizer();

function load(path: string): Tokenizer {
  const t = loadTokenizer(path);
  if (isRunError(t)) throw new Error(t.message);
  return t;
}
const gpt2 = load(gpt2Path);

test('GPT-2: metadata', (t) => {
  t.is(gpt2.kind, 'byte-level');
  t.is(gpt2.bosId, 50256);
  t.is(gpt2.vocabSize, 50257);
  t.is(gpt2.decode(7849), ' Music');
  t.is(gpt2.tokenString(7849), 'ĠMusic');
  t.is(gpt2.tokenId('ĠMusic'), 7849);
  t.is(gpt2.decode(50256), '<|endoftext|>');
  t.is(gpt2.decodeIds([3856, 1381, 7849]), 'Beats Music');
  t.throws(() => gpt2.decode(50257), { instanceOf: RangeError });
});

test('GPT-2: the paper\'s example prompt', (t) => {
  const e = gpt2.encode('Beats Music is owned by');
  t.deepEqual(e.ids, [3856, 1381, 7849, 318, 6898, 416]);
  t.deepEqual(e.ids, gptEncode('Beats Music is owned by'));
  t.deepEqual(e.offsets, [[0, 2], [2, 5], [5, 11], [11, 14], [14, 20], [20, 23]]);
  t.deepEqual(e.tokens, ['Be', 'ats', 'ĠMusic', 'Ġis', 'Ġowned', 'Ġby']);
});

const texts = [
  'The mother tongue of Danielle Darrieux is',
  'In Marshall Islands, the language spoken is a mixture of',
  "Apple's CEO isn't   here; they'll say 42 things!!",
  'Toko Yasuda, the  ',
  'x\n\ny\ttab   trailing   ',
  '  leading spaces',
  '"Quoted" (parens) [brackets] {braces} a-b_c 3.14159',
  'naïve café — über Straße',
  '日本語のテキスト and emoji 🎉🎉 mixed',
  'a , b . c ? d ! e \'s',
];

test('GPT-2: ids equal gpt-3-encoder and offsets tile the text', (t) => {
  for (const text of texts) {
    const e = gpt2.encode(text);
    t.deepEqual(e.ids, gptEncode(text), text);
    t.is(e.offsets.length, e.ids.length);
    t.is(e.offsets[0]![0], 0);
    t.is(e.offsets.at(-1)![1], text.length);
    for (let i = 1; i < e.offsets.length; i++) {
      // contiguous, or overlapping by one character where a token ends inside a character
      t.true(e.offsets[i]![0] <= e.offsets[i - 1]![1] && e.offsets[i]![0] >= e.offsets[i - 1]![0], `${text} @${i}`);
    }
  }
});

test('GPT-2: on ASCII text each token decodes to its slice', (t) => {
  for (const text of texts.filter((s) => /^[\x00-\x7f]*$/.test(s))) {
    const e = gpt2.encode(text);
    e.ids.forEach((id, i) => t.is(gpt2.decode(id), text.slice(...e.offsets[i]!), `${text} token ${i}`));
  }
});

test('GPT-2: a token ending inside a character covers the whole character', (t) => {
  const text = 'a 日b';
  const e = gpt2.encode(text);
  // ' 日' is 4 bytes: [20 E6] [97] [A5] (three byte-level tokens), then 'b'
  t.deepEqual(e.ids, gptEncode(text));
  t.deepEqual(e.offsets, [[0, 1], [1, 3], [2, 3], [2, 3], [3, 4]]);
  const emoji = gpt2.encode('🎉');
  t.true(emoji.offsets.every(([s, en]) => s === 0 && en === 2)); // surrogate pair: 2 UTF-16 units
});

test('GPT-2: <|endoftext|> in the text is the special token', (t) => {
  const e = gpt2.encode('x<|endoftext|> y');
  t.deepEqual(e.ids, [87, 50256, 331]);
  t.deepEqual(e.offsets, [[0, 1], [1, 14], [14, 16]]);
});

test('GPT-2 with ByteLevel add_prefix_space: the inserted space gets no character', (t) => {
  const tk = load(writeGpt2Tokenizer({ addPrefixSpace: true }));
  const e = tk.encode('Beats Music');
  t.deepEqual(e.ids, gptEncode(' Beats Music'));
  t.deepEqual(e.offsets, [[0, 5], [5, 11]]);
  t.deepEqual(tk.encode('').ids, []);
});

test('GPT-2: a folder holding tokenizer.json is accepted', (t) => {
  const tk = load(dirname(gpt2Path));
  t.is(tk.path, gpt2Path);
});

test('word-level tokenizer: ids, offsets, unknown words, no decoder', (t) => {
  const tk = load(writeWordLevelTokenizer('[BOS]'));
  t.is(tk.kind, 'word-level');
  t.is(tk.bosId, 1);
  t.is(tk.vocabSize, 25);
  const text = 'The  Eiffel Tower is in Zorgland, France.';
  const e = tk.encode(text);
  t.deepEqual(e.ids, [8, 9, 10, 4, 11, 0, 14, 17, 13]);
  t.deepEqual(e.offsets, [[0, 3], [5, 11], [12, 17], [18, 20], [21, 23], [24, 32], [32, 33], [34, 40], [40, 41]]);
  t.is(tk.decode(9), 'Eiffel');
  t.is(tk.tokenString(0), '[UNK]');
  const apostrophe = tk.encode("Danielle Darrieux's mother");
  t.deepEqual(apostrophe.ids, [18, 19, 23, 24, 20]);
  t.deepEqual(apostrophe.offsets, [[0, 8], [9, 17], [17, 18], [18, 19], [20, 26]]);
});

test('word-level tokenizer without a config has no BOS', (t) => {
  const tk = load(writeWordLevelTokenizer());
  t.is(tk.bosId, undefined);
});

test('WordPiece: [UNK] spans the unknown word; ## pieces map inside words', (t) => {
  const vocab: Record<string, number> = { '[UNK]': 0, the: 1, tower: 2, is: 3, '##s': 4, tall: 5 };
  const tk = tokenizerFromJson({
    added_tokens: [{ id: 0, content: '[UNK]', special: true }],
    pre_tokenizer: { type: 'Whitespace' },
    model: { type: 'WordPiece', vocab, unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100 },
  });
  if (isRunError(tk)) return t.fail(tk.message);
  const e = tk.encode('the towers is ~~~~~ tall');
  t.deepEqual(e.ids, [1, 2, 4, 3, 0, 5]);
  t.deepEqual(e.offsets, [[0, 3], [4, 9], [9, 10], [11, 13], [14, 19], [20, 24]]);
});

test('bad tokenizer files are error values', (t) => {
  const dir = tempDir();
  const missing = loadTokenizer(join(dir, 'nope.json'));
  t.true(isRunError(missing));
  if (isRunError(missing)) {
    t.is(missing.code, 'tokenizer');
    t.regex(missing.message, /cannot read the tokenizer .*nope\.json: no such file or folder/);
  }
  const emptyDir = join(dir, 'empty');
  mkdirSync(emptyDir);
  const noFile = loadTokenizer(emptyDir);
  t.true(isRunError(noFile) && /cannot read the tokenizer .*empty\/tokenizer\.json: no such file or folder/.test(noFile.message));
  const long = loadTokenizer(join(dir, `${'a'.repeat(300)}.json`));
  t.true(isRunError(long) && /: the name is too long$/.test(long.message));

  const bad = join(dir, 'bad.json');
  writeFileSync(bad, '{"model": ');
  const r1 = loadTokenizer(bad);
  t.true(isRunError(r1) && /bad\.json is not valid JSON/.test(r1.message));

  writeFileSync(bad, '{"version": "1.0"}');
  const r2 = loadTokenizer(bad);
  t.true(isRunError(r2) && /bad\.json is not a Hugging Face tokenizer\.json: missing "model" object/.test(r2.message));

  writeFileSync(bad, '[1, 2]');
  const r3 = loadTokenizer(bad);
  t.true(isRunError(r3) && /expected a JSON object/.test(r3.message));

  writeFileSync(bad, JSON.stringify({ model: { type: 'Mystery', vocab: 7 } }));
  const r4 = loadTokenizer(bad);
  t.true(isRunError(r4) && /missing "model.vocab"/.test(r4.message));

  const withConfig = join(dir, 'cfg');
  mkdirSync(withConfig);
  writeFileSync(join(withConfig, 'tokenizer.json'), JSON.stringify({ model: { type: 'WordLevel', vocab: { a: 0 }, unk_token: 'a' }, pre_tokenizer: { type: 'Whitespace' } }));
  writeFileSync(join(withConfig, 'tokenizer_config.json'), 'not json');
  const r5 = loadTokenizer(withConfig);
  t.true(isRunError(r5) && /tokenizer_config\.json is not valid JSON/.test(r5.message));
});

test('a declared unknown-token missing from the vocabulary is refused when loading; byte-level BPE needs none', (t) => {
  const json = wordLevelTokenizerJson() as { model: { unk_token: string } };
  json.model.unk_token = '<unk>';
  const r = tokenizerFromJson(json, {}, 'words.json');
  t.true(isRunError(r));
  if (isRunError(r)) t.is(r.message, 'words.json declares the unknown-token "<unk>" (unk_token), but its vocabulary has no such token');
  // a byte-level BPE encodes any text without one: a missing unk_token of its config is harmless
  const byteLevel = tokenizerFromJson({ ...wordLevelTokenizerJson(), pre_tokenizer: { type: 'ByteLevel' } }, { unk_token: '<unk>' });
  t.false(isRunError(byteLevel));
});

test('a word outside a vocabulary without an unknown-token is a tokenizer error, never an id NaN', (t) => {
  const json = wordLevelTokenizerJson() as { model: Record<string, unknown> };
  delete json.model['unk_token'];
  const tk = tokenizerFromJson(json, {}, 'words.json');
  if (isRunError(tk)) return t.fail(tk.message);
  t.deepEqual(tk.encode('The Eiffel Tower').ids, [8, 9, 10]);
  const e = t.throws(() => tk.encode('The Zorg Tower'), { instanceOf: RunUserError });
  t.is(e!.message, 'words.json has no token for "Zorg" (in "The Zorg Tower") and no unknown-token to stand for it');
});

test('a tokenizer fits a model with as many embedding rows as ids, or more; not fewer', (t) => {
  const tk = load(writeWordLevelTokenizer()); // ids 0..24
  t.is(tokenizerMismatch(tk, { path: 'm.onnx', embeddingRows: 25 }), undefined);
  t.is(tokenizerMismatch(tk, { path: 'm.onnx', embeddingRows: 40 }), undefined);
  const e = tokenizerMismatch(tk, { path: 'm.onnx', embeddingRows: 24 });
  t.is(e?.message, `the tokenizer ${tk.path} has ids up to 24 ("s", 25 ids), but the model m.onnx has 24 token embedding rows (ids 0..23)`);
});
