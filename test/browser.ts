// Tests in a real browser: headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core, which downloads no browser). CI installs it with .ci/install-chromium, so
// there a missing browser fails the test; elsewhere the test is skipped, saying why.

import test, { type ExecutionContext } from 'ava';
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

export function browserTest(title: string, body: (t: ExecutionContext, browser: Browser) => Promise<void>): void {
  if (!existsSync(CHROMIUM) && process.env['CI']) {
    test(title, (t) => t.fail(`${CHROMIUM} not found: .ci/install-chromium should have installed it`));
  } else if (!existsSync(CHROMIUM)) {
    test.skip(`${title} (SKIPPED: ${CHROMIUM} not found; install it with .ci/install-chromium)`, () => {});
  } else {
    // serial: one Chromium at a time (each takes about 1 GB), so that npm test stays under 4 GB
    test.serial(title, async (t) => {
      const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, timeout: 60_000 });
      try {
        await body(t, browser);
      } finally {
        await browser.close();
      }
    });
  }
}
