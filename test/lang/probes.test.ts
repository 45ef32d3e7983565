// The constructs of the paper's other experiments: attributes, hidden sweeps, integer
// arithmetic, `within`, cancel, patch, probes and summaries. Checked programs are compared
// whole; every diagnostic at its line:column with its message.

import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../src/lang/grammar-export.js';
import { parseDissect } from '../../src/lang/index.js';
import type { Experiment, Program } from '../../src/lang/program.js';
import { brief, FILE, header, problems, run, syntaxProblems } from './helpers.js';

const span = (line: number, column: number) => ({ file: FILE, line, column });
const v = (name: string) => ({ kind: 'var', name }) as const;
const int = (value: number) => ({ kind: 'int', value }) as const;
const named = (name: 'subject' | 'subject_last' | 'last' | 'all') => ({ kind: 'named', name }) as const;

const source = `# every construct added for the paper's other experiments
param attrs = "attributes.json"
param k     = 5
param top   = 9
model "m.onnx" tokenizer "t.json"
dataset known "k.json"
attributes paragraphs attrs candidates 60 keep 20 min_length 0 stopwords none
choose projection = final_norm_unembedding
choose cancel_mlp = zero_update

experiment enrichment {
  for h in hidden all
  for p in positions subject_last, last
  measure attributes_rate of hidden h at p, rank
}

experiment sublayers {
  for start in layers 0..top
  cancel mlp at layers start..start + 10 within 0..top
  cancel attention at layers window(start, 3) at positions subject
  measure attributes_rate of hidden top + 1 at subject_last
}

experiment extraction {
  for l in layers all
  measure extraction of attention l, extraction of mlp l, extraction of heads l
  measure target_rank of attention l at last, target_rank of hidden l + 1 at subject_last
  measure top_tokens k of hidden l + 1, top_tokens 3 of mlp l
  measure attention_weight subject -> last at layer l, attention_weight subject_last + [0] -> last at layer l heads each
  measure probability
  summarize extraction
  summarize extraction in layers 4..7
}

experiment control_b {
  for l in layers 0..10
  for src in hidden 0, 1, 5..6
  patch hidden l at positions subject with hidden src
  measure extraction of attention l
}

experiment control_b_mean {
  for l in layers 0..10
  for src in hidden 0, 1, 5..6
  patch hidden l + 1 at positions last with mean hidden 12 - src
  measure extraction of attention l
}
`;

const lines = (from: number, to: number) => source.split('\n').slice(from - 1, to).join('\n');
const hiddenAll = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
const layersAll = hiddenAll.slice(0, 12);
const lPlus1 = { kind: 'add', left: v('l'), right: int(1) } as const;

const experiments: Experiment[] = [
  {
    name: 'enrichment',
    sweeps: [
      { kind: 'hidden', variable: 'h', values: hiddenAll, span: span(12, 3) },
      {
        kind: 'positions',
        variable: 'p',
        values: [{ label: 'subject_last', set: named('subject_last') }, { label: 'last', set: named('last') }],
        span: span(13, 3),
      },
    ],
    interventions: [],
    measures: ['rank'],
    probes: [{
      kind: 'attributes_rate',
      site: { kind: 'hidden', index: v('h') },
      at: v('p'),
      label: 'attributes_rate of hidden h at p',
      span: span(14, 11),
    }],
    summaries: [],
    span: span(11, 1),
    source: lines(11, 15),
  },
  {
    name: 'sublayers',
    sweeps: [{ kind: 'layers', variable: 'start', values: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], span: span(18, 3) }],
    interventions: [
      {
        kind: 'cancel',
        sublayer: 'mlp',
        layers: {
          kind: 'within',
          set: { kind: 'range', from: v('start'), to: { kind: 'add', left: v('start'), right: int(10) } },
          from: int(0),
          to: int(9),
        },
        positions: named('all'),
        span: span(19, 3),
      },
      {
        kind: 'cancel',
        sublayer: 'attention',
        layers: { kind: 'window', center: v('start'), size: int(3) },
        positions: named('subject'),
        span: span(20, 3),
      },
    ],
    measures: [],
    probes: [{
      kind: 'attributes_rate',
      site: { kind: 'hidden', index: int(10) },
      at: named('subject_last'),
      label: 'attributes_rate of hidden top + 1 at subject_last',
      span: span(21, 11),
    }],
    summaries: [],
    span: span(17, 1),
    source: lines(17, 22),
  },
  {
    name: 'extraction',
    sweeps: [{ kind: 'layers', variable: 'l', values: layersAll, span: span(25, 3) }],
    interventions: [],
    measures: ['probability'],
    probes: [
      { kind: 'extraction', site: { kind: 'attention', layer: v('l') }, at: named('last'), label: 'extraction of attention l', span: span(26, 11) },
      { kind: 'extraction', site: { kind: 'mlp', layer: v('l') }, at: named('last'), label: 'extraction of mlp l', span: span(26, 38) },
      { kind: 'extraction', site: { kind: 'heads', layer: v('l') }, at: named('last'), label: 'extraction of heads l', span: span(26, 59) },
      {
        kind: 'target_rank', site: { kind: 'attention', layer: v('l') }, at: named('last'),
        label: 'target_rank of attention l at last', span: span(27, 11),
      },
      {
        kind: 'target_rank', site: { kind: 'hidden', index: lPlus1 }, at: named('subject_last'),
        label: 'target_rank of hidden l + 1 at subject_last', span: span(27, 47),
      },
      { kind: 'top_tokens', k: 5, site: { kind: 'hidden', index: lPlus1 }, at: named('last'), label: 'top_tokens k of hidden l + 1', span: span(28, 11) },
      { kind: 'top_tokens', k: 3, site: { kind: 'mlp', layer: v('l') }, at: named('last'), label: 'top_tokens 3 of mlp l', span: span(28, 41) },
      {
        kind: 'attention_weight', source: named('subject'), target: named('last'), layer: v('l'), heads: 'all',
        label: 'attention_weight subject -> last at layer l', span: span(29, 11),
      },
      {
        kind: 'attention_weight',
        source: { kind: 'union', left: named('subject_last'), right: { kind: 'indices', indices: [0] } },
        target: named('last'),
        layer: v('l'),
        heads: 'each',
        label: 'attention_weight subject_last + [0] -> last at layer l heads each',
        span: span(29, 56),
      },
    ],
    summaries: [
      { kind: 'extraction', span: span(31, 3) },
      { kind: 'extraction', layers: { kind: 'range', from: int(4), to: int(7) }, span: span(32, 3) },
    ],
    span: span(24, 1),
    source: lines(24, 33),
  },
  {
    name: 'control_b',
    sweeps: [
      { kind: 'layers', variable: 'l', values: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], span: span(36, 3) },
      { kind: 'hidden', variable: 'src', values: [0, 1, 5, 6], span: span(37, 3) },
    ],
    interventions: [
      { kind: 'patch', layer: v('l'), positions: named('subject'), source: { kind: 'hidden', index: v('src') }, span: span(38, 3) },
    ],
    measures: [],
    probes: [{ kind: 'extraction', site: { kind: 'attention', layer: v('l') }, at: named('last'), label: 'extraction of attention l', span: span(39, 11) }],
    summaries: [],
    span: span(35, 1),
    source: lines(35, 40),
  },
  {
    name: 'control_b_mean',
    sweeps: [
      { kind: 'layers', variable: 'l', values: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], span: span(43, 3) },
      { kind: 'hidden', variable: 'src', values: [0, 1, 5, 6], span: span(44, 3) },
    ],
    interventions: [
      {
        kind: 'patch',
        layer: lPlus1,
        positions: named('last'),
        source: { kind: 'mean_hidden', index: { kind: 'sub', left: int(12), right: v('src') } },
        span: span(45, 3),
      },
    ],
    measures: [],
    probes: [{ kind: 'extraction', site: { kind: 'attention', layer: v('l') }, at: named('last'), label: 'extraction of attention l', span: span(46, 11) }],
    summaries: [],
    span: span(42, 1),
    source: lines(42, 47),
  },
];

const expected: Program = {
  file: FILE,
  siteOverrides: [],
  model: { onnx: '/virtual/exp/m.onnx', tokenizer: '/virtual/exp/t.json', tokenizerSpan: span(5, 26), span: span(5, 1) },
  dataset: { format: 'known', path: '/virtual/exp/k.json', pathSpan: span(6, 15), span: span(6, 1) },
  attributes: {
    format: 'paragraphs',
    path: '/virtual/exp/attributes.json',
    pathSpan: span(7, 23),
    candidates: 60,
    keep: 20,
    minLength: 0,
    stopwords: 'none',
    span: span(7, 1),
  },
  filter: 'known',
  bos: 'none',
  choices: {
    knockout_window: 'centred_clipped',
    knockout_value: 'replace_half_min',
    ci: 'bootstrap_percentile',
    projection: 'final_norm_unembedding',
    cancel_mlp: 'zero_update',
    cancel_attention: 'uniform',
    head_mapping_side: 'unembedding',
    mapping_subject_token: 'last',
    head_mapping_normalisation: 'none',
    recompute: 'renormalise',
    attribution_target: 'log_probability',
    attribution_reduction: 'sum',
  },
  params: { attrs: 'attributes.json', k: 5, top: 9 },
  experiments,
};

test('a file using every new construct checks to the expected Program', (t) => {
  const r = run(source);
  t.deepEqual(brief(r.diagnostics), []);
  t.deepEqual(r.program, expected);
});

test('attributes: the paper\'s settings are the defaults, and options come in any order', (t) => {
  const r = run(`${header}\nattributes json "a.json"\nexperiment e {\n  measure attributes_rate of hidden 3\n}\n`);
  t.deepEqual(brief(r.diagnostics), []);
  t.deepEqual(r.program!.attributes, {
    format: 'json', path: '/virtual/exp/a.json', pathSpan: span(4, 17), candidates: 500, keep: 50, minLength: 3, stopwords: 'english', span: span(4, 1),
  });
  const big = { layers: 12, heads: 4, vocab: 50257 };
  const o = run(`${header}\nparam n = 7\nattributes json "a.json" stopwords english keep n\n  candidates 9\nexperiment e {\n  measure attributes_rate of hidden 3\n}\n`, { shape: big });
  t.deepEqual(brief(o.diagnostics), []);
  t.like(o.program!.attributes, { candidates: 9, keep: 7, minLength: 3, stopwords: 'english' });
});

test('the example program of the sublayer experiment checks against GPT-2 XL\'s shape', (t) => {
  const r = run(`${header}\nattributes json "a.json"\nexperiment sublayers {\n  for start in layers 0..39\n` +
    '  cancel mlp at layers start..start + 10 within 0..39\n  measure attributes_rate of hidden 41 at subject_last\n}\n',
  { shape: { layers: 48, heads: 25, vocab: 50257 } });
  t.deepEqual(brief(r.diagnostics), []);
  const x = r.program!.experiments[0]!;
  t.deepEqual(x.interventions[0], {
    kind: 'cancel',
    sublayer: 'mlp',
    layers: { kind: 'within', set: { kind: 'range', from: v('start'), to: { kind: 'add', left: v('start'), right: int(10) } }, from: int(0), to: int(39) },
    positions: named('all'),
    span: span(7, 3),
  });
});

test('integer arithmetic is left-associative; constants and parameters fold', (t) => {
  const r = run(`${header}\nparam a = 2\nexperiment e {\n  for l in layers 0..3\n` +
    '  block last -> last at layers l + a - 1\n  block last -> last at layers a + 3 - 1..l - 0 + 8\n  measure rank\n}\n');
  t.deepEqual(brief(r.diagnostics), []);
  const [one, two] = r.program!.experiments[0]!.interventions;
  t.deepEqual(one?.kind === 'block' && one.layers, { kind: 'single', layer: { kind: 'sub', left: { kind: 'add', left: v('l'), right: int(2) }, right: int(1) } });
  t.deepEqual(two?.kind === 'block' && two.layers, {
    kind: 'range', from: int(4), to: { kind: 'add', left: { kind: 'sub', left: v('l'), right: int(0) }, right: int(8) },
  });
});

test('new keywords still work as names', (t) => {
  const r = run([
    'param hidden = 2', 'param layer = 3', 'param attributes = "a.json"', 'param mean = 1', 'param of = 4',
    'model "m.onnx" tokenizer "t.json"', 'dataset known "k.json"', 'attributes json attributes',
    'positions within = subject', 'experiment e {',
    '  for patch in hidden hidden..of', '  block within -> last at layers layer heads mean',
    '  measure attributes_rate of hidden patch at within, attention_weight within -> last at layer layer', '}',
  ].join('\n'));
  t.deepEqual(brief(r.diagnostics), []);
  const x = r.program!.experiments[0]!;
  t.deepEqual(x.sweeps[0], { kind: 'hidden', variable: 'patch', values: [2, 3, 4], span: span(11, 3) });
  t.deepEqual(x.probes.map((p) => p.label), ['attributes_rate of hidden patch at within', 'attention_weight within -> last at layer layer']);
});

test('a measure statement mixes output measures and probes; probes keep source order', (t) => {
  const r = run(`${header}\nexperiment e {\n  measure rank, extraction of mlp 2\n  measure probability, target_rank of hidden 0 at [0]\n}\n`);
  const x = r.program!.experiments[0]!;
  t.deepEqual(x.measures, ['rank', 'probability']);
  t.deepEqual(x.probes.map((p) => p.label), ['extraction of mlp 2', 'target_rank of hidden 0 at [0]']);
});

test('norm: the L2 norm of a hidden state, a block\'s update or each head\'s share, at the positions written', (t) => {
  const r = run(`${header}\nexperiment e {\n  for h in hidden 0..2\n  measure norm of hidden h at subject, norm of heads 1, norm of mlp 0\n}\n`);
  const x = r.program!.experiments[0]!;
  t.deepEqual(x.probes.map((p) => [p.kind, 'site' in p ? p.site : undefined, 'at' in p ? p.at : undefined]), [
    ['norm', { kind: 'hidden', index: v('h') }, named('subject')],
    ['norm', { kind: 'heads', layer: int(1) }, named('last')],
    ['norm', { kind: 'mlp', layer: int(0) }, named('last')],
  ]);
  t.false(x.probes.some((p) => 'k' in p));
});

test('norm: no count, no subject_embeddings, no without', (t) => {
  const text = [
    'experiment e {',
    '  measure norm 3 of hidden 1, norm of subject_embeddings, norm of attention 1 without subject',
    '}',
  ].join('\n');
  t.deepEqual(body(text), [
    '5:16 norm takes no count',
    '5:39 norm cannot read subject_embeddings',
    '5:59 norm cannot read a recomputed attention update (without)',
  ]);
  t.deepEqual(hints(text), [
    'only top_tokens takes a count: top_tokens <k> of <site>',
    'subject_embeddings is read by attributes_rate, target_rank, top_tokens; norm reads hidden, attention, mlp, heads',
    'syntax: extraction | target_rank | top_tokens <k> of attention <l> without <positions>',
  ]);
});

// ---- diagnostics ---------------------------------------------------------------------------

/** Checks `text` placed after the 3-line header (so its line 1 is file line 4). */
function body(text: string, shape?: { layers: number; heads: number; vocab: number }): string[] {
  return problems(`${header}\n${text}`, shape ? { shape } : {});
}
function hints(text: string): string[] {
  return run(`${header}\n${text}`).diagnostics.map((d) => d.hint ?? '');
}

test('out-of-range integer expressions name the binding, once per expression', (t) => {
  t.deepEqual(body([
    'experiment e {',
    '  for l in layers all',
    '  for h in hidden all',
    '  measure extraction of attention l + 1, target_rank of mlp l - 1',
    '  measure target_rank of hidden h + 1, target_rank of hidden l + h',
    '  block last -> last at layers h',
    '}',
  ].join('\n')), [
    '7:35 layer 12 is out of range when l = 11: the model has 12 layers (0..11)',
    '7:61 layer -1 is out of range when l = 0: the model has 12 layers (0..11)',
    '8:33 hidden 13 is out of range when h = 12: hidden states are 0..12 (0 = the embedding output)',
    '8:62 hidden 23 is out of range when l = 11, h = 12: hidden states are 0..12 (0 = the embedding output)',
    '9:32 layer 12 is out of range when h = 12: the model has 12 layers (0..11)',
  ]);
});

test('the out-of-range message for hidden states of a 48-layer model', (t) => {
  const r = run(`${header}\nexperiment e {\n  for l in hidden all\n  measure target_rank of hidden l + 1\n}\n`,
    { shape: { layers: 48, heads: 25, vocab: 50257 } });
  t.deepEqual(brief(r.diagnostics), ['6:33 hidden 49 is out of range when l = 48: hidden states are 0..48 (0 = the embedding output)']);
  t.is(r.diagnostics[0]!.hint, 'hidden l is the input of block l; hidden 48 is the output of the last block');
});

test('hidden sweeps: range, window and within', (t) => {
  t.deepEqual(body('experiment e {\n  for h in hidden 0..13, window(1, 2), 3 within 0..4, 5..2\n  measure target_rank of hidden h\n}\n'), [
    '5:22 hidden 13 is out of range: hidden states are 0..12 (0 = the embedding output)',
    '5:26 a hidden sweep cannot use window(...)',
    '5:42 a hidden sweep cannot use within',
    '5:55 empty hidden range 5..2',
  ]);
  t.deepEqual(body('experiment e {\n  for l in layers 0..3 within 0..2\n  block last -> last at layers l\n  measure rank\n}\n'),
    ['5:24 a layer sweep cannot use within']);
});

test('within: inner layers may leave the model, the bounds may not; empty clipped sets warn', (t) => {
  t.deepEqual(body([
    'experiment e {',
    '  for start in layers all',
    '  cancel mlp at layers start + 5..start + 30 within 0..9',
    '  cancel mlp at layers start..start + 2 within 0..12',
    '  cancel attention at layers window(start + 20, 3) within 2..4',
    '  block last -> last at layers 3..1 within 0..4',
    '  block last -> last at layers 2 within 5..3',
    '  measure rank',
    '}',
  ].join('\n')), [
    '6:24 warning: layer set start + 5..start + 30 within 0..9 is empty when start = 5',
    '7:51 layer 12 is out of range: the model has 12 layers (0..11)',
    '8:30 warning: layer set window(start + 20, 3) within 2..4 is empty when start = 0',
    '9:32 empty layer range 3..1',
    '10:41 empty layer range 5..3',
  ]);
});

test('a layer range with a sweep variable that is empty for some binding is a warning', (t) => {
  t.deepEqual(body('experiment e {\n  for l in layers all\n  block last -> last at layers l..5\n  measure rank\n}\n'),
    ['6:32 warning: layer range l..5 is empty when l = 6']);
});

test('window sizes computed from a sweep variable', (t) => {
  t.deepEqual(body('experiment e {\n  for k in layers 1..3\n  block last -> last at layers window(5, k - 1)\n  measure rank\n}\n'),
    ['6:42 window size must be at least 1, got 0 when k = 1']);
});

test('patch: block inputs only as the target, any hidden state as the source', (t) => {
  t.deepEqual(body([
    'experiment e {',
    '  patch hidden 12 at positions subject with hidden 13',
    '  measure rank',
    '}',
    'experiment f {',
    '  for l in layers all',
    '  patch hidden l + 1 at positions subject with mean hidden l + 1',
    '  measure rank',
    '}',
    'experiment g {',
    '  for l in layers all',
    '  patch hidden l at positions l with hidden 0',
    '  measure rank',
    '}',
  ].join('\n')), [
    '5:16 hidden 12 cannot be patched: only block inputs, hidden 0..11, can be patched',
    '5:52 hidden 13 is out of range: hidden states are 0..12 (0 = the embedding output)',
    '10:16 hidden 12 cannot be patched when l = 11: only block inputs, hidden 0..11, can be patched',
    "15:31 sweep variable 'l' ranges over layers, but a position set is expected here",
  ]);
});

test('an experiment patches once per row: a second patch statement is an error at it, with the first one\'s line', (t) => {
  const r = run(`${header}\nexperiment e {\n  for l in layers all\n  patch hidden l at positions subject with hidden 0\n`
    + '  measure rank\n  patch hidden 1 at positions last with mean hidden 2\n  patch hidden 2 at positions last with hidden 3\n}\n');
  t.deepEqual(brief(r.diagnostics), [
    '8:3 an experiment has one patch statement at most: each row patches one hidden state',
    '9:3 an experiment has one patch statement at most: each row patches one hidden state',
  ]);
  t.is(r.diagnostics[0]!.hint, 'the first is at line 6; put this patch in an experiment of its own');
  t.is(r.program, undefined);
});

test('cancel: an unknown sublayer', (t) => {
  t.deepEqual(body('experiment e {\n  cancel mpl at layers 0\n  cancel attn at layers 1\n  measure rank\n}\n'),
    ["5:10 unknown sublayer 'mpl'", "6:10 unknown sublayer 'attn'"]);
  t.deepEqual(hints('experiment e {\n  cancel mlb at layers 0\n  measure rank\n}\n'), ["did you mean 'mlp'?"]);
});

test('probes: counts, sites and output measures', (t) => {
  t.deepEqual(body([
    'experiment e {',
    '  measure top_tokens 0 of hidden 1, top_tokens 501 of hidden 1, top_tokens of hidden 3',
    '  measure extraction 3 of mlp 1, extraction, rank of hidden 2, probability 4',
    '  measure extraction of mpl 3, top_tokens 2 of heads 2, attention_weight, extractoin of mlp 1',
    '}',
  ].join('\n')), [
    '5:22 top_tokens needs at least 1 token, got 0',
    '5:48 top_tokens 501 is larger than the vocabulary (500)',
    '5:65 top_tokens needs a count',
    '6:22 extraction takes no count',
    '6:34 extraction needs a site',
    "6:54 measure 'rank' reads the model's output and takes no site",
    "6:76 measure 'probability' reads the model's output and takes no count",
    "7:25 unknown site 'mpl'",
    '7:48 top_tokens cannot read heads',
    '7:57 attention_weight needs source and target positions and a layer',
    "7:75 unknown measure 'extractoin'",
  ]);
  t.deepEqual(body('experiment e {\n  measure top_tokens 60000 of hidden 1\n}\n', { layers: 12, heads: 4, vocab: 50257 }),
    ['5:22 top_tokens 60000 is larger than the vocabulary (50257)']);
});

test('probes: duplicates, heads modes, sweep variables as counts', (t) => {
  t.deepEqual(body([
    'experiment e {',
    '  for l in layers 0..1',
    '  measure extraction of attention l, extraction of  attention\tl, extraction of attention l at last',
    '  measure attention_weight subject -> last at layer l heads every, top_tokens l of mlp 1',
    '}',
  ].join('\n')), [
    "6:38 probe 'extraction of attention l' is listed twice",
    "7:61 unknown heads mode 'every' for attention_weight",
    "7:79 sweep variable 'l' cannot be a count",
  ]);
});

test('attributes_rate needs an attributes statement, at each use', (t) => {
  const text = 'experiment e {\n  measure attributes_rate of hidden 1, attributes_rate of hidden 2 at subject_last\n}\n';
  t.deepEqual(body(text), [
    '5:11 attributes_rate needs an attributes statement',
    '5:40 attributes_rate needs an attributes statement',
  ]);
  t.is(hints(text)[0], 'add an attributes statement, e.g. attributes json "attributes.json" (a map from subject to attribute strings)');
  t.deepEqual(body('experiment e {\n  measure attributes_rate of heads 1\n}\nattributes json "a"\n'),
    ['5:30 attributes_rate cannot read heads']);
});

test('attributes statement errors', (t) => {
  t.deepEqual(body([
    'attributes jsn "a.json" candidates 0 kep 3 keep 0 keep 2 stopwords englsh min_length 4',
    'attributes json "b.json"',
    'experiment e { measure attributes_rate of hidden 1 }',
  ].join('\n')), [
    "4:12 unknown attributes format 'jsn'",
    '4:36 candidates must be at least 1, got 0',
    "4:38 unknown attributes option 'kep'",
    '4:49 keep must be at least 1, got 0',
    "4:51 attributes option 'keep' is given twice",
    "4:68 unknown stopword list 'englsh'",
    "5:1 duplicate 'attributes' statement",
  ]);
  t.deepEqual(hints('attributes jsn "a" stopwords 3\nexperiment e { measure attributes_rate of hidden 1 }\n'), [
    "did you mean 'json'? formats: json (a map from subject to strings), paragraphs (a CSV with columns subject, paragraphs)",
    'allowed: english (NLTK\'s English stopwords), none (no stopword filter)',
  ]);
  t.deepEqual(body('attributes json "a" candidates 501\nexperiment e { measure attributes_rate of hidden 1 }\n'),
    ['4:32 candidates 501 is larger than the vocabulary (500)']);
});

test('the default candidates (500) are checked against the vocabulary too, at the statement: run would refuse them', (t) => {
  const tiny = { layers: 12, heads: 4, vocab: 264 }; // the default model's
  t.deepEqual(body('attributes json "a"\nexperiment e { measure attributes_rate of hidden 1 }\n', tiny),
    ['4:1 candidates 500 (the default) is larger than the vocabulary (264)']);
  t.deepEqual(run(`${header}\nattributes json "a"\nexperiment e { measure attributes_rate of hidden 1 }\n`, { shape: tiny }).diagnostics.map((d) => d.hint),
    ["the projection ranks 264 tokens; add candidates 264 or fewer (the paper takes 500 of GPT-2's 50257)"]);
  t.deepEqual(body('attributes json "a" candidates 264 keep 10\nexperiment e { measure attributes_rate of hidden 1 }\n', tiny), []);
});

test('attributes warnings: keep above candidates, and an attributes statement nothing uses', (t) => {
  t.deepEqual(body('attributes json "a" candidates 10 keep 20\nexperiment e { measure attributes_rate of hidden 1 }\n'),
    ['4:35 warning: keep 20 is more than candidates 10: at most 10 candidates can be kept']);
  t.deepEqual(body('attributes json "a"\nexperiment e { measure rank }\n'),
    ['4:1 warning: the attributes statement is not used: no experiment measures attributes_rate']);
});

test('summarize extraction: needs one layer sweep and an extraction probe', (t) => {
  t.deepEqual(body([
    'experiment a {',
    '  for h in hidden 0..2',
    '  measure target_rank of hidden h',
    '  summarize extraction',
    '  summarize extractoin',
    '}',
    'experiment b {',
    '  for l in layers 0..3',
    '  for m in layers 0..3',
    '  measure extraction of attention l + m',
    '  summarize extraction in layers l..5',
    '}',
    'experiment c {',
    '  for l in layers 0..3',
    '  measure extraction of attention l',
    '  summarize extraction in layers 6..7',
    '}',
  ].join('\n')), [
    '7:3 summarize extraction needs a layer sweep in its experiment',
    '7:3 summarize extraction needs an extraction probe in its experiment',
    "8:13 unknown summary 'extractoin'",
    "14:3 summarize extraction needs exactly one layer sweep, but this experiment has 2 ('l', 'm')",
    "14:34 sweep variable 'l' cannot be used in a summary's layers",
    "19:34 warning: the summary counts no layer: none of 6..7 is in the sweep over 'l'",
  ]);
  t.deepEqual(hints('experiment a {\n  for l in layers 0..2\n  measure rank\n  summarize extraction\n}\n').slice(0, 2), [
    'every value of the sweep gives the same configuration; use the variable in an intervention or a probe, or remove the for',
    'add: measure extraction of attention l (or mlp l, heads l, hidden l)',
  ]);
});

test('summarize extraction adds no error of its own when its layer sweep has one, or the model cannot be read', (t) => {
  const experiment = (sweep: string) => `${header}\nexperiment e {\n  for l in layers ${sweep}\n  measure extraction of attention l\n  summarize extraction\n}\n`;
  t.deepEqual(problems(experiment('all'), { shape: { error: 'no such file or folder' } }),
    ['2:7 cannot read the model /virtual/exp/m.onnx: no such file or folder']);
  t.deepEqual(problems(experiment('0..99')), ['5:22 layer 99 is out of range: the model has 12 layers (0..11)']);
});

test('sweep variables used only by probes are used', (t) => {
  t.deepEqual(body('experiment e {\n  for h in hidden 1, 2\n  for p in positions last, subject_last\n  measure target_rank of hidden h at p\n}\n'), []);
});

test('hidden sweep variables as position sets, and position variables as hidden states', (t) => {
  t.deepEqual(body('experiment e {\n  for h in hidden 1\n  for p in positions last\n  measure target_rank of hidden p at h\n}\n'), [
    "7:33 sweep variable 'p' ranges over position sets, but a hidden-state index is expected here",
    "7:38 sweep variable 'h' ranges over hidden states, but a position set is expected here",
  ]);
});

test('syntax errors of the new statements', (t) => {
  t.deepEqual(syntaxProblems('experiment e {\n  patch hidden 3 at positions subject hidden 2\n}\n'),
    ["2:39 expected 'with', found 'hidden'"]);
  t.deepEqual(syntaxProblems('experiment e {\n  cancel mlp at layer 3\n}\n'),
    ["2:17 expected 'layers', found 'layer'", "2:23 expected '}', found '3'"]);
  t.deepEqual(syntaxProblems('attributes json "a.json" candidates\nexperiment e { measure rank }\n'),
    ['1:36 expected an integer or a name, found the end of the line']);
  t.deepEqual(syntaxProblems('experiment e {\n  measure extraction of attention\n  summarize extraction\n}\n'),
    ['2:34 expected an integer or a name, found the end of the line']);
  t.deepEqual(syntaxProblems('experiment e {\n  for l in layers 0..3\n  block last -> last at layers l +\n  measure rank\n}\n'),
    ['3:35 expected an integer or a name, found the end of the line']);
});

test('every example file parses', (t) => {
  const dir = join(repoRoot, 'examples');
  const files = readdirSync(dir).filter((f) => f.endsWith('.dissect'));
  t.true(files.length > 0);
  for (const f of files) {
    const path = join(dir, f);
    t.deepEqual(parseDissect(readFileSync(path, 'utf8'), path).diagnostics, [], f);
  }
});
