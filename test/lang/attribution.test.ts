// `attribution of hidden h [at P]` and `integrated_gradients of hidden h [steps n] [baseline
// mean | zero] [at P]`: syntax, checks with their positioned errors, and the plan (the attribution
// variant, passes per fact, descriptors per group of positions).

import test from 'ava';
import type { Program } from '../../src/lang/program.js';
import { planProgram } from '../../src/plan/plan.js';
import { measureText } from '../../src/report/quantity.js';
import { header, problems, run, shape } from './helpers.js';

function checked(body: string, extra = ''): Program {
  const r = run(`${header}\n${extra}\n${body}\n`);
  if (!r.program) throw new Error(r.diagnostics.map((d) => `${d.span.line}:${d.span.column} ${d.message}`).join('\n'));
  return r.program;
}

const all = { kind: 'named', name: 'all' };
const hiddenH = { kind: 'hidden', index: { kind: 'var', name: 'h' } };

test('attribution reads every position by default; integrated gradients take steps and a baseline in any order', (t) => {
  const p = checked(`experiment grads {
  for h in hidden all
  measure attribution of hidden h, attribution of hidden h at subject_last
  measure integrated_gradients of hidden h baseline zero steps 16
}`, 'choose attribution_target = logit\nchoose attribution_reduction = l2_norm');
  t.deepEqual(p.experiments[0]!.probes.map(({ span: _, ...rest }) => rest), [
    { kind: 'attribution', site: hiddenH, at: all, label: 'attribution of hidden h' },
    { kind: 'attribution', site: hiddenH, at: { kind: 'named', name: 'subject_last' }, label: 'attribution of hidden h at subject_last' },
    { kind: 'integrated_gradients', site: hiddenH, at: all, steps: 16, baseline: 'zero', label: 'integrated_gradients of hidden h baseline zero steps 16' },
  ] as unknown[]);
  t.is(p.choices.attribution_target, 'logit');
  t.is(p.choices.attribution_reduction, 'l2_norm');
  const ig = checked('param n = 3\nexperiment e {\n  measure integrated_gradients of hidden 2 steps n at subject\n}').experiments[0]!.probes[0]!;
  t.like(ig, { kind: 'integrated_gradients', steps: 3, baseline: 'mean', at: { kind: 'named', name: 'subject' } });
  t.like(checked('experiment e {\n  measure integrated_gradients of hidden 2\n}').experiments[0]!.probes[0]!, { steps: 64, baseline: 'mean' });
});

test('the plan: an attribution variant of its own, every step a pass, one descriptor per group of positions', (t) => {
  const p = checked(`experiment flow {
  for l in layers 0, 1
  block subject -> last at layers l
  measure probability
}
experiment ig {
  for h in hidden 0, 12
  measure integrated_gradients of hidden h steps 8, attribution of hidden h
}`);
  const plan = planProgram(p, shape);
  t.false(plan.experiments[0]!.attribution);
  t.true(plan.experiments[1]!.attribution);
  t.is(plan.variant.attribution, undefined, 'the other rows do not pay for the backward pass');
  t.like(plan.variant, { hiddenStates: true, knockout: 'replace_half_min' });
  t.like(plan.attributionVariant, {
    knockout: 'replace_half_min', patch: true, hiddenStates: true, attribution: { target: 'log_probability', reduction: 'sum' },
  });
  t.is(plan.passesPerExample, 1 + 2 + 2 * (8 + 2));
  t.deepEqual(plan.experiments[1]!.rows.map((r) => r.probes.map((x) => [x.kind, x.layer])), [
    [['integrated_gradients', 0], ['attribution', 0]], [['integrated_gradients', 12], ['attribution', 12]],
  ]);
  t.deepEqual(plan.experiments[1]!.measures.map((d) => d.id), [
    ...['subject_first', 'subject_last', 'subject_other', 'nonsubject', 'last', 'completeness_gap'].map((part) => `integrated_gradients of hidden h steps 8 [${part}]`),
    ...['subject_first', 'subject_last', 'subject_other', 'nonsubject', 'last'].map((part) => `attribution of hidden h [${part}]`),
  ]);
  t.like(plan.experiments[1]!.measures[0], { probe: 'integrated_gradients', site: 'hidden', steps: 8, baseline: 'mean', positions: 'all', part: 'subject_first' });
  t.is(measureText(plan.experiments[1]!.measures[5]!), 'integrated_gradients of hidden h steps 8 baseline mean at all [completeness_gap]');
  t.is(measureText(plan.experiments[1]!.measures[6]!), 'attribution of hidden h at all [subject_first]');
  t.is(planProgram(checked('experiment e {\n  measure probability\n}'), shape).attributionVariant, undefined);
});

test('positioned errors', (t) => {
  const body = (line: string) => problems(`${header}\nexperiment e {\n  ${line}\n}\n`);
  t.deepEqual(body('measure attribution of mlp 3'), ['5:26 attribution reads hidden states only, not mlp']);
  t.deepEqual(body('measure attribution'), ['5:11 attribution needs a site']);
  t.deepEqual(body('measure attribution of hiden 3'), ["5:26 unknown site 'hiden'"]);
  t.deepEqual(body('measure attribution of hidden 13'), ['5:33 hidden 13 is out of range: hidden states are 0..12 (0 = the embedding output)']);
  t.deepEqual(body('measure attribution of hidden 1 steps 4'), ['5:35 attribution takes no options']);
  t.deepEqual(body('measure attribution of hidden 1 without last'), ['5:43 attribution takes no without clause']);
  t.deepEqual(body('measure integrated_gradients of hidden 1 stesp 4'), ["5:44 unknown option 'stesp' for integrated_gradients"]);
  t.deepEqual(body('measure integrated_gradients of hidden 1 steps 4 steps 8'), ["5:52 option 'steps' is given twice"]);
  t.deepEqual(body('measure integrated_gradients of hidden 1 steps 0'), ['5:50 integrated_gradients takes 1 to 4096 steps, got 0']);
  t.deepEqual(body('measure integrated_gradients of hidden 1 baseline man'), ["5:53 unknown baseline 'man'"]);
  t.deepEqual(body('measure extraction of hidden 1 steps 4'), ['5:34 extraction takes no options']);
  t.deepEqual(body('measure integrated_gradients of hidden 1, integrated_gradients of hidden 2'),
    ['5:45 an experiment has one integrated_gradients probe at most: its rows replace the hidden state they integrate along']);
  t.deepEqual(problems(`${header}\nexperiment e {\n  patch hidden 1 at positions subject with hidden 0\n  measure integrated_gradients of hidden 2\n}\n`),
    ['5:3 an experiment with integrated_gradients cannot patch: its rows replace the hidden state they integrate along']);
  const hint = run(`${header}\nexperiment e {\n  measure integrated_gradients of hidden 1 step 4\n}\n`).diagnostics[0]!.hint;
  t.regex(hint!, /did you mean 'steps'\?/);
});
