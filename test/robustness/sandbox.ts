// Hostile inputs are run through the CLI in a sandbox: a temporary folder that holds the
// inputs, the output folder, and the HOME and TMPDIR the child process sees. After each
// command the sandbox is compared with its state before: only the output folder may change,
// so a test shows that nothing of the user's was written or deleted, and that nothing was
// left in the home or temp folder (onnxruntime's telemetry would write both).

import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../temp.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
export const tinyGpt2 = fileURLToPath(new URL('../../../generated/tiny-gpt2/', import.meta.url));
export const fixtures = fileURLToPath(new URL('../../../generated/fixtures/', import.meta.url));

export interface Outcome {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Paths (relative to the sandbox) created, changed or removed outside the output folder. */
  readonly touched: readonly string[];
}

/** Every file and folder under `dir` with its size and modification time. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      const s = statSync(p, { throwIfNoEntry: false });
      out.set(relative(dir, p), s ? `${s.isDirectory() ? 'dir' : s.size} ${s.mtimeMs}` : 'dangling');
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

export class Sandbox {
  readonly dir = tempDir('hostile');
  /** The output folder commands are given (`--out`); the only place they may write. */
  readonly out = join(this.dir, 'out');

  constructor() {
    for (const d of ['home', 'tmp']) mkdirSync(join(this.dir, d));
  }

  path(rel: string): string {
    return join(this.dir, rel);
  }

  /** Writes a file into the sandbox (text, or JSON for anything else); returns its path. */
  write(rel: string, content: unknown): string {
    const file = this.path(rel);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, typeof content === 'string' || content instanceof Uint8Array ? content : JSON.stringify(content));
    return file;
  }

  /** Copies a file into the sandbox. */
  copy(from: string, rel: string): string {
    return this.write(rel, readFileSync(from));
  }

  /** Runs `dissect ARGS` with the sandbox's home and temp folders, in the sandbox. */
  dissect(...args: string[]): Outcome {
    const before = snapshot(this.dir);
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: this.path('home'), TMPDIR: this.path('tmp') };
    delete env['ORT_DISABLE_TELEMETRY']; // dissect must set it itself
    const r = spawnSync(process.execPath, [cli, ...args], { cwd: this.dir, env, encoding: 'utf8' });
    const after = snapshot(this.dir);
    const inOut = (p: string): boolean => p === 'out' || p.startsWith(`out/`);
    const touched = [...new Set([...before.keys(), ...after.keys()])].filter((p) => !inOut(p) && before.get(p) !== after.get(p)).sort();
    return { code: r.status, stdout: r.stdout, stderr: r.stderr, touched };
  }
}

/** No stack trace in a message. */
export const noStack = (s: string): boolean => !/\n\s+at .+:\d+:\d+\)?\n/.test(s);

/** A program on the default model with `overrides` of its model, tokenizer or dataset, and one experiment. */
export function program(paths: { model?: string; tokenizer?: string; dataset?: string; attributes?: string }, ...lines: string[]): string {
  return [
    `model "${paths.model ?? join(tinyGpt2, 'model.onnx')}" tokenizer "${paths.tokenizer ?? join(tinyGpt2, 'tokenizer.json')}"`,
    `dataset counterfact "${paths.dataset ?? join(tinyGpt2, 'facts.json')}"`,
    ...(paths.attributes ? [`attributes json "${paths.attributes}" candidates 50 keep 10`] : []),
    ...lines,
    'experiment flow {',
    '  for l in layers all',
    '  block subject -> last at layers l',
    '  measure probability',
    '}',
    '',
  ].join('\n');
}
