// Runs mutated sources through a child process (worker.ts) with a heap limit and a time limit
// per input: a V8 abort or a hang ends the child, is recorded, and a new child carries on.

import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mutant, type FuzzSeed } from './mutate.js';
import type { Verdict } from './property.js';
import type { FuzzRequest } from './worker.js';

const workerPath = fileURLToPath(new URL('./worker.js', import.meta.url));

export interface FuzzOptions {
  readonly seeds: readonly FuzzSeed[];
  readonly seed: number;
  readonly count: number;
  /** A judgement slower than this is a hang. */
  readonly timeoutMs: number;
  /** The child's V8 heap limit: running out of it is an abort. */
  readonly heapMb: number;
  /** Stop after this many findings (a broken build would otherwise wait out every hang). */
  readonly maxFindings: number;
  readonly onProgress?: (done: number) => void;
}

export interface Finding {
  readonly index: number;
  readonly kind: Extract<Verdict, { ok: false }>['kind'] | 'abort' | 'hang';
  readonly detail: string;
  readonly input: FuzzSeed;
}

export interface FuzzSummary {
  readonly judged: number;
  /** Inputs that ended in diagnostics, and in a plan. */
  readonly diagnostics: number;
  readonly plans: number;
  readonly findings: readonly Finding[];
}

type Outcome = { readonly verdict: Verdict } | { readonly died: 'abort' | 'hang'; readonly detail: string };

/** One child process; `judge` answers for one input, or says how the child died. */
class Child {
  private readonly process: ChildProcess;
  private stderr = '';

  constructor(heapMb: number) {
    this.process = fork(workerPath, [], { execArgv: [`--max-old-space-size=${heapMb}`], stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    this.process.stderr!.on('data', (chunk: Buffer) => { this.stderr = (this.stderr + chunk.toString()).slice(-2000); });
  }

  judge(request: FuzzRequest, timeoutMs: number): Promise<Outcome> {
    return new Promise((resolve) => {
      const done = (outcome: Outcome) => {
        clearTimeout(timer);
        this.process.off('message', onMessage);
        this.process.off('exit', onExit);
        resolve(outcome);
      };
      const onMessage = (m: { index: number; verdict: Verdict }) => { if (m.index === request.index) done({ verdict: m.verdict }); };
      const onExit = (code: number | null, signal: string | null) => done({ died: 'abort', detail: `exit ${code ?? signal}: ${this.stderr.trim().split('\n').slice(-3).join(' | ')}` });
      const timer = setTimeout(() => { this.kill(); done({ died: 'hang', detail: `no answer within ${timeoutMs} ms` }); }, timeoutMs);
      this.process.on('message', onMessage);
      this.process.on('exit', onExit);
      this.process.send(request);
    });
  }

  kill(): void {
    this.process.kill('SIGKILL');
  }
}

export async function fuzz(options: FuzzOptions): Promise<FuzzSummary> {
  const findings: Finding[] = [];
  let child = new Child(options.heapMb);
  let diagnostics = 0;
  let plans = 0;
  let index = 0;
  try {
    for (; index < options.count && findings.length < options.maxFindings; index++) {
      const input = mutant(options.seeds, options.seed, index);
      const outcome = await child.judge({ index, ...input }, options.timeoutMs);
      if ('died' in outcome) {
        findings.push({ index, kind: outcome.died, detail: outcome.detail, input });
        child.kill();
        child = new Child(options.heapMb);
      } else if (!outcome.verdict.ok) {
        findings.push({ index, kind: outcome.verdict.kind, detail: outcome.verdict.detail, input });
      } else if (outcome.verdict.outcome === 'plan') {
        plans++;
      } else {
        diagnostics++;
      }
      options.onProgress?.(index + 1);
    }
  } finally {
    child.kill();
  }
  return { judged: index, diagnostics, plans, findings };
}
