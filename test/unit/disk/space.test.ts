import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { fileSystemSpace, newVolumeMayAllocate, volumeMayAllocate } from '../../../src/disk/space.ts';

const MiB = 1024 ** 2;

test('a volume may still allocate its unmapped blocks and its journal', () => {
  assert.equal(volumeMayAllocate({ sizeBytes: 64 * MiB, blockSize: 64 * 1024, usedBytes: MiB, journalBytes: 4 * MiB }), 67 * MiB);
  assert.equal(volumeMayAllocate({ sizeBytes: 64 * MiB, blockSize: 64 * 1024, usedBytes: 64 * MiB, journalBytes: 4 * MiB }), 4 * MiB, 'full: only the journal');
  // Blocks are allocated whole: a size that is not a multiple of the block size rounds up.
  assert.equal(volumeMayAllocate({ sizeBytes: MiB + 512, blockSize: 64 * 1024, usedBytes: 0, journalBytes: 0 }), MiB + 64 * 1024);
});

test('a new volume may allocate its size and a journal of the default size', () => {
  assert.equal(newVolumeMayAllocate(MiB), 5 * MiB);
  assert.equal(newVolumeMayAllocate(4096 * MiB), 4112 * MiB);
  assert.equal(newVolumeMayAllocate(1024 ** 4), 1024 ** 4 + 64 * MiB);
});

test('the file system figures are what df shows', () => {
  const s = fileSystemSpace('/');
  const [size, avail] = execFileSync('df', ['-B1', '--output=size,avail', '/'], { encoding: 'utf8' }).trim().split('\n')[1]!.trim().split(/\s+/).map(Number);
  assert.equal(s.totalBytes, size);
  // Free space moves while other things write; a few MiB apart at most.
  assert.ok(Math.abs(s.freeBytes - avail!) < 64 * MiB, `${s.freeBytes} vs ${avail}`);
});
