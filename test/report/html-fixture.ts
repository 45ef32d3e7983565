// A results object with every shape the HTML report draws: a knockout (layers × positions),
// a per-token knockout (layers × `each`), an attributes-rate sweep (hidden × positions) and
// its subject-embedding baseline, a sublayer knockout in three experiments (two swept, one
// flat, reading a hidden state given by a parameter), an extraction experiment with
// per-head probes and its summary, a patch sweep (layers × hidden) summarised per source, a
// position-only sweep, a logit lens and integrated gradients over hidden states. The series are
// aggregated from the per-example values with the real aggregateSeries, so the object
// passes validateResults.

import { aggregateSeries } from '../../src/measure/aggregate.js';
import type { CiOptions } from '../../src/measure/stats.js';
import type { ExtractionSummaryResult, Results, ResultsExperiment, SweepAxis, TokenRow, ValueRow } from '../../src/measure/schema.js';
import { planned } from './fixture.js';

const hash = (c: string) => c.repeat(64);
export const CI: CiOptions = { method: 'bootstrap_percentile', resamples: 200, level: 0.95, seed: 0 };
export const EXAMPLES = 4;
const PARAMS = 'param measured = 3';

/** A deterministic number in [0, 1) from a string. */
function unit(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return (h % 10007) / 10007;
}

function bindings(axes: readonly SweepAxis[]): Record<string, number | string>[] {
  let out: Record<string, number | string>[] = [{}];
  for (const a of axes) out = out.flatMap((b) => a.values.map((v) => ({ ...b, [a.variable]: v })));
  return out;
}

/** An experiment whose measures the planner derives from its source; `value` gives each measure id's value. */
function experiment(
  examples: number,
  name: string,
  source: string,
  sweeps: SweepAxis[],
  value: (ex: number, key: Record<string, number | string>, measure: string) => number,
  extra: Partial<ResultsExperiment> = {},
): ResultsExperiment {
  const { measures, interventions, interventionText } = planned(source, PARAMS);
  const ids = measures.map((d) => d.id);
  const values: ValueRow[] = [];
  for (let ex = 0; ex < examples; ex++) {
    for (const key of bindings(sweeps)) {
      values.push({ example: ex, key, values: Object.fromEntries(ids.map((m) => [m, value(ex, key, m)])) });
    }
  }
  return {
    name, source, sweeps, measures, interventions, interventionText,
    forwardPasses: values.length, fullyBlockedRows: 0,
    series: aggregateSeries(sweeps, ids, values, CI),
    values,
    ...extra,
  };
}

const layers = (variable: string, n: number): SweepAxis => ({ variable, kind: 'layers', values: Array.from({ length: n }, (_, i) => i) });
const hidden = (variable: string, values: number[]): SweepAxis => ({ variable, kind: 'hidden', values });
const positions = (variable: string, values: string[]): SweepAxis => ({ variable, kind: 'positions', values });

const RATE = 'attributes_rate of hidden measured at subject_last';
const round = (v: number, d = 4) => Math.round(v * 10 ** d) / 10 ** d;
const event = (s: string) => (unit(s) < 0.3 ? 1 : 0);

/** The rich results over `examples` examples (one: what `dissect run --example` reports). */
export function richResults(examples = EXAMPLES): Results {
  const knockout = experiment(
    examples,
    'knockout',
    'experiment knockout {\n  for l in layers all\n  for blocked in positions subject, last\n  block blocked -> last at layers window(l, 3)\n  measure probability_change, rank\n}',
    [layers('l', 4), positions('blocked', ['subject', 'last'])],
    (ex, k, m) => (m === 'rank' ? Math.floor(unit(`${ex}${k['l']}${k['blocked']}`) * 4) : round(-60 * unit(`${ex}|${k['l']}|${k['blocked']}`))),
  );
  const flow = experiment(
    examples,
    'flow',
    'experiment flow {\n  for l in layers all\n  for t in positions each -5..-1\n  block t -> last at layers l\n  measure probability\n}',
    [layers('l', 4), { ...positions('t', ['[-5]', '[-4]', '[-3]', '[-2]', '[-1]']), singleTokens: true }],
    (ex, k) => round(0.5 * unit(`f${ex}${k['l']}${k['t']}`)),
  );
  const enrichment = experiment(
    examples,
    'enrichment',
    'experiment enrichment {\n  for h in hidden all\n  for p in positions subject_last, last\n  measure attributes_rate of hidden h at p\n}',
    [hidden('h', [0, 1, 2, 3, 4]), positions('p', ['subject_last', 'last'])],
    (ex, k) => round(10 * Number(k['h']) + 20 * unit(`${ex}${k['p']}${k['h']}`), 2),
  );
  const baseline = experiment(examples, 'baseline', 'experiment baseline {\n  measure attributes_rate of subject_embeddings\n}', [], (ex) => 5 + ex);
  const cancel = (site: string) => experiment(
    examples,
    `cancel_${site}`,
    `experiment cancel_${site} {\n  for start in layers 0..2\n  cancel ${site} at layers start..start + 1 within 0..2\n  measure ${RATE}\n}`,
    [layers('start', 3)],
    (ex, k) => round(30 + 10 * Number(k['start']) + 5 * unit(`${site}${ex}${k['start']}`), 2),
    // `cancel attention` in the uniform mode blocks every key of its rows.
    site === 'attention' ? { fullyBlockedRows: 3 * examples } : {},
  );
  const noCancel = experiment(examples, 'no_cancel', `experiment no_cancel {\n  measure ${RATE}\n}`, [], (ex) => 60 + ex);
  const extractionSummary: ExtractionSummaryResult = {
    key: {}, layerVariable: 'l', layers: null, examples,
    probes: [
      { probe: 'extraction of attention l', site: 'attention', rateAnyLayer: 75, rateInLayers: null, meanEventLayers: 1.5, meanEventLayersAll: 1.125 },
      { probe: 'extraction of mlp l', site: 'mlp', rateAnyLayer: 50, rateInLayers: null, meanEventLayers: 1, meanEventLayersAll: 0.5 },
    ],
    cross: { both: 25, attentionOnly: 50, mlpOnly: 25, neither: 0, attentionFirst: 100 },
  };
  const extraction = experiment(
    examples,
    'extraction',
    'experiment extraction {\n  for l in layers all\n  measure extraction of attention l, extraction of mlp l, extraction of heads l\n  summarize extraction\n}',
    [layers('l', 4)],
    (ex, k, m) => event(`${ex}${k['l']}${m}`),
    { extraction: [extractionSummary], ties: 2 },
  );
  const patched = experiment(
    examples,
    'patched',
    'experiment patched {\n  for l in layers all\n  for source in hidden 0, 1\n  patch hidden l at positions subject with hidden source\n  measure extraction of attention l\n  summarize extraction\n}',
    [layers('l', 4), hidden('source', [0, 1])],
    (ex, k) => event(`p${ex}${k['l']}${k['source']}`),
    {
      extraction: [0, 1].map((source): ExtractionSummaryResult => ({
        key: { source }, layerVariable: 'l', layers: null, examples,
        probes: [{ probe: 'extraction of attention l', site: 'attention', rateAnyLayer: 25 + 50 * source, rateInLayers: null, meanEventLayers: 1, meanEventLayersAll: 0.5 }],
        cross: null,
      })),
    },
  );
  const bars = experiment(
    examples,
    'by_position',
    'experiment by_position {\n  for p in positions subject, last\n  measure attributes_rate of hidden 3 at p\n}',
    [positions('p', ['subject', 'last'])],
    (ex, k) => (k['p'] === 'subject' ? 40 + ex : 20 + ex),
  );
  const lensSweep = [hidden('h', [0, 1, 2])];
  const tokens: TokenRow[] = [];
  const lensValues: ValueRow[] = [];
  for (let ex = 0; ex < examples; ex++) {
    for (const h of [0, 1, 2]) {
      tokens.push({
        example: ex, key: { h }, measure: 'top_tokens 3 of hidden h at last', position: 4,
        tokens: h === 2 ? [` Target${ex}`, '<|endoftext|>', ` layer${h}`] : ['<|endoftext|>', ` ex${ex}`, ` layer${h}`],
      });
      lensValues.push({ example: ex, key: { h }, values: {} });
    }
  }
  const lensSource = 'experiment lens {\n  for h in hidden all\n  measure top_tokens 3 of hidden h at last\n}';
  const lens: ResultsExperiment = {
    name: 'lens', source: lensSource, ...planned(lensSource),
    sweeps: lensSweep, forwardPasses: 3 * examples, fullyBlockedRows: 0, series: [], values: lensValues, tokens,
  };
  // Integrated gradients over hidden states: per-group means as measures, and each position's
  // value per example (positionValues), which the report draws as a heatmap per fact.
  const attributionValue = (ex: number, h: number, position: number) => round(2 * unit(`a${ex}|${h}|${position}`) - 0.5);
  const attribution = experiment(
    examples,
    'attribution',
    'experiment attribution {\n  for h in hidden all\n  measure integrated_gradients of hidden h steps 8\n}',
    [hidden('h', [0, 1, 2, 3])],
    (ex, k, m) => round(2 * unit(`${ex}|${k['h']}|${m}`) - 0.5),
    {
      positionValues: Array.from({ length: examples }, (_, ex) => [0, 1, 2, 3].map((h) => ({
        example: ex, key: { h }, measure: 'integrated_gradients of hidden h steps 8', positions: [0, 1, 2, 3, 4], values: [0, 1, 2, 3, 4].map((p) => attributionValue(ex, h, p)),
      }))).flat(),
    },
  );
  const experiments = [knockout, flow, enrichment, baseline, cancel('mlp'), cancel('attention'), noCancel, extraction, patched, bars, lens, attribution];
  return {
    format: 'dissect-results/2',
    tool: { name: 'dissect', version: '0.1.0' },
    createdAt: '2025-01-31T12:00:00.000Z',
    command: ['run', 'rich.dissect', '--out', 'out'],
    provenance: {
      model: { path: '/m/gpt2.onnx', sha256: hash('a'), family: 'gpt2', layers: 4, heads: 3, vocab: 50257, expandedFusedOps: { Attention: 4, FastGelu: 4 } },
      tokenizer: { path: '/m/tokenizer.json', sha256: hash('b') },
      dataset: { path: '/d/counterfact.json', sha256: hash('c'), format: 'counterfact' },
      source: { path: '/p/rich.dissect', sha256: hash('d'), text: experiments.map((x) => x.source).join('\n\n') + '\n' },
      device: 'cpu',
      env: { NVIDIA_TF32_OVERRIDE: null },
      onnxruntime: { version: '1.30.0' },
      rows: { mode: 'last_position', reason: 'rows at the last position ran that token alone', lastPositionRows: 30, fullRows: 12, cleanPassRows: 6 },
    },
    choices: { knockout_window: 'centred_clipped', cancel_mlp: 'zero_preactivation', cancel_attention: 'uniform', attribution_target: 'log_probability', attribution_reduction: 'sum' },
    choiceMeanings: {
      knockout_window: 'k layers centred on l, clipped at the ends',
      cancel_attention: 'every score of the query is masked alike',
      cancel_mlp: "the MLP's pre-activations are set to 0 <so it still writes its bias>",
      attribution_target: 'y = log p(t), the log-softmax of the last position\'s logits at t',
      attribution_reduction: 'a position\'s value is Σ_d h_d · ∂y/∂h_d',
    },
    params: { measured: 3 },
    data: {
      total: examples + 3, kept: examples, dropped: { not_known: 2, subject_not_found: 1 },
      droppedFacts: [
        { id: examples, reason: 'not_known' }, { id: examples + 1, reason: 'not_known' },
        { id: examples + 2, reason: 'subject_not_found', detail: 'subject "<X>" not in the prompt' },
      ],
      filter: 'known', bos: 'none', limit: null, sample: null, seed: null,
    },
    examples: Array.from({ length: examples }, (_, i) => ({
      id: i,
      prompt: `Subject ${i} <b>is</b> in`,
      subject: `Subject ${i}`,
      target: `Target${i}`,
      tokens: ['Subject', ` ${i}`, ' <b>is</b>', ' in', ' the'],
      subjectRange: [0, 2] as const,
      subjectAtZero: true,
      cleanTop1: { id: 100 + i, token: ` Target${i}`, prob: 0.5 },
    })),
    experiments,
    ci: CI,
  };
}
