// Temporary folders for tests, all removed when the test process exits (also after a failure),
// so `npm test` leaves nothing in the temp folder.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const made: string[] = [];
process.on('exit', () => { for (const d of made) rmSync(d, { recursive: true, force: true }); });

/** A fresh folder `dissect-<label>-XXXXXX` under `parent` (the system's temp folder by default). */
export function tempDir(label = 'test', parent = tmpdir()): string {
  const d = mkdtempSync(join(parent, `dissect-${label}-`));
  made.push(d);
  return d;
}
