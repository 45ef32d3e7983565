import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DatasetFields, DatasetSpec, SourceSpan } from '../../src/lang/program.js';
import { loadFacts, selectFacts, splitDuplicateIds, type Fact } from '../../src/run/dataset.js';
import { mulberry32Float as mulberry32 } from '../../src/random.js';
import { isRunError, type RunError } from '../../src/run/errors.js';
import { tempDir } from './_tokenizers.js';

const dir = tempDir('data');
const span: SourceSpan = { file: '/x/exp.dissect', line: 3, column: 1 };
let counter = 0;
function file(content: string, ext = 'json'): string {
  const p = join(dir, `f${counter++}.${ext}`);
  writeFileSync(p, content);
  return p;
}
function facts(spec: DatasetSpec): Fact[] {
  const r = loadFacts(spec);
  if (isRunError(r)) throw new Error(r.message);
  return r.facts;
}
function error(spec: DatasetSpec): RunError {
  const r = loadFacts(spec);
  if (!isRunError(r)) throw new Error('expected an error');
  return r;
}

const counterfact = [
  { case_id: 0, pararel_idx: 2796, requested_rewrite: { prompt: 'The mother tongue of {} is', relation_id: 'P103', target_new: { str: 'English', id: 'Q1860' }, target_true: { str: 'French', id: 'Q150' }, subject: 'Danielle Darrieux' }, paraphrase_prompts: ['x'] },
  { case_id: 7, requested_rewrite: { prompt: '{}, which is located in', target_true: { str: 'Europe' }, subject: 'Autonomous University of Madrid' } },
];
const known = [
  { known_id: 0, subject: 'Vinson Massif', attribute: 'Antarctica', template: '{} is located in the continent', prediction: ' Antarctica', prompt: 'Vinson Massif is located in the continent of', relation_id: 'P30' },
  { known_id: 1, subject: 'Beats Music', attribute: 'Apple', template: '{} is owned by', prediction: ' Apple', prompt: 'Beats Music is owned by', relation_id: 'P127' },
];

test('CounterFact: template filled with the subject', (t) => {
  const f = facts({ format: 'counterfact', path: file(JSON.stringify(counterfact)), span, pathSpan: span });
  t.deepEqual(f, [
    { id: '0', prompt: 'The mother tongue of Danielle Darrieux is', subject: 'Danielle Darrieux', target: 'French', record: 1 },
    { id: '7', prompt: 'Autonomous University of Madrid, which is located in', subject: 'Autonomous University of Madrid', target: 'Europe', record: 2 },
  ]);
});

test('CounterFact: a subject with $ is inserted literally', (t) => {
  const data = [{ case_id: 1, requested_rewrite: { prompt: '{} is', target_true: { str: 'x' }, subject: "A$$ap $' Rocky" } }];
  t.is(facts({ format: 'counterfact', path: file(JSON.stringify(data)), span, pathSpan: span })[0]!.prompt, "A$$ap $' Rocky is");
});

test('known_1000: prompt, subject, attribute', (t) => {
  const f = facts({ format: 'known', path: file('\ufeff' + JSON.stringify(known)), span, pathSpan: span });
  t.deepEqual(f[1], { id: '1', prompt: 'Beats Music is owned by', subject: 'Beats Music', target: 'Apple', record: 2 });
  t.is(f.length, 2);
});

const fields: DatasetFields = { prompt: 'text', subject: 'entity', target: 'answer' };

test('JSONL with a field mapping (dotted paths reach nested objects, ids from "id")', (t) => {
  const lines = [
    JSON.stringify({ text: 'Paris is the capital of', entity: 'Paris', answer: 'France', id: 'p1' }),
    '',
    JSON.stringify({ text: 'Toko Yasuda plays the', entity: 'Toko Yasuda', answer: 'guitar' }),
  ].join('\n') + '\n';
  t.deepEqual(facts({ format: 'jsonl', path: file(lines, 'jsonl'), fields, span, pathSpan: span }), [
    { id: 'p1', prompt: 'Paris is the capital of', subject: 'Paris', target: 'France', record: 1 },
    { id: '2', prompt: 'Toko Yasuda plays the', subject: 'Toko Yasuda', target: 'guitar', record: 2 },
  ]);
  const nested = JSON.stringify({ q: { prompt: 'X is in', subject: 'X' }, a: 1984 });
  t.deepEqual(facts({ format: 'jsonl', path: file(nested, 'jsonl'), fields: { prompt: 'q.prompt', subject: 'q.subject', target: 'a' }, span, pathSpan: span }),
    [{ id: '1', prompt: 'X is in', subject: 'X', target: '1984', record: 1 }]);
});

test('CSV with quoted fields (commas, quotes, newlines) and a field mapping', (t) => {
  const csv = 'answer,entity,text\r\n'
    + 'France,Paris,"Paris, the city of light, is in"\r\n'
    + 'Apple,"Beats ""Music""","Beats ""Music"" is owned by"\r\n'
    + '\r\n'
    + 'Canada,Toronto,"Toronto\nis in"\r\n';
  t.deepEqual(facts({ format: 'csv', path: file(csv, 'csv'), fields, span, pathSpan: span }), [
    { id: '1', prompt: 'Paris, the city of light, is in', subject: 'Paris', target: 'France', record: 1 },
    { id: '2', prompt: 'Beats "Music" is owned by', subject: 'Beats "Music"', target: 'Apple', record: 2 },
    { id: '3', prompt: 'Toronto\nis in', subject: 'Toronto', target: 'Canada', record: 3 },
  ]);
});

test('a missing file, a folder and a name too long are error values naming the path and why', (t) => {
  const e = error({ format: 'known', path: join(dir, 'nope.json'), span, pathSpan: span });
  t.is(e.code, 'dataset');
  t.is(e.message, `cannot read the dataset ${join(dir, 'nope.json')}: no such file or folder`);
  t.deepEqual(e.span, span);
  t.is(error({ format: 'known', path: dir, span, pathSpan: span }).message, `cannot read the dataset ${dir}: it is a folder`);
  const long = join(dir, `${'a'.repeat(300)}.json`);
  t.is(error({ format: 'known', path: long, span, pathSpan: span }).message, `cannot read the dataset ${long}: the name is too long`);
});

test('wrong shapes name the file, the record and what was expected', (t) => {
  const obj = file('{"a": 1}');
  t.is(error({ format: 'counterfact', path: obj, span, pathSpan: span }).message, `${obj}: expected a JSON array of records, found an object`);
  const bad = file('[{"case_id": 1,');
  t.regex(error({ format: 'counterfact', path: bad, span, pathSpan: span }).message, /: not valid JSON: /);

  const noSubject = structuredClone(counterfact) as Record<string, any>[];
  delete noSubject[1]!['requested_rewrite'].subject;
  const p = file(JSON.stringify(noSubject));
  const e = error({ format: 'counterfact', path: p, span, pathSpan: span });
  t.is(e.message, `${p}: record 2: missing field 'requested_rewrite.subject'`);
  t.is(e.record, 2);

  const knownAsCf = error({ format: 'counterfact', path: file(JSON.stringify(known)), span, pathSpan: span });
  t.regex(knownAsCf.message, /record 1: missing field 'requested_rewrite'/);
  t.regex(knownAsCf.hint ?? '', /dataset known/);
  const cfAsKnown = error({ format: 'known', path: file(JSON.stringify(counterfact)), span, pathSpan: span });
  t.regex(cfAsKnown.hint ?? '', /dataset counterfact/);

  const noHole = [{ case_id: 3, requested_rewrite: { prompt: 'The capital is', subject: 'X', target_true: { str: 'Y' } } }];
  t.regex(error({ format: 'counterfact', path: file(JSON.stringify(noHole)), span, pathSpan: span }).message, /record 1: 'requested_rewrite.prompt' must contain "\{\}" exactly once/);

  const numberSubject = [{ known_id: 0, prompt: 'p', subject: 5, attribute: 'a' }];
  t.regex(error({ format: 'known', path: file(JSON.stringify(numberSubject)), span, pathSpan: span }).message, /record 1: field 'subject' must be a string, found a number/);
  t.regex(error({ format: 'known', path: file('[1]'), span, pathSpan: span }).message, /record 1: expected an object/);
});

test('JSONL / CSV errors quote the field mapping', (t) => {
  const lines = Array.from({ length: 17 }, (_, i) => JSON.stringify(i === 16 ? { text: 'a b', answer: 'c' } : { text: 'a b', entity: 'a', answer: 'c' })).join('\n');
  const p = file(lines, 'jsonl');
  t.is(error({ format: 'jsonl', path: p, fields, span, pathSpan: span }).message,
    `${p}: record 17: missing field 'subject' (fields mapping says subject = "entity")`);
  t.regex(error({ format: 'jsonl', path: file('{"text": "a b", "entity": "a", "answer": 1}\nnot json', 'jsonl'), fields, span, pathSpan: span }).message, /record 2: line 2 is not valid JSON/);
  t.regex(error({ format: 'jsonl', path: file('[1,2]', 'jsonl'), fields, span, pathSpan: span }).message, /record 1: line 1: expected a JSON object, found an array/);

  const csv = file('text,subject,answer\n"a b",a,c\n', 'csv');
  t.is(error({ format: 'csv', path: csv, fields, span, pathSpan: span }).message,
    `${csv}: no column "entity" for field 'subject' (fields mapping says subject = "entity"); the header has: "text", "subject", "answer"`);
  t.regex(error({ format: 'csv', path: file('text,entity,answer\n"a b,a,c\n', 'csv'), fields, span, pathSpan: span }).message, /not valid CSV/);
  t.regex(error({ format: 'csv', path: file('text,entity,answer\na b,a,c,d\n', 'csv'), fields, span, pathSpan: span }).message, /not valid CSV/);
  t.regex(error({ format: 'csv', path: file('text,entity,answer\na b,,c\n', 'csv'), fields, span, pathSpan: span }).message, /record 1: field 'subject' is empty/);
  t.regex(error({ format: 'csv', path: file('', 'csv'), fields, span, pathSpan: span }).message, /empty CSV file/);
});

const many: Fact[] = Array.from({ length: 100 }, (_, i) => ({ id: String(i), prompt: `p${i}`, subject: 'p', target: 't', record: i + 1 }));

test('selectFacts: limit, seeded sample in dataset order, sample then limit', (t) => {
  t.deepEqual(selectFacts(many, { limit: 3 }).map((f) => f.id), ['0', '1', '2']);
  t.is(selectFacts(many, {}).length, 100);
  const a = selectFacts(many, { sample: 10, seed: 42 });
  const b = selectFacts(many, { sample: 10, seed: 42 });
  const c = selectFacts(many, { sample: 10, seed: 43 });
  t.deepEqual(a, b);
  t.notDeepEqual(a.map((f) => f.id), c.map((f) => f.id));
  t.is(a.length, 10);
  t.is(new Set(a.map((f) => f.id)).size, 10);
  const records = a.map((f) => f.record);
  t.deepEqual(records, [...records].sort((x, y) => x - y));
  t.deepEqual(selectFacts(many, { sample: 10, seed: 42, limit: 4 }), a.slice(0, 4));
  t.is(selectFacts(many, { sample: 1000 }).length, 100);
  t.deepEqual(selectFacts(many, { sample: 5 }), selectFacts(many, { sample: 5, seed: 0 }));
  t.throws(() => selectFacts(many, { limit: -1 }));
});

test('selectFacts: the documented algorithm, step by step', (t) => {
  // partial Fisher-Yates with mulberry32(seed), then ascending order
  const rand = mulberry32(9);
  const idx = Array.from({ length: 100 }, (_, i) => i);
  for (let i = 0; i < 6; i++) {
    const j = i + Math.floor(rand() * (100 - i));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  const expected = idx.slice(0, 6).sort((x, y) => x - y).map(String);
  t.deepEqual(selectFacts(many, { sample: 6, seed: 9 }).map((f) => f.id), expected);
});

test('mulberry32 matches the reference implementation', (t) => {
  // Reference (Tommy Ettinger's mulberry32 as usually published in JavaScript).
  function reference(a: number): () => number {
    return () => {
      let t2 = (a += 0x6d2b79f5);
      t2 = Math.imul(t2 ^ (t2 >>> 15), t2 | 1);
      t2 ^= t2 + Math.imul(t2 ^ (t2 >>> 7), t2 | 61);
      return ((t2 ^ (t2 >>> 14)) >>> 0) / 4294967296;
    };
  }
  for (const seed of [0, 1, 42, 0xdeadbeef, 4294967295]) {
    const r = reference(seed);
    const m = mulberry32(seed);
    for (let i = 0; i < 1000; i++) t.is(m(), r(), `seed ${seed} draw ${i}`);
  }
  t.is(mulberry32(1)(), 0.6270739405881613);
});

test('repeated ids: the first fact of each id is kept, later ones are set apart in order', (t) => {
  const fact = (id: string, record: number) => ({ id, prompt: 'p', subject: 's', target: 't', record });
  const { unique, duplicates } = splitDuplicateIds([fact('a', 1), fact('b', 2), fact('a', 3), fact('c', 4), fact('a', 5)]);
  t.deepEqual(unique.map((f) => f.record), [1, 2, 4]);
  t.deepEqual(duplicates.map((f) => f.record), [3, 5]);
});
