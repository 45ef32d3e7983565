// A run split over machines: `--shard k/n` runs every n-th batch from the k-th on, and a run
// with `--merge` takes the shards' finished facts from their journals instead of computing
// them. The merged results equal a single run's, and nothing is recomputed.

import test from 'ava';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Results } from '../../src/measure/schema.js';
import { informationFlowSource, tempDir } from './helpers.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

function dissect(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const results = (dir: string): Results => JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as Results;

test.serial('two shards merged give the single run\'s results without recomputing a fact', (t) => {
  const dir = tempDir('e2e');
  const file = join(dir, 'flow.dissect');
  writeFileSync(file, informationFlowSource(3));
  const common = ['run', file, '--limit', '12', '--batch', '8'];
  for (const k of [0, 1]) {
    const r = dissect(...common, '--out', join(dir, `shard${k}`), '--shard', `${k}/2`);
    t.is(r.code, 0);
    t.true(r.stdout.includes(`shard ${k}/2: this run measured batches ${k}, ${k + 2}, ${k + 4}, … (8 facts each) of the selection, not the whole; \`dissect merge\` of every shard's folder gives the whole\n`), r.stdout);
  }
  const shard0 = results(join(dir, 'shard0'));
  t.deepEqual(shard0.data.shard, { index: 0, count: 2, batch: 8, facts: ['0', '1', '2', '3', '4', '5', '6', '7'] });
  t.is(shard0.data.total, 8, 'the first batch of 8 of the 12 selected');

  const merged = dissect(...common, '--out', join(dir, 'merged'), '--merge', join(dir, 'shard0'), '--merge', join(dir, 'shard1'));
  t.is(merged.code, 0, merged.stderr);
  const single = dissect(...common, '--out', join(dir, 'single'));
  t.is(single.code, 0, single.stderr);
  const [m, s] = [results(join(dir, 'merged')), results(join(dir, 'single'))];
  t.like(m.provenance.rows, { lastPositionRows: 0, fullRows: 0, journalFacts: 12 });
  t.is(m.data.shard, undefined);
  t.is(m.fingerprint, s.fingerprint);
  t.is(m.fingerprint, shard0.fingerprint, 'a shard is part of the same run');
  t.deepEqual(m.examples.map((e) => e.id), s.examples.map((e) => e.id));
  t.deepEqual(m.experiments.map((x) => x.values), s.experiments.map((x) => x.values));
});

test.serial('merging the folder of another run is refused, saying what differs', (t) => {
  const dir = tempDir('e2e');
  const file = join(dir, 'flow.dissect');
  writeFileSync(file, informationFlowSource(3));
  t.is(dissect('run', file, '--limit', '4', '--out', join(dir, 'a')).code, 0);
  writeFileSync(file, informationFlowSource(5));
  const r = dissect('run', file, '--limit', '4', '--out', join(dir, 'b'), '--merge', join(dir, 'a'));
  t.is(r.code, 1);
  t.regex(r.stderr, /journal\.jsonl is the journal of a different run \(changed: source, params\), so it cannot be merged/);
  const bad = dissect('run', file, '--out', join(dir, 'c'), '--shard', '2/2');
  t.is(bad.code, 1);
  t.regex(bad.stderr, /expected k\/n with 0 ≤ k < n/);
});
