// The cluster examples (examples/cluster/) run as they are: the shard commands of the Slurm job
// array and of the Kubernetes Indexed Job, read from the job files and run as separate local
// processes with the index the scheduler sets, then their merge step; the merged results.json
// equals a single run's value for value. Then every way a set of folders is not one run's shards
// is refused, naming the folder.

import test from 'ava';
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../../src/errors.js';
import type { Results } from '../../src/measure/schema.js';
import { mergeShards } from '../../src/pipeline/index.js';
import { tempDir, tinyGpt2, tinyGpt2Program } from '../e2e/helpers.js';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const cluster = join(repo, 'examples', 'cluster');
const cli = join(repo, 'dist', 'src', 'cli', 'main.js');
// js-yaml (a dev dependency): a parser beats checking the manifests by hand
const yaml = createRequire(import.meta.url)('js-yaml') as { load(text: string): unknown };

/** 101 facts (4 batches of 32: one per shard) whose last repeats an id of the first batch, and the program over them. */
function setUp(): { dir: string; program: string } {
  const dir = tempDir('cluster');
  const facts = (JSON.parse(readFileSync(join(tinyGpt2, 'facts.json'), 'utf8')) as unknown[]).slice(0, 100);
  writeFileSync(join(dir, 'facts.json'), JSON.stringify([...facts, facts[5]]));
  const program = join(dir, 'flow.dissect');
  writeFileSync(program, 'param window = 3\n' + tinyGpt2Program(
    'head_mappings layers 0 top 8',
    'experiment flow {',
    '  for l in layers 0..1',
    '  for blocked in positions subject, last',
    '  block blocked -> last at layers window(l, window)',
    '  measure probability_change, rank',
    '}',
    // a dataset mean: a shard takes it over the whole selection, as one run does
    'experiment patched {',
    '  for l in layers 0..1',
    '  patch hidden l at positions subject with mean hidden l',
    '  measure probability',
    '}',
  ).replace(join(tinyGpt2, 'facts.json'), join(dir, 'facts.json')));
  return { dir, program };
}

const { dir, program } = setUp();

function run(command: string, args: readonly string[], env: Record<string, string>): void {
  const r = spawnSync(command, args, { cwd: repo, env: { ...process.env, ...env }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
}

const results = (folder: string): Results => JSON.parse(readFileSync(join(folder, 'results.json'), 'utf8')) as Results;

/** Everything but when and by which command: what a single run and the merge must agree on. */
const comparable = ({ createdAt: _, command: __, ...rest }: Results) => rest;

// the single run every merge is compared with, with the settings of the job files' commands
const single = join(dir, 'single');
test.before(() => run(process.execPath, [cli, 'run', program, '--out', single, '--threads', '4'], {}));

/** `#SBATCH --name=value` lines of a batch script, before its first command (where sbatch stops reading them). */
function sbatchOptions(script: string): Map<string, string> {
  const options = new Map<string, string>();
  for (const line of readFileSync(script, 'utf8').split('\n').slice(1)) {
    if (line.trim() !== '' && !line.startsWith('#')) break;
    const m = /^#SBATCH --([a-z-]+)=(\S+)$/.exec(line);
    if (line.startsWith('#SBATCH')) {
      if (!m) throw new Error(`not an sbatch option line: ${line}`);
      options.set(m[1]!, m[2]!);
    }
  }
  return options;
}

test.serial('the Slurm job array\'s shards and its merge job give the single run\'s results', (t) => {
  const shards = join(cluster, 'slurm', 'shards.sbatch');
  const options = sbatchOptions(shards);
  const array = /^(\d+)-(\d+)$/.exec(options.get('array') ?? '');
  t.truthy(array, 'an --array=first-last range');
  t.true(['job-name', 'cpus-per-task', 'mem', 'time', 'output'].every((o) => options.has(o)));
  const merge = join(cluster, 'slurm', 'merge.sbatch');
  t.false(sbatchOptions(merge).has('array'));
  t.regex(readFileSync(join(cluster, 'slurm', 'submit.sh'), 'utf8'), /sbatch --parsable examples\/cluster\/slurm\/shards\.sbatch\)\nsbatch --dependency=afterok:"\$\{array%%;\*\}" examples\/cluster\/slurm\/merge\.sbatch/);

  const results_ = join(dir, 'slurm');
  const [first, last] = [Number(array![1]), Number(array![2])];
  for (let task = first; task <= last; task++) {
    run('bash', [shards], {
      PROGRAM: program, RESULTS: results_, SLURM_ARRAY_TASK_ID: String(task), SLURM_ARRAY_TASK_COUNT: String(last - first + 1),
      SLURM_CPUS_PER_TASK: options.get('cpus-per-task')!,
    });
  }
  t.deepEqual(results(join(results_, 'shard-1')).data.shard, { index: 1, count: 4, batch: 32, facts: Array.from({ length: 32 }, (_, i) => String(32 + i)) });
  t.true(readFileSync(join(results_, 'shard-1', 'report.html'), 'utf8').includes(
    '<b>shard 1/4: this run measured batches 1, 5, 9, … (32 facts each) of the selection, not the whole; `dissect merge` of every shard&#39;s folder gives the whole</b>'), 'the report says it is a shard');
  run('bash', [merge], { RESULTS: results_ });
  const merged = results(join(results_, 'merged'));
  t.deepEqual(comparable(merged), comparable(results(single)));
  t.deepEqual(merged.data.droppedFacts, [{ id: '5', reason: 'duplicate_id' }], 'the repeat in shard 3 of an id of shard 0 is dropped as in one run');
});

interface Container { command: string[]; args: string[]; env: { name: string; value: string }[]; workingDir: string }
interface JobManifest {
  apiVersion: string; kind: string; metadata: { name: string };
  spec: { completionMode?: string; completions?: number; parallelism?: number; template: { spec: { restartPolicy: string; containers: Container[] } } };
}

/** The Job in `file`, checked for the fields a batch/v1 Job needs. */
function job(file: string): JobManifest {
  const manifest = yaml.load(readFileSync(join(cluster, 'kubernetes', file), 'utf8')) as JobManifest;
  if (manifest.apiVersion !== 'batch/v1' || manifest.kind !== 'Job' || !manifest.metadata.name) throw new Error(`${file} is not a batch/v1 Job`);
  if (!['Never', 'OnFailure'].includes(manifest.spec.template.spec.restartPolicy)) throw new Error(`${file}: a Job's pods restart Never or OnFailure`);
  return manifest;
}

/** Runs the Job's container command here: its env, with the shared storage's paths replaced by local ones. */
function runContainer(manifest: JobManifest, local: Record<string, string>): void {
  const [container] = manifest.spec.template.spec.containers;
  const env = Object.fromEntries(container!.env.map((e) => [e.name, local[e.name] ?? e.value]));
  run(container!.command[0]!, [...container!.command.slice(1), ...container!.args], { ...env, ...local });
}

test.serial('the Kubernetes Indexed Job\'s shards and its merge Job give the single run\'s results', (t) => {
  const shards = job('shards.yaml');
  t.is(shards.spec.completionMode, 'Indexed');
  const completions = shards.spec.completions!;
  t.is(shards.spec.template.spec.containers[0]!.env.find((e) => e.name === 'SHARDS')?.value, String(completions), 'the shard count is the completions');
  const results_ = join(dir, 'kubernetes');
  for (let index = 0; index < completions; index++) runContainer(shards, { PROGRAM: program, RESULTS: results_, JOB_COMPLETION_INDEX: String(index) });
  const merge = job('merge.yaml');
  t.is(merge.spec.completionMode, undefined);
  runContainer(merge, { RESULTS: results_ });
  t.deepEqual(comparable(results(join(results_, 'merged'))), comparable(results(single)));
});

/** A copy of the Slurm test's shards 0…3 (made by it) in a new folder, to damage. */
function shardCopies(): string[] {
  const copy = tempDir('cluster');
  return [0, 1, 2, 3].map((k) => {
    const to = join(copy, `shard-${k}`);
    cpSync(join(dir, 'slurm', `shard-${k}`), to, { recursive: true });
    return to;
  });
}

const merge = (shards: readonly string[], out = join(tempDir('cluster'), 'merged')) => mergeShards(shards, { out, command: ['merge'] });

async function refused(t: import('ava').ExecutionContext, shards: readonly string[], message: RegExp, hint: RegExp, out?: string): Promise<void> {
  const e = await t.throwsAsync(merge(shards, out), { instanceOf: UserError, message });
  t.regex(e!.hint ?? '', hint);
}

test.serial('a missing, repeated, foreign, overlapping or older shard is refused, and a folder that is not a shard', async (t) => {
  const shards = shardCopies();
  await refused(t, shards.slice(0, 3), /^shard 3\/4 is missing$/, /--shard 3\/4/);
  await refused(t, [shards[0]!, ...shards], /shard-0 and .*shard-0 are both shard 0\/4$/, /once/);
  const twin = join(tempDir('cluster'), 'again');
  cpSync(shards[0]!, twin, { recursive: true });
  await refused(t, [twin, ...shards], /again and .*shard-0 are both shard 0\/4$/, /keep one/);

  const foreign = join(tempDir('cluster'), 'window5');
  run(process.execPath, [cli, 'run', program, '--set', 'window=5', '--shard', '3/4', '--out', foreign], {});
  await refused(t, [...shards.slice(0, 3), foreign], /window5 is a shard of a different run than .*shard-0 \(changed: params\)$/, /same program, params/);
  const halves = join(tempDir('cluster'), 'half');
  run(process.execPath, [cli, 'run', program, '--shard', '1/2', '--out', halves], {});
  await refused(t, [shards[0]!, halves], /half is shard 1\/2 but .*shard-0 is shard 0\/4: shards of different splits overlap$/, /4 folders/);
  await refused(t, [...shards.slice(0, 3), join(dir, 'single')], /single holds a whole run, not a shard/, /--shard k\/n/);
  await refused(t, [...shards.slice(0, 3), join(dir, 'nowhere')], /nowhere: no such folder$/, /--shard k\/n/);
  await refused(t, [...shards.slice(0, 3), tempDir('cluster')], /is not a shard's output folder \(it holds no results\.json and no journal\.jsonl\)$/, /--shard k\/n/);

  const edited = (shard: string, edit: (r: Results) => Results) => writeFileSync(join(shard, 'results.json'), JSON.stringify(edit(results(shard))));
  const older = shardCopies();
  edited(older[2]!, (r) => ({ ...r, tool: { ...r.tool, version: '0.0.1' } }));
  await refused(t, older, /shard-2 was written by dissect 0\.0\.1; this is dissect \d/, /one version of dissect/);
  const batches = shardCopies();
  edited(batches[3]!, (r) => ({ ...r, data: { ...r.data, shard: { ...r.data.shard!, batch: 16 } } }));
  await refused(t, batches, /shard-3 ran batches of 16 facts but .*shard-0 of 32, so their batches are not one run's$/, /same --batch/);
  const short = shardCopies();
  edited(short[1]!, (r) => ({ ...r, data: { ...r.data, shard: { ...r.data.shard!, facts: r.data.shard!.facts!.slice(1) } } }));
  await refused(t, short, /do not make up one run's selection$/, /--shard k\/n/);
});

test.serial('an unfinished shard is refused, and so is an --out that is a run\'s folder', async (t) => {
  const shards = shardCopies();
  rmSync(join(shards[1]!, 'results.json'));
  await refused(t, shards, /shard-1: the shard is not finished \(it has a journal\.jsonl but no results\.json\)$/, /resumes from its journal/);

  const [cut] = shardCopies().slice(2);
  const journal = join(cut!, 'journal.jsonl');
  writeFileSync(journal, readFileSync(journal, 'utf8').split('\n').slice(0, 21).join('\n') + '\n'); // the header and 20 of its 32 facts
  await refused(t, [...shardCopies().slice(0, 2), cut!, shardCopies()[3]!], /shard-2: the shard is not finished \(12 of its facts are not in its journal\.jsonl\)$/, /runs only the facts that are missing/);

  const restarted = shardCopies();
  const header = JSON.parse(readFileSync(join(restarted[3]!, 'journal.jsonl'), 'utf8').split('\n')[0]!) as { fingerprint: string };
  writeFileSync(join(restarted[3]!, 'journal.jsonl'), JSON.stringify({ ...header, fingerprint: 'a'.repeat(64) }) + '\n'); // `run --fresh` of another run, cut short
  await refused(t, restarted, /shard-3: the shard is not finished \(its journal\.jsonl was started again after its results\.json was written\)$/, /resumes from its journal/);

  const running = shardCopies();
  writeFileSync(join(running[0]!, 'dissect.lock'), JSON.stringify({ pid: process.ppid, host: hostname() }));
  await refused(t, running, /another dissect process \(pid \d+ on .*\) is writing to this output folder/, /wait for it to finish/);

  const fine = shardCopies();
  await refused(t, fine, /--out .*shard-0 holds a run's journal\.jsonl/, /new folder/, fine[0]);
  const cli_ = spawnSync(process.execPath, [cli, 'merge', ...fine.slice(1), '--out', join(tempDir('cluster'), 'm')], { encoding: 'utf8' });
  t.is(cli_.status, 1);
  t.is(cli_.stderr, 'dissect: error: shard 0/4 is missing\n  hint: run it (--shard 0/4 …) and merge all 4 folders\n');
});

test.serial('a shard beyond the run\'s batches is refused, naming how many shards fit', (t) => {
  const r = spawnSync(process.execPath, [cli, 'run', program, '--shard', '4/5', '--out', join(tempDir('cluster'), 'fifth')], { encoding: 'utf8' });
  t.is(r.status, 1);
  t.is(r.stderr, 'dissect: error: --shard 4/5 has no facts: a shard runs whole batches, and the run\'s 100 facts make 4 batches of 32\n'
    + '  hint: split the run into at most 4 shards, or lower --batch\n');
});

test.serial('a head\'s facts flagged by any shard are flagged in the merge, in the order of the examples', async (t) => {
  const shards = shardCopies();
  const flag = (shard: string, ids: string[]) => {
    const r = results(shard);
    writeFileSync(join(shard, 'results.json'), JSON.stringify({ ...r, headMappings: { ...r.headMappings!, heads: r.headMappings!.heads.map((h, i) => (i === 1 ? { ...h, subjectAttributeFacts: ids } : h)) } }));
  };
  flag(shards[1]!, ['40', '33']);
  flag(shards[0]!, ['2']);
  const merged = await merge(shards);
  t.deepEqual(merged.results.headMappings!.heads.map((h) => h.subjectAttributeFacts), [[], ['2', '33', '40'], [], []]);
});

test.serial('merge --out follows the output-folder rules: a foreign folder needs --force, a locked one waits, an earlier merge is replaced', async (t) => {
  const shards = shardCopies();
  const theirs = tempDir('cluster');
  writeFileSync(join(theirs, 'notes.txt'), 'mine');
  await refused(t, shards, /is not empty and is not a dissect output folder \(it holds notes\.txt\)$/, /--force/, theirs);
  await mergeShards(shards, { out: theirs, force: true, command: ['merge'] });
  t.is(readFileSync(join(theirs, 'notes.txt'), 'utf8'), 'mine');
  t.is(results(theirs).data.total, 101);

  writeFileSync(join(theirs, 'dissect.lock'), JSON.stringify({ pid: process.ppid, host: hostname() }));
  await refused(t, shards, /another dissect process \(pid \d+ on .*\) is writing to this output folder/, /wait for it to finish/, theirs);
  rmSync(join(theirs, 'dissect.lock'));
  const again = await merge(shards, theirs);
  t.deepEqual(comparable(again.results), comparable(results(theirs)), 'a second merge into the first one\'s folder rewrites the same results');
});
