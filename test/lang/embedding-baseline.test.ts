// `subject_embeddings`: the attributes rate's embedding baseline, a site with no index whose
// probes read the subject's mean token embedding (`at` is implicitly the subject).

import test from 'ava';
import { planProgram } from '../../src/plan/plan.js';
import { FILE, header, problems, run, shape, syntaxProblems } from './helpers.js';

const attrs = 'attributes json "a.json"';
const span = (line: number, column: number) => ({ file: FILE, line, column });

test('the three probes of subject_embeddings: no index, at = subject', (t) => {
  const source = `${header}\n${attrs}\nexperiment baseline {\n  measure attributes_rate of subject_embeddings, top_tokens 5 of subject_embeddings\n  measure target_rank of subject_embeddings\n}\n`;
  const { program, diagnostics } = run(source);
  t.deepEqual(diagnostics, []);
  const subject = { kind: 'named', name: 'subject' } as const;
  const site = { kind: 'subject_embeddings' } as const;
  t.deepEqual(program!.experiments[0]!.probes, [
    { kind: 'attributes_rate', site, at: subject, label: 'attributes_rate of subject_embeddings', span: span(6, 11) },
    { kind: 'top_tokens', k: 5, site, at: subject, label: 'top_tokens 5 of subject_embeddings', span: span(6, 50) },
    { kind: 'target_rank', site, at: subject, label: 'target_rank of subject_embeddings', span: span(7, 11) },
  ]);
  // planned as one projection of site subject_embeddings, layer 0 standing in
  const plan = planProgram(program!, shape);
  t.deepEqual(plan.variant.projections, [{ site: 'subject_embeddings', via: 'embedding', k: 500, vocabLimit: shape.vocab, layers: [0] }]);
  t.deepEqual(plan.experiments[0]!.rows[0]!.probes.map((p) => 'site' in p && [p.site, p.layer, p.at]),
    [['subject_embeddings', 0, subject], ['subject_embeddings', 0, subject], ['subject_embeddings', 0, subject]]);
});

test('subject_embeddings takes no at, without, index, and no extraction', (t) => {
  const check = (line: string) => problems(`${header}\n${attrs}\nexperiment e {\n  ${line}\n}\n`).filter((p) => !p.includes('warning:'));
  t.deepEqual(check('measure attributes_rate of subject_embeddings at last'), ['6:52 subject_embeddings takes no at clause']);
  t.deepEqual(check('measure target_rank of subject_embeddings at subject'), ['6:48 subject_embeddings takes no at clause']);
  t.deepEqual(check('measure top_tokens 3 of subject_embeddings without last'), ['6:54 subject_embeddings takes no without clause']);
  t.deepEqual(check('measure attributes_rate of subject_embeddings 3'), ['6:49 subject_embeddings takes no index']);
  t.deepEqual(check('measure extraction of subject_embeddings'), ['6:25 extraction cannot read subject_embeddings']);
});

test('the other sites still need an index', (t) => {
  t.deepEqual(syntaxProblems('experiment e {\n  measure extraction of attention\n  summarize extraction\n}\n'),
    ['2:34 expected an integer or a name, found the end of the line']);
  t.deepEqual(syntaxProblems('experiment e {\n  measure target_rank of subject_embeddings\n  summarize extraction\n}\n'), []);
  t.deepEqual(syntaxProblems('experiment e {\n  measure target_rank of subject_embeddings, rank\n}\n'), []);
});
