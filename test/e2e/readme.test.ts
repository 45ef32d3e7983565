// The README's headline numbers are `npm start`'s. Each one is followed by a marker naming the
// value of results.json it shows: `<!-- EXPERIMENT; MEASURE; k=v, k=a..b -->` (a series mean per
// binding, one shown number per binding), `<!-- EXPERIMENT; summarize extraction: PROBE -->`
// (% of facts with an event) or `<!-- data; kept|total -->`. They are checked against a run of
// examples/paper.dissect with only the experiments they name: each experiment's rows are its own,
// so its numbers are those of the whole file, which would take a minute of CI. The table's
// "reproduced?" column must say what the model card's verdicts say.

import test from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Results } from '../../src/measure/schema.js';
import { loadProgram, runProgram } from '../../src/pipeline/index.js';
import { tempDir, tinyGpt2 } from './helpers.js';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const readme = readFileSync(join(repo, 'README.md'), 'utf8');

type Binding = Record<string, number | string>;

interface Marker {
  readonly text: string;
  readonly experiment: string;
  readonly measure: string;
  readonly bindings: readonly Binding[];
  /** The numbers the README shows, one per binding, as written (`−60`, `69.8`). */
  readonly shown: readonly string[];
}

const NUMBER = /[−-]?\d+(?:\.\d+)?/g;

/** `l=1, blocked=subject` → its bindings, a range `h=0..8` giving one per value. */
function bindingsOf(spec: string | undefined): Binding[] {
  let out: Binding[] = [{}];
  for (const part of spec ? spec.split(', ') : []) {
    const [name, value] = part.split('=') as [string, string];
    const range = /^(\d+)\.\.(\d+)$/.exec(value);
    const values: (number | string)[] = range
      ? Array.from({ length: Number(range[2]) - Number(range[1]) + 1 }, (_, i) => Number(range[1]) + i)
      : [/^\d+$/.test(value) ? Number(value) : value];
    out = out.flatMap((b) => values.map((v) => ({ ...b, [name]: v })));
  }
  return out;
}

/** Every marker, with the numbers just before it in its table cell (after the previous marker). */
function markers(text: string): Marker[] {
  const out: Marker[] = [];
  for (const line of text.split('\n')) {
    let from = 0;
    for (const m of line.matchAll(/<!-- (.*?) -->/g)) {
      const [experiment, measure, spec] = m[1]!.split('; ') as [string, string, string | undefined];
      const bindings = bindingsOf(spec);
      const before = line.slice(Math.max(from, line.lastIndexOf('|', m.index) + 1), m.index);
      out.push({ text: m[0], experiment, measure, bindings, shown: (before.match(NUMBER) ?? []).slice(-bindings.length) });
      from = m.index + m[0].length;
    }
  }
  return out;
}

const sameKey = (key: Readonly<Record<string, number | string>>, binding: Binding): boolean =>
  Object.keys(key).length === Object.keys(binding).length && Object.entries(binding).every(([k, v]) => key[k] === v);

/** The value of results.json a marker names at one binding. */
function valueOf(r: Results, marker: Marker, binding: Binding): number | null | undefined {
  if (marker.experiment === 'data') return marker.measure === 'kept' ? r.data.kept : marker.measure === 'total' ? r.data.total : undefined;
  const experiment = r.experiments.find((e) => e.name === marker.experiment);
  const probe = /^summarize extraction: (.*)$/.exec(marker.measure)?.[1];
  if (probe) return experiment?.extraction?.find((s) => sameKey(s.key, binding))?.probes.find((p) => p.probe === probe)?.rateAnyLayer;
  return experiment?.series.find((s) => s.measure === marker.measure && sameKey(s.key, binding))?.mean;
}

/** examples/paper.dissect without the experiments no marker names, nor its head mappings. */
function headlineProgram(experiments: ReadonlySet<string>): string {
  const paper = readFileSync(join(repo, 'examples', 'paper.dissect'), 'utf8');
  return paper
    .replace(/^experiment (\w+) \{\n[\s\S]*?^\}\n/gm, (block, name: string) => (experiments.has(name) ? block : ''))
    .replace(/^head_mappings .*\n/m, '');
}

test('the README\'s headline numbers are those of npm start\'s results.json', async (t) => {
  const marked = markers(readme);
  t.true(marked.length >= 12, `${marked.length} markers`);
  const dir = tempDir('readme');
  const file = join(dir, 'paper.dissect');
  writeFileSync(file, headlineProgram(new Set(marked.map((m) => m.experiment))));
  const files = { model: 'model.onnx', tokenizer: 'tokenizer.json', dataset: 'facts.json', attributes: 'attributes.json' };
  const paths = Object.fromEntries(Object.entries(files).map(([param, name]) => [param, join(tinyGpt2, name)]));
  const { results } = await runProgram(loadProgram(file, paths), { out: join(dir, 'out'), selection: {}, batch: 64, device: 'cpu', command: ['test'] });
  for (const marker of marked) {
    t.is(marker.shown.length, marker.bindings.length, `${marker.text}: the README shows ${marker.shown.length} numbers for ${marker.bindings.length} values`);
    marker.bindings.forEach((binding, i) => {
      const shown = marker.shown[i]!;
      const value = valueOf(results, marker, binding);
      const decimals = shown.split('.')[1]?.length ?? 0;
      t.true(typeof value === 'number' && Math.abs(value - Number(shown.replace('−', '-'))) <= 0.5 * 10 ** -decimals + 1e-9,
        `${marker.text} ${JSON.stringify(binding)}: the README shows ${shown}, results.json holds ${value}`);
    });
  }
});

test('the README\'s "reproduced?" column agrees with the model card\'s verdicts', (t) => {
  const card = JSON.parse(readFileSync(join(tinyGpt2, 'card.json'), 'utf8')) as { findings: Record<string, { reproduced: string }> };
  // the table's rows, in the card's order of findings (a) to (d)
  const rows = ['information flow', 'subject enrichment', 'sublayer knockout', 'attribute extraction'].map((name) =>
    readme.split('\n').find((l) => l.startsWith(`| ${name}`)));
  const verdicts = rows.map((row) => /^\s*(yes|partly|no)\b/.exec(row?.split('|')[4] ?? '')?.[1]);
  t.deepEqual(verdicts, ['a', 'b', 'c', 'd'].map((k) => card.findings[k]!.reproduced));
});

test('the folders the README\'s run, compile, report and merge commands write into are ignored by git', (t) => {
  const ignored = new Set(readFileSync(join(repo, '.gitignore'), 'utf8').split('\n').map((l) => l.replace(/\/$/, '')));
  const outs = [...readme.matchAll(/npx dissect (?:run|compile|report|merge) .*--out ([a-z]\S*)/g)].map((m) => m[1]!);
  t.true(outs.length >= 6, outs.join(' '));
  for (const out of outs) t.true(ignored.has(out.split('/')[0]!), `${out} is not under a folder .gitignore lists`);
});
