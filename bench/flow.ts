// The information-flow sweep as the benchmarks run it: examples/information-flow.dissect
// with `filter none` (random weights know no fact, so `known` would keep none) and the
// layers of the sweep as a parameter (the XL bench times its baselines on a sample of them).

export interface FlowSource {
  readonly model: string;
  readonly tokenizer: string;
  readonly dataset: { readonly format: 'counterfact' | 'known'; readonly path: string };
  readonly window: number;
  /** The centres of the blocked windows: every layer, or these. */
  readonly layers: 'all' | readonly number[];
}

export function informationFlowSource(s: FlowSource): string {
  return [
    `model "${s.model}" tokenizer "${s.tokenizer}"`,
    `dataset ${s.dataset.format} "${s.dataset.path}"`,
    'filter none',
    'experiment information_flow {',
    `  for l in layers ${s.layers === 'all' ? 'all' : s.layers.join(', ')}`,
    '  for blocked in positions subject, nonsubject, last',
    `  block blocked -> last at layers window(l, ${s.window})`,
    '  measure probability_change, probability, rank',
    '}',
    '',
  ].join('\n');
}
