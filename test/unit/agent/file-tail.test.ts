import assert from 'node:assert/strict';
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { FileTail, MarkerScanner, watchForMarker } from '../../../src/agent/file-tail.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { waitUntil } from '../../helpers/wait.ts';

test('follows appends from an offset, delivering each byte exactly once', async () => {
  const dir = tempDir();
  const path = join(dir.path, 'log');
  writeFileSync(path, 'old stuff\n');
  let got = '';
  const t = new FileTail(path, 10, (c) => (got += c.toString()));
  try {
    for (let i = 0; i < 50; i++) {
      appendFileSync(path, `line ${i}\n`);
      if (i % 7 === 0) void t.kick();
    }
    await t.drain();
    const want = Array.from({ length: 50 }, (_, i) => `line ${i}\n`).join('');
    await waitUntil('all lines', () => got.length >= want.length);
    await t.drain();
    assert.equal(got, want);
  } finally {
    t.stop();
    dir.remove();
  }
});

test('finds a marker split across writes, only after the offset', async () => {
  const dir = tempDir();
  const path = join(dir.path, 'serial.log');
  writeFileSync(path, 'READY from the previous boot\n');
  let found = 0;
  const w = watchForMarker(path, 29, 'READY', () => found++);
  try {
    appendFileSync(path, 'booting...\nRE');
    await w.drain();
    assert.equal(found, 0);
    appendFileSync(path, 'ADY\n');
    await waitUntil('marker', () => found === 1);
    appendFileSync(path, 'READY again\n');
    await w.drain();
    assert.equal(found, 1, 'reported once');
  } finally {
    w.stop();
    dir.remove();
  }
});

test('the scanner keeps at most marker-length-minus-one bytes between chunks, even for a one-byte marker', () => {
  for (const marker of ['Z', 'OUTRIG-GUEST-READY', 'prêt']) {
    const s = new MarkerScanner(marker);
    for (let i = 0; i < 200; i++) {
      assert.equal(s.feed(Buffer.alloc(4096, i % 2 ? 'a' : 'b')), false);
      assert.ok(s.carried <= Buffer.byteLength(marker) - 1, `${marker}: ${s.carried} bytes carried`);
    }
    const bytes = Buffer.from(`..${marker}..`);
    assert.equal(s.feed(bytes.subarray(0, 3)) || s.feed(bytes.subarray(3)), true, `${marker} found, split across chunks`);
  }
});
