// The orchestration stage reaches every other stage through that stage's interface
// (src/<stage>/index.ts) alone, so a stage's inner modules can move without touching it.

import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../src/lang/grammar-export.js';

const dir = join(repoRoot, 'src', 'pipeline');

test('src/pipeline imports other stages only through their index.ts', (t) => {
  const deep: string[] = [];
  let imports = 0;
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
    for (const [, from] of readFileSync(join(dir, file), 'utf8').matchAll(/from '(\.\.\/[^']+)'/g)) {
      imports++;
      // one-module stages and utilities (src/errors.ts, src/version.ts, src/plural.ts, src/output/folder.ts) are their own interface
      if (!/^\.\.\/(\w+)\/index\.js$|^\.\.\/(errors|version|plural)\.js$|^\.\.\/output\/folder\.js$/.test(from!)) deep.push(`${file}: ${from}`);
    }
  }
  t.true(imports > 10, 'the pipeline was read');
  t.deepEqual(deep, []);
});
