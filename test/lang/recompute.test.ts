// `<probe> of attention l without S`: control A's local recomputation. Syntax, checks,
// the recompute choice, and what the planner makes of it.

import test from 'ava';
import type { Program } from '../../src/lang/program.js';
import { planProgram } from '../../src/plan/plan.js';
import { header, problems, run, shape } from './helpers.js';

function checked(body: string, extra = ''): Program {
  const r = run(`${header}\n${extra}\n${body}\n`);
  if (!r.program) throw new Error(r.diagnostics.map((d) => `${d.span.line}:${d.span.column} ${d.message}`).join('\n'));
  return r.program;
}

test('without takes any position set, before an optional at last', (t) => {
  const p = checked(`experiment local {
  for l in layers 3, 5
  measure extraction of attention l without subject_last + last, target_rank of attention l without subject_last + last at last
  measure top_tokens 4 of attention l without subject_last + last, extraction of attention l
}`);
  const probes = p.experiments[0]!.probes;
  const union = { kind: 'union', left: { kind: 'named', name: 'subject_last' }, right: { kind: 'named', name: 'last' } };
  t.deepEqual(probes.map((x) => ('without' in x ? x.without : undefined)), [union, union, union, undefined]);
  t.deepEqual(probes.map((x) => x.label), [
    'extraction of attention l without subject_last + last', 'target_rank of attention l without subject_last + last at last',
    'top_tokens 4 of attention l without subject_last + last', 'extraction of attention l',
  ]);
  t.is(p.choices['recompute'], 'renormalise');
  t.is(checked('experiment e {\n  measure extraction of attention 1 without all - (subject_last + last)\n}', 'choose recompute = paper_resoftmax')
    .choices['recompute'], 'paper_resoftmax');
});

test('a sweep variable can be the removed set', (t) => {
  const p = checked(`experiment local {
  for l in layers all
  for s in positions subject, last, all - [0], all
  measure extraction of attention l without s
}`);
  t.deepEqual(p.experiments[0]!.probes[0], {
    kind: 'extraction', site: { kind: 'attention', layer: { kind: 'var', name: 'l' } }, at: { kind: 'named', name: 'last' },
    without: { kind: 'var', name: 's' }, label: 'extraction of attention l without s', span: p.experiments[0]!.probes[0]!.span,
  });
});

test('without: only extraction, target_rank and top_tokens of attention, at last, one set per experiment', (t) => {
  const e = (m: string) => problems(`${header}\nexperiment e {\n  for l in layers all\n  ${m}\n}\n`);
  t.deepEqual(e('measure extraction of mlp l without subject'), ['6:25 without recomputes an attention update; it cannot read mlp']);
  t.deepEqual(e('measure target_rank of heads l without subject'), ['6:26 without recomputes an attention update; it cannot read heads']);
  t.deepEqual(e('measure extraction of attention l without subject at subject_last'), ['6:56 a recomputed attention update exists at the last position only']);
  t.deepEqual(problems(`${header}\nattributes json "a.json"\nexperiment e {\n  for l in layers all\n  measure attributes_rate of attention l without subject\n}\n`),
    ['7:11 attributes_rate cannot read a recomputed attention update (without)']);
  t.deepEqual(e('measure extraction of attention l without subject, target_rank of attention l without last'),
    ["6:54 an experiment recomputes with one removed set per row, but 'target_rank of attention l without last' and 'extraction of attention l without subject' remove different sets"]);
  const hint = run(`${header}\nexperiment e {\n  measure extraction of attention 1 without subject, extraction of attention 2 without last\n}\n`).diagnostics[0]!.hint!;
  t.regex(hint, /for s in positions/);
  t.deepEqual(e('measure extraction of attention l without nosuch'), ["6:45 unknown position set 'nosuch'"]);
  t.deepEqual(e('measure extraction of attention l without [0] at [-1]'), []);
  t.deepEqual(problems(`${header}\nchoose recompute = resoftmax\nexperiment e {\n  measure rank\n}\n`),
    ["4:20 unknown value 'resoftmax' for choice 'recompute'"]);
});

test('the planner: a recomputed site, the row\'s removed set, and the mode on the projection request', (t) => {
  const p = checked(`experiment local {
  for l in layers 2, 4
  for s in positions subject, all - last
  measure extraction of attention l without s, target_rank of attention l at last
}`, 'choose recompute = paper_resoftmax');
  const plan = planProgram(p, shape);
  const rows = plan.experiments[0]!.rows;
  t.deepEqual(rows.map((r) => r.recompute), [
    { kind: 'named', name: 'subject' },
    { kind: 'difference', left: { kind: 'named', name: 'all' }, right: { kind: 'named', name: 'last' } },
    { kind: 'named', name: 'subject' },
    { kind: 'difference', left: { kind: 'named', name: 'all' }, right: { kind: 'named', name: 'last' } },
  ]);
  t.deepEqual(rows[0]!.probes.map((x) => ('site' in x ? `${x.site} ${x.layer} k${x.k}` : '')), ['recomputed 2 k2', 'attention 2 k1']);
  t.deepEqual(plan.variant.projections, [
    { site: 'recomputed', via: 'embedding', k: 2, vocabLimit: shape.vocab, layers: [2, 4], recompute: 'paper_resoftmax' },
    { site: 'attention', via: 'embedding', k: 1, vocabLimit: shape.vocab, layers: [2, 4] },
  ]);
  // rows without a `without` probe carry no set
  const plain = planProgram(checked('experiment e {\n  measure extraction of attention 1\n}'), shape);
  t.is(plain.experiments[0]!.rows[0]!.recompute, undefined);
  t.false(plain.variant.projections!.some((x) => x.site === 'recomputed'));
});
