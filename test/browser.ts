// Tests in a real browser: headless Chromium (scripts/chromium.ts). CI installs it with
// .ci/install-chromium, so there a missing browser fails the test; elsewhere the test is
// skipped, saying why.

import test, { type ExecutionContext } from 'ava';
import type { Browser } from 'playwright-core';
import { CHROMIUM, chromiumInstalled, launchChromium } from '../scripts/chromium.js';

export function browserTest(title: string, body: (t: ExecutionContext, browser: Browser) => Promise<void>): void {
  if (!chromiumInstalled() && process.env['CI']) {
    test(title, (t) => t.fail(`${CHROMIUM} not found: .ci/install-chromium should have installed it`));
  } else if (!chromiumInstalled()) {
    test.skip(`${title} (SKIPPED: ${CHROMIUM} not found; install it with .ci/install-chromium)`, () => {});
  } else {
    // serial: one Chromium at a time (each takes about 1 GB), so that npm test stays under 4 GB
    test.serial(title, async (t) => {
      const browser = await launchChromium();
      try {
        await body(t, browser);
      } finally {
        await browser.close();
      }
    });
  }
}
