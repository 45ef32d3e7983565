// Hostile datasets: one bad fact must not stop a run. A prompt longer than the model's
// positions and a repeated fact id are dropped with a reason, the run finishes, and the
// reasons appear in results.json and the console summary.

import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Results } from '../../src/measure/schema.js';
import { program, Sandbox, tinyGpt2 } from './sandbox.js';

interface CounterFact { case_id: number; requested_rewrite: { prompt: string; subject: string } }

test('a prompt longer than the model\'s 64 positions and a repeated id are dropped; the run finishes', (t) => {
  const s = new Sandbox();
  const facts = (JSON.parse(readFileSync(join(tinyGpt2, 'facts.json'), 'utf8')) as CounterFact[]).slice(0, 3);
  const long = structuredClone(facts[0]!);
  long.case_id = 1000;
  long.requested_rewrite.prompt = `${'In the city of Solvig '.repeat(12)}{} was born in the city of`; // 68 tokens
  const repeated = structuredClone(facts[1]!); // the id of facts[0]
  repeated.case_id = facts[0]!.case_id;
  const dataset = s.write('facts.json', [...facts, long, repeated]);
  const check = s.dissect('check', s.write('x.dissect', program({ dataset })));
  t.regex(check.stdout, /^inputs: tokenizer ids 0\.\.263 for 264 embedding rows; prompts of at most 64 tokens \(the rows of transformer\.wpe\.weight\)$/m);
  t.regex(check.stdout, /^facts: 5 in the dataset \(filter known is applied at run time; 1 repeats an earlier id and is dropped\)$/m);
  const r = s.dissect('run', s.path('x.dissect'), '--out', s.out);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^examples: 3 of 5 kept \(dropped: prompt_too_long 1, duplicate_id 1\)$/m);
  const results = JSON.parse(readFileSync(join(s.out, 'results.json'), 'utf8')) as Results;
  t.deepEqual(results.data.dropped, { prompt_too_long: 1, duplicate_id: 1 });
  // every dropped fact, by id, in results.json and (the first few) in the console
  t.deepEqual(results.data.droppedFacts.map((f) => [f.id, f.reason]), [['1000', 'prompt_too_long'], ['0', 'duplicate_id']]);
  t.regex(r.stdout, /^ {2}dropped "1000": prompt_too_long \(fact 1000 \(record 4\): the prompt has 68 tokens/m);
  t.regex(r.stdout, /^ {2}dropped "0": duplicate_id$/m);
  t.regex(readFileSync(join(s.out, 'report.html'), 'utf8'), /every dropped fact and why.*1000.*prompt_too_long/s);
  t.deepEqual(results.examples.map((e) => e.id), ['0', '1', '2']);
  t.is(results.examples[0]!.prompt, 'Lornar Elnar was born in the city of', 'the first of a repeated id is measured');
  const journal = readFileSync(join(s.out, 'journal.jsonl'), 'utf8');
  t.regex(journal, /"reason":"prompt_too_long","detail":"fact 1000 \(record 4\): the prompt has 68 tokens, but the model takes at most 64 \(its position table transformer\.wpe\.weight has 64 rows\)"/);
  t.deepEqual(r.touched, []);
});

test('a run that keeps no fact fails, saying why, and keeps its journal for a rerun', (t) => {
  const s = new Sandbox();
  const facts = (JSON.parse(readFileSync(join(tinyGpt2, 'facts.json'), 'utf8')) as CounterFact[]).slice(0, 2);
  for (const f of facts) f.requested_rewrite.subject = 'Nobody Here';
  const dataset = s.write('facts.json', facts);
  const r = s.dissect('run', s.write('x.dissect', program({ dataset })), '--out', s.out);
  t.is(r.code, 1);
  // the subject fills the prompt's {}, so the model just does not know these facts
  t.regex(r.stderr, /dissect: error: no fact was kept: all 2 dropped \(not_known 2\), so nothing was measured; first: "\d+" not_known; "\d+" not_known/);
  t.regex(r.stderr, /hint: /);
  t.false(existsSync(join(s.out, 'results.json')), 'no empty tables written');
  t.true(existsSync(join(s.out, 'journal.jsonl')));
});
