// The files in grammar/ are generated from the live lexer and parser and must stay fresh.

import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { browserTest } from '../browser.js';
import { grammarFiles, regenerateCommand, renderAll, repoRoot } from '../../src/lang/grammar-export.js';
import { keywords } from '../../src/lang/lexer.js';

for (const [path, expected] of Object.entries(renderAll())) {
  test(`${path} is what the parser generates now`, (t) => {
    let committed = '';
    try {
      committed = readFileSync(join(repoRoot, path), 'utf8');
    } catch {
      t.fail(`${path} is missing; run: ${regenerateCommand}`);
      return;
    }
    t.true(committed === expected, `${path} is stale; run: ${regenerateCommand}`);
  });
}

test("the TextMate grammar's keyword list equals the lexer's keywords", (t) => {
  const grammar = JSON.parse(readFileSync(join(repoRoot, grammarFiles.textmate), 'utf8')) as {
    repository: { keyword: { match: string } };
  };
  const match = /^\\b\((.*)\)\\b$/.exec(grammar.repository.keyword.match);
  t.truthy(match, 'keyword pattern has the form \\b(a|b|...)\\b');
  t.deepEqual(match![1]!.split('|').sort(), [...keywords].sort());
});

test('the EBNF names every rule of the parser and every keyword', (t) => {
  const ebnf = readFileSync(join(repoRoot, grammarFiles.ebnf), 'utf8');
  for (const rule of ['document', 'statement', 'blockStatement', 'layerSet', 'positionExpr', 'forStatement']) {
    t.true(ebnf.includes(`\n${rule} ::= `), rule);
  }
  for (const k of keywords) t.true(ebnf.includes(`"${k}"`), k);
});

test('the syntax diagrams page draws every rule', (t) => {
  const html = readFileSync(join(repoRoot, grammarFiles.diagrams), 'utf8');
  for (const rule of ['document', 'blockStatement', 'layerSet']) t.true(html.includes(`"name": "${rule}"`) || html.includes(`"name":"${rule}"`), rule);
});

browserTest('the syntax diagrams page draws every rule offline, loading nothing but itself', async (t, browser) => {
  const page = await browser.newPage();
  const problems: string[] = [];
  const requests: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('request', (r) => requests.push(r.url()));
  const url = pathToFileURL(join(repoRoot, grammarFiles.diagrams)).href;
  await page.goto(url, { waitUntil: 'load' });
  const drawn = await page.evaluate(() => [...document.querySelectorAll('h2')].map((h) => ({
    rule: h.textContent ?? '', svg: !!h.nextElementSibling?.querySelector('svg path') || !!h.parentElement?.querySelector('svg path'),
  })));
  t.deepEqual(problems, []);
  t.deepEqual(requests, [url]);
  t.true(drawn.length >= 20, `${drawn.length} rules drawn`);
  for (const rule of ['document', 'siteStatement', 'blockStatement', 'layerSet']) t.true(drawn.some((d) => d.rule === rule && d.svg), rule);
});
