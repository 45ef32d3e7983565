import test from 'ava';
import { resultsSchema, validateResults } from '../../src/measure/schema.js';
import { makeResults, mutable } from '../report/fixture.js';

test('the fixture is valid, with and without bootstrap CIs', (t) => {
  t.deepEqual(validateResults(makeResults()), []);
  t.deepEqual(validateResults(makeResults({ method: 'bootstrap_percentile', resamples: 1000, level: 0.95, seed: 0 })), []);
  t.is(resultsSchema.$schema, 'https://json-schema.org/draft/2020-12/schema');
});

test('the fixture series hold the hand-computed means', (t) => {
  const s = makeResults().experiments[0]!.series;
  t.deepEqual(
    s.map((p) => [p.key['l'], p.key['blocked'], p.measure, p.mean, p.n]),
    [
      [0, 'subject', 'probability_change', -37.5, 2],
      [0, 'subject', 'rank', 0.5, 2],
      [0, 'last', 'probability_change', 0, 2],
      [0, 'last', 'rank', 0, 2],
      [1, 'subject', 'probability_change', -75, 2],
      [1, 'subject', 'rank', 3, 2],
      [1, 'last', 'probability_change', 12.5, 2],
      [1, 'last', 'rank', 0, 2],
    ],
  );
});

test('schema errors name the place and the problem', (t) => {
  const r = mutable(makeResults());
  delete r.provenance.device;
  r.format = 'dissect-results/1';
  r.provenance.model.sha256 = 'xyz';
  r.extra = 1;
  const errs = validateResults(r);
  t.true(errs.includes("/provenance: must have required property 'device'"), errs.join('\n'));
  t.true(errs.some((e) => e.startsWith('/format: must be equal to constant')));
  t.true(errs.some((e) => e.startsWith('/provenance/model/sha256: must match pattern')));
  t.true(errs.includes('/: must NOT have additional properties (extra)'));
});

test('non-finite numbers and unknown measures are rejected', (t) => {
  const r = mutable(makeResults());
  r.experiments[0].values[0].values.probability_change = Number.NaN;
  t.true(validateResults(r).some((e) => e.startsWith('/experiments/0/values/0/values/probability_change')));
  const r2 = mutable(makeResults());
  r2.experiments[0].values[0].values.logit = 1;
  t.true(validateResults(r2).length > 0);
});

test('cross-field checks', (t) => {
  const cases: [string, (r: any) => void, RegExp][] = [
    ['kept', (r) => (r.data.kept = 3), /\/data\/kept: is 3 but there are 2 examples/],
    ['dropped', (r) => (r.data.dropped.prompt_too_long = 2), /kept \(2\) \+ dropped \(3\) ≠ total \(3\)/],
    ['drop reason', (r) => { r.data.dropped = { not_known: 0, too_long: 1 }; r.data.total = 3; }, /\/data\/dropped: must NOT have additional properties \(too_long\)/],
    ['meaning', (r) => (r.choices.cancel_mlp = 'preactivations'), /no meaning for choice "cancel_mlp"/],
    ['dup id', (r) => (r.examples[1].id = 0), /duplicate example id 0/],
    ['range', (r) => (r.examples[0].subjectRange = [2, 9]), /subjectRange/],
    ['atZero', (r) => (r.examples[1].subjectAtZero = true), /subjectAtZero: is true but the subject starts at 3/],
    ['mean', (r) => (r.experiments[0].series[0].mean = -37), /series\/0\/mean: is -37 but the values' mean is -37.5/],
    ['n', (r) => (r.experiments[0].series[1].n = 5), /series\/1\/n: is 5 but values hold 2/],
    ['unknown example', (r) => (r.experiments[0].values[0].example = 'zz'), /unknown example id "zz"/],
    ['bad key', (r) => (r.experiments[0].values[0].key = { l: 7, blocked: 'subject' }), /values\/0\/key: .* is not a binding/],
    ['missing point', (r) => r.experiments[0].series.pop(), /has 7 points, expected 8/],
    ['ci with none', (r) => (r.experiments[0].series[0].ci = [-40, -30]), /must be null when the CI method is none/],
    ['dup row', (r) => r.experiments[0].values.push(r.experiments[0].values[0]), /duplicate row for example 0/],
  ];
  for (const [name, mutate, expected] of cases) {
    const r = mutable(makeResults());
    mutate(r);
    const errs = validateResults(r);
    t.true(errs.some((e) => expected.test(e)), `${name}: ${errs.join(' | ')}`);
  }
});

test('a bootstrap run needs a CI wherever n > 0', (t) => {
  const r = mutable(makeResults({ method: 'bootstrap_percentile', resamples: 1000, level: 0.95, seed: 0 }));
  r.experiments[0].series[2].ci = null;
  t.deepEqual(validateResults(r), ['/experiments/0/series/2/ci: missing although the CI method is bootstrap_percentile']);
});
