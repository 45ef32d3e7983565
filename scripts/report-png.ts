// `npm run report-png`: regenerates docs/report.png, the top of the report `npm start` writes.
// It runs examples/paper.dissect as `npm start` does, into the relative out/paper (afresh, so the
// page describes one whole run), and photographs report.html in Chromium: the page then shows
// the repository's relative paths, not the folders of the machine it was made on.

import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Browser } from 'playwright-core';
import { CHROMIUM, chromiumInstalled, launchChromium } from './chromium.js';

/** The width of docs/report.png, in CSS pixels. */
export const REPORT_PNG_WIDTH = 1100;

/** A PNG of `html` (a report.html) from its top to the end of its first plot, as docs/report.png shows it. */
export async function photographReport(browser: Browser, html: string, png: string): Promise<void> {
  const page = await browser.newPage({ viewport: { width: REPORT_PNG_WIDTH, height: 900 } });
  await page.goto(pathToFileURL(html).href);
  const box = await page.locator('figure.plot').first().boundingBox();
  if (!box) throw new Error(`${html} has no plot to end the picture at`);
  await page.screenshot({ path: png, clip: { x: 0, y: 0, width: REPORT_PNG_WIDTH, height: Math.ceil(box.y + box.height + 24) }, fullPage: true });
  await page.close();
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) {
  if (!chromiumInstalled()) throw new Error(`${CHROMIUM} not found: install it with .ci/install-chromium`);
  const repo = fileURLToPath(new URL('../../', import.meta.url));
  const out = join('out', 'paper');
  execFileSync(process.execPath, ['dist/src/cli/main.js', 'run', 'examples/paper.dissect', '--out', out, '--fresh'], { cwd: repo, stdio: ['ignore', 'ignore', 'inherit'] });
  const browser = await launchChromium();
  try {
    await photographReport(browser, join(repo, out, 'report.html'), join(repo, 'docs', 'report.png'));
  } finally {
    await browser.close();
  }
  console.log('wrote docs/report.png');
}
