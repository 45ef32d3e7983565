// Progress of a run on stderr: a bar on a terminal, and elsewhere (logs, CI, cluster jobs) a
// line every 10 s, so a long run is never silent. The time left is estimated from the facts
// finished in this invocation only (resumed ones took no time now), and not shown before the
// first one finishes.

import { SingleBar } from 'cli-progress';

export interface Progress {
  update(done: number, total: number): void;
  stop(): void;
}

export interface ProgressOptions {
  readonly tty: boolean;
  readonly write: (line: string) => void;
  /** Milliseconds; injectable for tests. */
  readonly now?: () => number;
  readonly everyMs?: number;
}

function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s} s` : s < 3600 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function progressReporter(options: ProgressOptions): Progress {
  const now = options.now ?? Date.now;
  const every = options.everyMs ?? 10_000;
  const start = now();
  let first: number | undefined;
  let lastLine = start;
  const left = (done: number, total: number): string | undefined => {
    first ??= done;
    if (done <= first) return undefined;
    return duration(((now() - start) / (done - first)) * (total - done));
  };
  if (options.tty) {
    const bar = new SingleBar({ format: 'facts {bar} {value}/{total} | {left}', hideCursor: true, clearOnComplete: true });
    let started = false;
    return {
      update(done, total) {
        const l = left(done, total);
        const payload = { left: l ? `${l} left` : 'estimating the time left' };
        if (!started) { bar.start(total, done, payload); started = true; } else bar.update(done, payload);
      },
      stop: () => bar.stop(),
    };
  }
  return {
    update(done, total) {
      const l = left(done, total);
      if (now() - lastLine < every) return;
      lastLine = now();
      const pct = total ? Math.floor((100 * done) / total) : 100;
      options.write(`progress: ${done}/${total} facts (${pct}%), ${duration(now() - start)} elapsed${l ? `, about ${l} left` : ''}\n`);
    },
    stop() { /* the summary follows */ },
  };
}
