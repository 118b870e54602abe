/** Rotation of a serial log that a writer keeps appending to (QEMU's chardev opens it O_APPEND). */
import assert from 'node:assert/strict';
import { closeSync, existsSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { SerialLogLimiter, previousLog, rotateIfOver } from '../../../src/agent/serial-log.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { waitUntil } from '../../helpers/wait.ts';

test('past the limit the log moves to .1 and the appending writer goes on at offset 0, with no hole', async () => {
  const dir = tempDir();
  const path = join(dir.path, 'serial.log');
  const fd = openSync(path, 'a');
  try {
    writeSync(fd, 'x'.repeat(1000));
    assert.equal(await rotateIfOver(path, 2000), false);
    writeSync(fd, 'y'.repeat(1500));
    assert.equal(await rotateIfOver(path, 2000), true);
    assert.equal(readFileSync(previousLog(path), 'utf8'), 'x'.repeat(1000) + 'y'.repeat(1500));
    assert.equal(statSync(path).size, 0);
    writeSync(fd, 'after\n');
    assert.equal(readFileSync(path, 'utf8'), 'after\n');
    assert.equal(statSync(previousLog(path)).mode & 0o777, 0o600);
  } finally {
    closeSync(fd);
    dir.remove();
  }
});

test('the limiter keeps a log that is written without pause within its bound, and says when it rotated', async () => {
  const dir = tempDir();
  const path = join(dir.path, 'serial.log');
  const fd = openSync(path, 'a');
  let rotations = 0;
  const limiter = new SerialLogLimiter(
    path,
    64 * 1024,
    () => rotations++,
    (e) => assert.fail(e),
    10,
  );
  try {
    let peak = 0;
    for (let i = 0; i < 400; i++) {
      writeSync(fd, `${String(i).padStart(5, '0')} ${'z'.repeat(1017)}\n`);
      if (i % 20 === 0) await waitUntil('the limiter to catch up', () => statSync(path).size <= 64 * 1024 || undefined, 5000, 5);
      peak = Math.max(peak, statSync(path).size + (existsSync(previousLog(path)) ? statSync(previousLog(path)).size : 0));
    }
    assert.ok(rotations >= 4, `${rotations} rotations for 400 KiB through a 64 KiB log`);
    // Each file: the limit plus what was written between two checks (20 lines).
    assert.ok(peak <= 2 * (64 + 21) * 1024, `the two files held ${peak} bytes`);
  } finally {
    limiter.stop();
    closeSync(fd);
    dir.remove();
  }
});
