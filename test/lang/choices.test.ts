// The registry of named semantic choices.

import test from 'ava';
import { allChoices, defaultChoices, describeValues, findChoice, registerChoice } from '../../src/lang/choices.js';
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
  ]);
  for (const c of allChoices()) for (const v of c.values) t.false(v.meaning.includes('\n'), `${c.name}.${v.name} meaning is one line`);
});

test('defaults fill every choice', (t) => {
  t.deepEqual(defaultChoices(), {
    knockout_window: 'centred_clipped', knockout_value: 'replace_half_min', ci: 'bootstrap_percentile',
    projection: 'embedding', cancel_mlp: 'zero_preactivation', cancel_attention: 'uniform',
    head_mapping_side: 'unembedding', mapping_subject_token: 'last', head_mapping_normalisation: 'none', recompute: 'renormalise',
  });
});

test('registering validates names and defaults', (t) => {
  t.throws(() => registerChoice({ name: 'ci', about: 'x', values: [{ name: 'a', meaning: 'a' }], default: 'a' }), { message: "choice 'ci' is already registered" });
  t.throws(() => registerChoice({ name: 'zz_bad', about: 'x', values: [{ name: 'a', meaning: 'a' }], default: 'b' }),
    { message: "choice 'zz_bad': default 'b' is not one of its values" });
  t.is(findChoice('zz_bad'), undefined);
});

test('a registered choice is checked and filled in like the built-in ones', (t) => {
  registerChoice({
    name: 'zz_test_projection',
    about: 'test only',
    values: [{ name: 'embedding', meaning: 'E transposed' }, { name: 'unembedding', meaning: 'final norm + lm_head' }],
    default: 'embedding',
  });
  t.is(describeValues(findChoice('zz_test_projection')!), 'embedding (E transposed); unembedding (final norm + lm_head)');
  const r = run(`${header}\nchoose zz_test_projection = unembedding\n`);
  t.is(r.program!.choices.zz_test_projection, 'unembedding');
  t.is(r.program!.choices.ci, 'bootstrap_percentile');
});
