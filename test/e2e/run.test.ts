// Properties of `dissect run` on the default model: batching and padding do not change the
// numbers, a killed run resumes without loss, a compiled variant run in plain onnxruntime
// from its manifest alone gives the same numbers, and the model's graph is read once.

import test from 'ava';
import * as ort from 'onnxruntime-node';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileVariant, readModelGraph } from '../../src/onnx/index.js';
import { loadProgram, runProgram } from '../../src/pipeline/index.js';
import { planFigures } from '../../src/report/html/figures.js';
import { rowConventions } from '../../src/run/example.js';
import { JOURNAL_FILE } from '../../src/run/journal.js';
import type { Results } from '../../src/measure/schema.js';
import type { VariantManifest } from '../../src/onnx/variant.js';
import { closeRel, informationFlowSource, runSource, tempDir, tinyGpt2 } from './helpers.js';
import { OutputFolder } from '../../src/output/folder.js';

function values(results: Results): Map<string, Record<string, number | undefined>> {
  return new Map(results.experiments[0]!.values.map((v) => [`${v.example}|${v.key['l']}|${v.key['blocked']}`, v.values]));
}

function assertSameValues(t: import('ava').ExecutionContext, a: Results, b: Results): void {
  const va = values(a);
  const vb = values(b);
  t.is(va.size, vb.size);
  let worst = 0;
  for (const [k, x] of va) {
    const y = vb.get(k)!;
    t.true(closeRel(x['probability']!, y['probability']!, 1e-5), `${k}: ${x['probability']} vs ${y['probability']}`);
    worst = Math.max(worst, Math.abs(x['probability_change']! - y['probability_change']!));
    t.is(x['rank'], y['rank'], k);
  }
  t.true(worst <= 0.01, `changes within 0.01 pp (worst ${worst})`);
}

test.serial('batched (padded) and one-row-at-a-time runs give the same numbers', async (t) => {
  const source = informationFlowSource(3);
  const one = await runSource({ source, batch: 1, limit: 12 });
  const many = await runSource({ source, batch: 50, limit: 12 });
  // Prompts of the default model differ in length, so batches of 50 rows are padded.
  const lengths = new Set(one.results.examples.map((e) => e.tokens.length));
  t.true(lengths.size > 1, 'the facts have prompts of several lengths');
  assertSameValues(t, one.results, many.results);
});

test.serial('a run killed part-way resumes from its journal and loses nothing', async (t) => {
  const source = informationFlowSource(3);
  const full = await runSource({ source, limit: 10 });
  const out = join(tempDir('e2e'), 'out');
  await runSource({ source, limit: 10, out });
  // Keep the header and four finished facts, and leave a line cut off mid-write.
  const journal = join(out, JOURNAL_FILE);
  const lines = readFileSync(journal, 'utf8').split('\n');
  writeFileSync(journal, lines.slice(0, 5).join('\n') + '\n' + lines[5]!.slice(0, 40));
  const resumed = await runSource({ source, limit: 10, out });
  t.is(resumed.resumed, 4);
  t.is(resumed.results.examples.length, full.results.examples.length);
  assertSameValues(t, full.results, resumed.results);
  // provenance describes the whole result: the rows run now and the facts taken from the journal
  const rows = resumed.results.provenance.rows!;
  t.is(rows.journalFacts, 4);
  const perFact = full.results.experiments.reduce((n, x) => n + x.forwardPasses, 0) / full.results.data.kept;
  const keptFromJournal = resumed.results.data.droppedFacts.filter((f) => lines.slice(1, 5).some((l) => l.startsWith(`{"id":${JSON.stringify(f.id)},`))).length;
  t.is(rows.journalRows, (4 - keptFromJournal) * perFact);
  t.is((rows.lastPositionRows ?? 0) + (rows.fullRows ?? 0) + (rows.cleanPassRows ?? 0) + rows.journalRows!, full.results.experiments.reduce((n, x) => n + x.forwardPasses, 0));
  t.is(full.results.provenance.rows!.journalFacts, undefined);
  // A different experiment in the same folder is refused rather than mixed in.
  await t.throwsAsync(runSource({ source: informationFlowSource(5), limit: 10, out }), { message: /journal/i });
});

test.serial('the compiled variant runs in plain onnxruntime from its manifest and agrees with dissect run', async (t) => {
  const source = informationFlowSource(3);
  const { results } = await runSource({ source, limit: 3 });
  const dir = tempDir('e2e');
  const file = join(tempDir('e2e'), 'experiment.dissect');
  writeFileSync(file, source);
  // as `dissect compile` does: the manifest also records how the program makes rows
  const compiled = compileVariant(join(tinyGpt2, 'model.onnx'), { knockout: 'replace_half_min', logits: false }, OutputFolder.open(dir),
    { rows: rowConventions(loadProgram(file).program) });
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as VariantManifest;
  t.like(manifest.rows, { tokenizer: join(tinyGpt2, 'tokenizer.json'), window: { choice: 'knockout_window', value: 'centred_clipped' } });
  t.regex(manifest.rows!.subjectPositions, /first occurrence of the subject/);
  const session = await ort.InferenceSession.create(join(dir, manifest.model), { intraOpNumThreads: 1, interOpNumThreads: 1 });
  t.is(compiled.manifest.layers, manifest.layers);
  const names = manifest.inputs.map((i) => i.name).sort();
  t.deepEqual(names, ['attention_mask', 'dissect_knockout', 'dissect_last_index', 'dissect_target', 'input_ids']);
  const tokenizer = JSON.parse(readFileSync(join(tinyGpt2, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } };
  for (const ex of results.examples) {
    const ids = ex.tokens.map((tok) => tokenizer.model.vocab[tok]!);
    const n = ids.length;
    const [start, end] = ex.subjectRange;
    for (const l of [0, 3, manifest.layers - 1]) {
      // subject → last in the window of 3 layers around l, all heads (head dim 1).
      const mask = new Uint8Array(manifest.layers * n * n);
      for (let layer = Math.max(0, l - 1); layer <= Math.min(manifest.layers - 1, l + 1); layer++) {
        for (let k = start; k < end; k++) mask[layer * n * n + (n - 1) * n + k] = 1;
      }
      const out = await session.run({
        input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, n]),
        attention_mask: new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]),
        dissect_knockout: new ort.Tensor('bool', mask, [1, manifest.layers, 1, n, n]),
        dissect_last_index: new ort.Tensor('int64', BigInt64Array.from([BigInt(n - 1)]), [1]),
        dissect_target: new ort.Tensor('int64', BigInt64Array.from([BigInt(ex.cleanTop1.id)]), [1]),
      });
      const p = (out['dissect_target_prob']!.data as Float32Array)[0]!;
      const v = results.experiments[0]!.values.find((r) => r.example === ex.id && r.key['l'] === l && r.key['blocked'] === 'subject')!;
      // dissect runs these rows as the last token against the clean cache: float32 rounding differs
      t.true(closeRel(p, v.values['probability']!, 1e-5), `example ${ex.id} l=${l}: ${p} vs ${v.values['probability']}`);
    }
  }
  await session.release();
});

test.serial('a row whose index lies outside a prompt is skipped for that fact only', async (t) => {
  const source = informationFlowSource(3).replace(
    /experiment flow \{[\s\S]*\}/,
    'experiment far {\n  for k in positions [-8], [0]\n  block k -> last at layers 0\n  measure probability\n}',
  );
  const { results } = await runSource({ source, limit: 30 });
  const x = results.experiments[0]!;
  const long = results.examples.filter((e) => e.tokens.length >= 8).length;
  t.true(long > 0 && long < results.examples.length, 'the facts have prompts shorter and longer than 8 tokens');
  t.is(x.series.find((p) => p.key['k'] === '[-8]')!.n, long);
  t.is(x.series.find((p) => p.key['k'] === '[0]')!.n, results.examples.length);
  t.is(x.forwardPasses, long + results.examples.length);
});

test.serial("one row per token (`each`) over layers: the single-example view, drawn as a heatmap", async (t) => {
  const source = informationFlowSource(3).replace(
    /experiment flow \{[\s\S]*\}/,
    'experiment view {\n  for l in layers all\n  for t in positions each -6..-1\n  block t -> last at layers window(l, 2)\n  measure probability\n}',
  );
  const { results } = await runSource({ source, limit: 1 });
  const x = results.experiments[0]!;
  const n = results.examples[0]!.tokens.length; // 8 tokens: every index -6..-1 exists
  t.is(x.sweeps[1]!.values.length, 6);
  t.is(x.values.length, 8 * Math.min(6, n));
  const figures = planFigures(results).byExperiment.get('view')!;
  t.deepEqual(figures.map((f) => f.kind), ['heatmap']);
  // One fact: its rows are labelled with its tokens, as the paper's single-example figure.
  t.deepEqual(figures[0]!.series, ['was [-6]', 'born [-5]', 'in [-4]', 'the [-3]', 'city [-2]', 'of [-1]']);
});

test.serial('facts whose subject has no attribute data get no attributes rate, and are counted', async (t) => {
  const all = JSON.parse(readFileSync(join(tinyGpt2, 'attributes.json'), 'utf8')) as Record<string, string[]>;
  const facts = JSON.parse(readFileSync(join(tinyGpt2, 'facts.json'), 'utf8')) as { requested_rewrite: { subject: string } }[];
  const first = facts[0]!.requested_rewrite.subject; // facts 0..5 share this subject
  const file = join(tempDir('e2e'), 'partial.json');
  writeFileSync(file, JSON.stringify(Object.fromEntries(Object.entries(all).filter(([s]) => s !== first))));
  const source = informationFlowSource(3).replace(/experiment flow \{[\s\S]*\}/,
    `attributes json "${file}" candidates 100 keep 10\nexperiment e {\n  measure attributes_rate of hidden 4 at subject_last\n}`);
  const { results } = await runSource({ source, limit: 12 });
  const without = results.examples.filter((e) => e.subject === first).length;
  t.true(without > 0 && without < 12);
  t.is(results.data.withoutAttributes, without);
  t.is(results.experiments[0]!.series[0]!.n, 12 - without);
});

test.serial('a run reads the model\'s graph once: the check, the variant and the head mappings share it', async (t) => {
  const dir = tempDir('e2e');
  const file = join(dir, 'experiment.dissect');
  writeFileSync(file, informationFlowSource(3, 'head_mappings layers 0 top 3'));
  const reads: string[] = [];
  const loaded = loadProgram(file, {}, undefined, (path) => {
    reads.push(path);
    return readModelGraph(path);
  });
  const { results } = await runProgram(loaded, { out: join(dir, 'out'), selection: { limit: 2 }, batch: 8, device: 'cpu', command: ['test'] });
  t.deepEqual(reads, [join(tinyGpt2, 'model.onnx')]);
  t.is(results.headMappings!.heads.length, results.provenance.model.heads, 'the head mappings ran');
  t.is(results.data.kept, 2, 'and the rows');
});
