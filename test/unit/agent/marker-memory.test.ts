/**
 * The ready-marker watch against a hostile console (issue 15, finding 18): with a one-character
 * marker, slice(-0) kept the whole text read so far, so a guest that never printed the marker made
 * the agent hold its entire log in memory.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { watchForMarker } from '../../../src/agent/file-tail.ts';
import { tempDir } from '../../helpers/tmp.ts';

test('a one-character marker the guest never prints does not make the tail hold the log', async () => {
  // The guest's console is hostile: 16 MiB without the marker must leave no 16 MiB string behind.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const dir = tempDir();
  const path = join(dir.path, 'serial.log');
  writeFileSync(path, Buffer.alloc(16 * 1024 * 1024, 'a'));
  let found = 0;
  gc();
  const before = process.memoryUsage().heapUsed;
  const w = watchForMarker(path, 0, 'Z', () => found++);
  try {
    await w.drain();
    gc();
    const grown = process.memoryUsage().heapUsed - before;
    assert.equal(found, 0);
    assert.ok(grown < 4 * 1024 * 1024, `the marker watch holds ${(grown / 1024 / 1024).toFixed(1)} MiB after reading a 16 MiB log`);
  } finally {
    w.stop();
    dir.remove();
  }
});
