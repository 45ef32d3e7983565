import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { csvField, formatJson, resultsCsv, ResultsValidationError, writeResults } from '../../src/report/write.js';
import { makeResults, mutable } from './fixture.js';
import { OutputFolder } from '../../src/output/folder.js';
import { tempDir } from '../temp.js';

const tmp = () => tempDir('write');

test('csvField quotes only when needed (RFC 4180)', (t) => {
  t.is(csvField('subject'), 'subject');
  t.is(csvField('a,b'), '"a,b"');
  t.is(csvField('say "hi"'), '"say ""hi"""');
  t.is(csvField('two\nlines'), '"two\nlines"');
  t.is(csvField(' Apple'), '" Apple"');
  t.is(csvField(-37.5), '-37.5');
  t.is(csvField(1e-7), '1e-7');
  t.is(csvField(null), '');
});

test('results.csv is long format with one column per sweep variable', (t) => {
  const lines = resultsCsv(makeResults()).split('\n');
  t.deepEqual(lines.slice(0, 5), [
    'experiment,example_id,l,blocked,measure,value',
    'knockout,0,0,subject,probability_change,-50',
    'knockout,0,0,subject,rank,1',
    'knockout,0,0,last,probability_change,0',
    'knockout,0,0,last,rank,0',
  ]);
  t.is(lines.length, 1 + 2 * 4 * 2 + 1); // header, 2 examples × 4 bindings × 2 measures, final ''
  t.is(lines[lines.length - 2], 'knockout,1,1,last,rank,0');
  t.true(lines.includes('knockout,1,1,subject,probability_change,-75'));
});

test('csv: awkward labels are quoted and clashing variable names prefixed', (t) => {
  const r = mutable(makeResults());
  const x = r.experiments[0];
  x.sweeps[1].variable = 'value';
  x.sweeps[1].values = ['a,"b"', 'last'];
  for (const row of [...x.values, ...x.series]) {
    row.key.value = row.key.blocked === 'subject' ? 'a,"b"' : 'last';
    delete row.key.blocked;
  }
  const lines = resultsCsv(r).split('\n');
  t.is(lines[0], 'experiment,example_id,l,sweep_value,measure,value');
  t.is(lines[1], 'knockout,0,0,"a,""b""",probability_change,-50');
});

test('formatJson keeps short values on one line and round-trips', (t) => {
  const r = makeResults();
  const text = formatJson(r);
  t.deepEqual(JSON.parse(text), JSON.parse(JSON.stringify(r)));
  const lines = text.split('\n');
  t.true(lines.includes('        {"example":0,"key":{"l":0,"blocked":"subject"},"values":{"probability_change":-50,"rank":1}},'), text);
  t.true(lines.some((l) => l.startsWith('    {"id":0,"prompt":"Beats Music is owned by",')));
  t.true(lines.includes('  "ci": {"method":"none"}'));
  t.true(text.endsWith('}\n'));
});

test('writeResults writes both files beside each other', (t) => {
  const dir = path.join(tmp(), 'out', 'nested');
  const r = makeResults({ method: 'bootstrap_percentile', resamples: 1000, level: 0.95, seed: 0 });
  const w = writeResults(OutputFolder.open(dir), r);
  t.is(w.json, path.join(dir, 'results.json'));
  t.is(w.csv, path.join(dir, 'results.csv'));
  const back = JSON.parse(fs.readFileSync(w.json, 'utf8'));
  t.deepEqual(back, JSON.parse(JSON.stringify(r)));
  t.deepEqual(back.experiments[0].series[0].ci, [-50, -25]);
  t.is(fs.readFileSync(w.csv, 'utf8'), resultsCsv(r));
  t.deepEqual(fs.readdirSync(dir).sort(), ['.dissect-output.json', 'dissect.lock', 'results.csv', 'results.json']); // no temp files left
});

test('an invalid results object is an internal error and nothing is written', (t) => {
  const dir = tmp();
  const r = mutable(makeResults());
  r.data.kept = 5;
  delete r.tool;
  const out = OutputFolder.open(dir);
  const e = t.throws(() => writeResults(out, r), { instanceOf: ResultsValidationError });
  out.release();
  t.regex(e!.message, /^internal error: /);
  t.regex(e!.message, /must have required property 'tool'/);
  t.true(e!.internal);
  t.deepEqual(fs.readdirSync(dir), []);
});
