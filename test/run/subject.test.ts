import test from 'ava';
import { decode as gptDecode } from 'gpt-3-encoder';
import { mulberry32Float as mulberry32 } from '../../src/random.js';
import { isRunError, orThrow } from '../../src/run/errors.js';
import { locateSubject } from '../../src/run/subject.js';
import { loadTokenizer } from '../../src/run/tokenizer.js';
import { writeGpt2Tokenizer } from './_tokenizers.js';

const tk = orThrow(loadTokenizer(writeGpt2Tokenizer()));

// transformers' clean_up_tokenization, which tokenizer.decode applied by default in the
// version the paper pinned (4.30).
function cleanUp(s: string): string {
  return s.replaceAll(' .', '.').replaceAll(' ?', '?').replaceAll(' !', '!').replaceAll(' ,', ',')
    .replaceAll(" ' ", "'").replaceAll(" n't", "n't").replaceAll(" 'm", "'m").replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve").replaceAll(" 're", "'re");
}

/** A port of the paper's utils.find_token_range (decode each token, concatenate, index). */
function findTokenRange(ids: number[], subject: string, cleanup: boolean): [number, number] {
  const toks = ids.map((id) => (cleanup ? cleanUp(gptDecode([id])) : gptDecode([id])));
  const whole = toks.join('');
  const charLoc = whole.indexOf(subject);
  if (charLoc < 0) throw new Error('ValueError: substring not found');
  let loc = 0;
  let tokStart: number | undefined;
  let tokEnd: number | undefined;
  for (let i = 0; i < toks.length; i++) {
    loc += toks[i]!.length;
    if (tokStart === undefined && loc > charLoc) tokStart = i;
    if (tokEnd === undefined && loc >= charLoc + subject.length) { tokEnd = i + 1; break; }
  }
  return [tokStart!, tokEnd!];
}

function locate(prompt: string, subject: string): [number, number] {
  const r = locateSubject(prompt, subject, tk.encode(prompt).offsets);
  if (isRunError(r)) throw new Error(r.message);
  return [r.start, r.end];
}

const facts: [string, string, [number, number]][] = [
  // Be|ats| Music: three tokens, e_range = range(0, 3) in the paper's code
  ['Beats Music is owned by', 'Beats Music', [0, 3]],
  ['The mother tongue of Danielle Darrieux is', 'Danielle Darrieux', [4, 8]],
  ['In Marshall Islands, the language spoken is a mixture of', 'Marshall Islands', [1, 3]],
  ['Toko Yasuda, the', 'Toko Yasuda', [0, 4]],
  ['The headquarters of Apple is in', 'Apple', [3, 4]],
];

test('known prompts', (t) => {
  for (const [prompt, subject, range] of facts) {
    t.deepEqual(locate(prompt, subject), range, prompt);
    t.deepEqual(findTokenRange(tk.encode(prompt).ids, subject, true), range, prompt);
  }
});

test('partial overlap: a subject inside a token takes the whole token', (t) => {
  // "Beats" = "Be" + "ats"; "eat" overlaps both
  t.deepEqual(locate('Beats Music is owned by', 'eat'), [0, 2]);
  t.deepEqual(locate('Beats Music is owned by', 's Mu'), [1, 3]);
  t.deepEqual(locate('Beats Music is owned by', ' '), [2, 3]);
  // the first occurrence wins
  t.deepEqual(locate('Paris is Paris', 'Paris'), [0, 1]);
});

const WORDS = ['the', 'Apple', 'Music', 'is', 'owned', 'by', 'Beats', 'Danielle', 'Darrieux', 'Toko', 'Yasuda',
  'language', 'of', 'in', 'Marshall', 'Islands', 'capital', 'xyzzy', 'Qatar', '1984', 'co-founder', 'U.S.',
  'New', 'York', "O'Brien", 'Mc', 'Donald', 'BMW', 'iPhone', 'a'];
const PUNCT = [',', '.', ':', ';', '?', '!', '(', ')', "'s", '-', '"'];

test('equals the paper\'s find_token_range on 2000 random ASCII prompts and subjects', (t) => {
  const rand = mulberry32(7);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  let compared = 0;
  let paperRaises = 0;
  for (let k = 0; k < 2000; k++) {
    const n = 3 + Math.floor(rand() * 12);
    let prompt = '';
    for (let i = 0; i < n; i++) {
      const punct = rand() < 0.15;
      const w = punct ? pick(PUNCT) : pick(WORDS);
      const glue = i === 0 ? '' : punct ? (rand() < 0.85 ? '' : ' ') : rand() < 0.1 ? '' : rand() < 0.05 ? '  ' : ' ';
      prompt += glue + w;
    }
    // subjects: whole-word spans and arbitrary character spans (partial-token overlaps)
    const a = Math.floor(rand() * prompt.length);
    const b = Math.min(prompt.length, a + 1 + Math.floor(rand() * 20));
    const subject = prompt.slice(a, b);
    const ids = tk.encode(prompt).ids;
    // The paper decodes every token with transformers' space clean-up (" ," -> ","), which
    // shortens those tokens: a subject holding such a pair is then not found, or found
    // elsewhere. On prompts where clean-up changes a token dissect is compared with the port
    // without clean-up (the prompt's own characters); everywhere else with the exact port.
    const cleanupChanges = ids.some((id) => cleanUp(gptDecode([id])) !== gptDecode([id]));
    if (cleanupChanges) paperRaises++;
    const expected = findTokenRange(ids, subject, !cleanupChanges);
    t.deepEqual(locate(prompt, subject), expected, `${JSON.stringify(prompt)} / ${JSON.stringify(subject)}`);
    compared++;
  }
  t.is(compared, 2000);
  t.true(paperRaises < 300, `${paperRaises} of 2000 prompts where clean-up changes a token`);
});

test('where the paper\'s clean-up hides the subject, dissect follows the text', (t) => {
  const prompt = 'Paris , France is home to Eiffel';
  const ids = tk.encode(prompt).ids; // Paris| ,| France| is| home| to| E|iff|el
  t.deepEqual(locate(prompt, 'Eiffel'), [6, 9]);
  t.deepEqual(findTokenRange(ids, 'Eiffel', true), [6, 9]);
  t.deepEqual(locate(prompt, ', France'), [1, 3]);
  t.deepEqual(findTokenRange(ids, ', France', true), [1, 3]);
  t.deepEqual(locate(prompt, 'Paris ,'), [0, 2]);
  t.throws(() => findTokenRange(ids, 'Paris ,', true), { message: /substring not found/ });
});

test('subject not found / empty: an error value naming the prompt and the subject', (t) => {
  const offsets = tk.encode('Beats Music is owned by').offsets;
  const r = locateSubject('Beats Music is owned by', 'beats music', offsets);
  t.true(isRunError(r));
  if (isRunError(r)) {
    t.is(r.code, 'subject-not-found');
    t.is(r.message, 'subject "beats music" does not occur in prompt "Beats Music is owned by"');
  }
  const e = locateSubject('Beats Music is owned by', '', offsets);
  t.true(isRunError(e) && /empty subject/.test(e.message));
});
