// The registry of named semantic choices.

import test from 'ava';
import { allChoices, choicesInForce, defaultChoices } from '../../src/lang/choices.js';
import { header, run } from './helpers.js';

test('the initial registry', (t) => {
  t.deepEqual(allChoices().map((c) => [c.name, c.default, c.values.map((v) => v.name)]), [
    ['knockout_window', 'centred_clipped', ['centred_clipped']],
    ['knockout_value', 'replace_half_min', ['replace_half_min']],
    ['ci', 'bootstrap_percentile', ['bootstrap_percentile', 'none']],
    ['projection', 'embedding', ['embedding', 'final_norm_unembedding']],
    ['cancel_mlp', 'zero_preactivation', ['zero_preactivation', 'zero_update']],
    ['cancel_attention', 'uniform', ['uniform', 'zero_update']],
    ['head_mapping_side', 'unembedding', ['unembedding', 'embedding']],
    ['mapping_subject_token', 'last', ['last', 'any']],
    ['head_mapping_normalisation', 'none', ['none', 'token_frequency']],
    ['recompute', 'renormalise', ['renormalise', 'paper_resoftmax']],
    ['attribution_target', 'log_probability', ['log_probability', 'probability', 'logit']],
    ['attribution_reduction', 'sum', ['sum', 'l2_norm']],
  ]);
  for (const c of allChoices()) for (const v of c.values) t.false(v.meaning.includes('\n'), `${c.name}.${v.name} meaning is one line`);
});

test('defaults fill every choice', (t) => {
  t.deepEqual(defaultChoices(), {
    knockout_window: 'centred_clipped', knockout_value: 'replace_half_min', ci: 'bootstrap_percentile',
    projection: 'embedding', cancel_mlp: 'zero_preactivation', cancel_attention: 'uniform',
    head_mapping_side: 'unembedding', mapping_subject_token: 'last', head_mapping_normalisation: 'none', recompute: 'renormalise',
    attribution_target: 'log_probability', attribution_reduction: 'sum',
  });
});

test('a program\'s choices are the defaults with its own in their place, typed by the registry', (t) => {
  const r = run(`${header}\nchoose projection = final_norm_unembedding\n`);
  const projection: 'embedding' | 'final_norm_unembedding' = r.program!.choices.projection;
  t.is(projection, 'final_norm_unembedding');
  t.is(r.program!.choices.ci, 'bootstrap_percentile');
});

test('choices in force never take an unregistered name or value, nor fall back to a default on one', (t) => {
  t.throws(() => choicesInForce({ projection: 'embeding' }), { message: 'internal: choice projection = embeding is not in the registry' });
  t.throws(() => choicesInForce({ projektion: 'embedding' }), { message: /projektion = embedding is not in the registry/ });
  t.is(choicesInForce({ recompute: 'paper_resoftmax' }).recompute, 'paper_resoftmax');
});
