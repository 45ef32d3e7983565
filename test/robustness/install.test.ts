// The install stays within the npm registry and quiet: .npmrc turns dependency install scripts
// off with a setting npm knows (an unknown project setting makes npm warn on every command),
// so onnxruntime-node never downloads its CUDA provider.

import test from 'ava';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../../../', import.meta.url));

test('npm reads .npmrc without a warning, and install scripts are off', (t) => {
  const r = spawnSync('npm', ['config', 'get', 'ignore-scripts'], { cwd: repo, encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout.trim(), 'true');
  t.notRegex(r.stderr, /npm warn/i);
});

// CI installs with a plain `npm ci`; elsewhere a GPU user may have opted in (README, "GPUs").
const defaultInstall = process.env['CI'] ? test : test.skip;

defaultInstall('after a default install onnxruntime-node holds its CPU binaries only: no CUDA provider was downloaded', (t) => {
  const bin = join(repo, 'node_modules', 'onnxruntime-node', 'bin');
  const files = readdirSync(bin, { recursive: true, encoding: 'utf8' });
  t.true(files.some((f) => f.endsWith('onnxruntime_binding.node')), files.join(', '));
  t.deepEqual(files.filter((f) => /providers_cuda|providers_tensorrt/.test(f)), []);
});
