// A small but complete results object: two examples, one knockout experiment over
// layers {0, 1} × blocked {subject, last}, built with the real measure functions.
import { frontEnd } from '../../src/lang/index.js';
import { aggregateSeries } from '../../src/measure/aggregate.js';
import { knockoutExampleRows, type KeyedRowOutput } from '../../src/measure/knockout.js';
import type { MeasureName } from '../../src/lang/program.js';
import type { Results, ResultsExperiment, SweepAxis } from '../../src/measure/schema.js';
import { planProgram } from '../../src/plan/plan.js';

export const hash = (c: string) => c.repeat(64);

/** The measure descriptors and interventions the planner gives an experiment's source (after `declarations`: params), on a model of 4 layers and 3 heads. */
export function planned(experimentSource: string, declarations = ''): Pick<ResultsExperiment, 'measures' | 'interventions' | 'interventionText'> {
  const source = ['model "m.onnx" tokenizer "t.json"', 'dataset counterfact "f.json"', 'attributes json "a.json"', declarations, experimentSource].join('\n');
  const out = frontEnd(source, '/virtual/p.dissect', { shapeOf: () => ({ layers: 4, heads: 3, vocab: 50257 }) });
  if (!out.program) throw new Error(out.diagnostics.map((d) => `${d.span.line}:${d.span.column} ${d.message}`).join('\n'));
  const [plan] = planProgram(out.program, { layers: 4, heads: 3, vocab: 50257 }).experiments;
  return { measures: plan!.measures, interventions: plan!.interventions, interventionText: plan!.interventionText };
}

const KNOCKOUT_SOURCE = 'experiment knockout {\n  for l in layers 0, 1\n  for blocked in positions subject, last\n  block blocked -> last at layers l\n  measure probability_change, rank\n}';

export function makeResults(ci: Results['ci'] = { method: 'none' }): Results {
  const sweeps: SweepAxis[] = [
    { variable: 'l', kind: 'layers', values: [0, 1] },
    { variable: 'blocked', kind: 'positions', values: ['subject', 'last'] },
  ];
  const measures: MeasureName[] = ['probability_change', 'rank'];
  const raw: Record<number, { p0: number; rows: KeyedRowOutput[] }> = {
    0: {
      p0: 0.5,
      rows: [
        { key: { l: 0, blocked: 'subject' }, pNew: 0.25, rank: 1 },
        { key: { l: 0, blocked: 'last' }, pNew: 0.5, rank: 0 },
        { key: { l: 1, blocked: 'subject' }, pNew: 0.125, rank: 4 },
        { key: { l: 1, blocked: 'last' }, pNew: 0.625, rank: 0 },
      ],
    },
    1: {
      p0: 0.25,
      rows: [
        { key: { l: 0, blocked: 'subject' }, pNew: 0.1875, rank: 0 },
        { key: { l: 0, blocked: 'last' }, pNew: 0.25, rank: 0 },
        { key: { l: 1, blocked: 'subject' }, pNew: 0.0625, rank: 2 },
        { key: { l: 1, blocked: 'last' }, pNew: 0.25, rank: 0 },
      ],
    },
  };
  const values = [0, 1].flatMap((id) => knockoutExampleRows(id, { p0: raw[id]!.p0, targetId: 4960 }, raw[id]!.rows, measures));
  const series = aggregateSeries(sweeps, measures, values, ci);
  return {
    format: 'dissect-results/2',
    tool: { name: 'dissect', version: '0.1.0' },
    createdAt: '2025-01-31T12:00:00.000Z',
    command: ['dissect', 'run', 'paper.dissect', '--out', 'out'],
    provenance: {
      model: { path: '/m/gpt2.onnx', sha256: hash('a'), family: 'gpt2', layers: 2, heads: 4, vocab: 50257 },
      tokenizer: { path: '/m/tokenizer.json', sha256: hash('b') },
      dataset: { path: '/d/known_1000.json', sha256: hash('c'), format: 'known' },
      source: { path: '/p/paper.dissect', sha256: hash('d'), text: 'experiment knockout { … }\n' },
      device: 'cpu',
      env: { NVIDIA_TF32_OVERRIDE: null },
      onnxruntime: { version: '1.30.0' },
    },
    choices: { knockout_window: 'centred_clipped' },
    choiceMeanings: { knockout_window: 'k layers centred on l, clipped at the ends' },
    params: { window: 9 },
    data: {
      total: 3, kept: 2, dropped: { not_known: 1, subject_not_found: 0 }, droppedFacts: [{ id: 2, reason: 'not_known' }],
      filter: 'known', bos: 'none', limit: null, sample: null, seed: null,
    },
    examples: [
      {
        id: 0, prompt: 'Beats Music is owned by', subject: 'Beats Music', target: 'Apple',
        tokens: ['Beats', ' Music', ' is', ' owned', ' by'], subjectRange: [0, 2], subjectAtZero: true,
        cleanTop1: { id: 4960, token: ' Apple', prob: 0.5 },
      },
      {
        id: 1, prompt: 'The capital of France is', subject: 'France', target: 'Paris',
        tokens: ['The', ' capital', ' of', ' France', ' is'], subjectRange: [3, 4], subjectAtZero: false,
        cleanTop1: { id: 6342, token: ' Paris', prob: 0.25 },
      },
    ],
    experiments: [
      {
        name: 'knockout',
        source: KNOCKOUT_SOURCE,
        sweeps,
        ...planned(KNOCKOUT_SOURCE),
        forwardPasses: 10,
        fullyBlockedRows: 0,
        series,
        values,
      },
    ],
    ci,
  };
}

/** A deep, mutable copy. */
export function mutable(r: Results): any {
  return JSON.parse(JSON.stringify(r));
}
