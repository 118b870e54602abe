/**
 * Torn journal records: a record cut at any byte (the rest of its space holding what was there
 * before) is detected and ignored at replay; the records before it apply; the disk checks clean.
 */
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkFile } from '../../../src/disk/check.ts';
import { DiskEngine } from '../../../src/disk/engine.ts';
import { RECORD_HEADER } from '../../../src/disk/format.ts';
import { tempDir } from '../../helpers/tmp.ts';

test('a record cut at any byte is ignored at replay, the ones before it apply', async () => {
  const dir = tempDir('outrig-torn-');
  try {
    const file = join(dir.path, 'd.odsk');
    DiskEngine.create(file, { size: 16 << 20, journalSize: 256 * 1024 });
    const e = await DiskEngine.open(file, { cache: 'writethrough' });
    for (let i = 0; i < 4; i++) await e.write(i * 65536 * 3, Buffer.alloc(5000, 0x10 + i));
    const before = Buffer.from(readFileSync(file));
    const pos = e.info().journal.used; // this journal has not wrapped: the next record starts here
    await e.write(65536 * 40, Buffer.alloc(70000, 0xee)); // two new blocks: one record
    const after = Buffer.from(readFileSync(file));
    const lastLsn = e.info().journal.lastLsn;
    // Leave the file as it is now: the lock stays with this (live) process, so opens below are read-only.
    const jOff = 8192 + pos;
    const payloadLen = after.readUInt32LE(jOff + 16);
    const meaningful = RECORD_HEADER + payloadLen;
    const want = (applied: boolean) => {
      const b = Buffer.alloc(70000);
      if (applied) b.fill(0xee);
      return b;
    };
    const torn = join(dir.path, 'torn.odsk');
    for (let cut = 0; cut <= meaningful; cut++) {
      const img = Buffer.from(after);
      before.copy(img, jOff + cut, jOff + cut, jOff + meaningful);
      writeFileSync(torn, img);
      const t = await DiskEngine.open(torn, { readOnly: true });
      // Whole iff every meaningful byte made it (a cut in trailing zero bytes loses nothing).
      const applied = img.subarray(jOff, jOff + meaningful).equals(after.subarray(jOff, jOff + meaningful));
      assert.equal(applied, cut === meaningful || after.subarray(jOff + cut, jOff + meaningful).every((x, i) => x === before[jOff + cut + i]));
      assert.equal(t.replay.records, applied ? lastLsn : lastLsn - 1, `cut at byte ${cut}`);
      assert.ok(t.readBuffer(65536 * 40, 70000).equals(want(applied)), `content with the record cut at byte ${cut}`);
      assert.ok(t.readBuffer(0, 5000).equals(Buffer.alloc(5000, 0x10)), 'earlier records still apply');
      await t.close();
      const r = checkFile(torn);
      assert.equal(r.clean, true, `cut at ${cut}: ${JSON.stringify(r.findings)}`);
    }
    await e.close();
  } finally {
    dir.remove();
  }
});

// Issue 17, finding 1, as the audit reproduced it: on main before the fix (777903b) the copy
// replayed 2 records, 332 of the 1,168 acknowledged blocks read the first session's data, and
// check called it clean but for leaked blocks.
test("a crashed session's records past a torn one are never replayed after the next session reuses their numbers", async () => {
  const dir = tempDir('outrig-torn-');
  try {
    const B = 4096;
    const file = join(dir.path, 'd.odsk');
    DiskEngine.create(file, { size: 16 << 20, blockSize: B, journalSize: 64 * 1024 });
    const first = await DiskEngine.open(file, { cache: 'writeback' });
    await first.write(0, Buffer.alloc(1500 * B, 0xaa));
    await first.flush();
    assert.equal(first.info().journal.lastLsn, 2, 'two records, both synced');
    // The crash: the file as it is now, with a byte of record 1's payload lost (a torn write).
    const crashed = join(dir.path, 'crashed.odsk');
    copyFileSync(file, crashed);
    await first.close();
    const img = readFileSync(crashed);
    const jOff = 8192;
    img[jOff + RECORD_HEADER + 100]! ^= 0xff;
    writeFileSync(crashed, img);
    const before = checkFile(crashed);
    assert.equal(before.clean, true, JSON.stringify(before.findings));
    assert.ok(
      before.findings.some((f) => /2 record\(s\) past the end of the log.*never acknowledged/.test(f.message)),
      'check says what open will do: ' + JSON.stringify(before.findings),
    );

    // The next session replays nothing and writes one record numbered 1, as long as the torn one,
    // over blocks that record 2 (whole, behind it) maps elsewhere.
    const second = await DiskEngine.open(crashed, { cache: 'writethrough' });
    assert.equal(second.replay.records, 0);
    await second.write(332 * B, Buffer.alloc(1168 * B, 0xbb));
    // A second power cut: the file as it is now.
    const again = join(dir.path, 'again.odsk');
    copyFileSync(crashed, again);
    const t = await DiskEngine.open(again, { readOnly: true });
    const wrong: number[] = [];
    for (let b = 332; b < 1500; b++) if (!t.readBuffer(b * B, B).equals(Buffer.alloc(B, 0xbb))) wrong.push(b);
    assert.deepEqual([t.replay.records, wrong.length], [1, 0], `acknowledged blocks that read other data: ${wrong.length}`);
    await t.close();
    await second.close();
    const after = checkFile(again);
    assert.deepEqual(
      after.findings.filter((f) => f.severity !== 'note'),
      [],
    );
  } finally {
    dir.remove();
  }
});

test('check names a corrupted superblock copy, table or bitmap with its location; repair fixes what it can', async () => {
  const dir = tempDir('outrig-check-');
  try {
    const file = join(dir.path, 'd.odsk');
    DiskEngine.create(file, { size: 16 << 20 });
    const e = await DiskEngine.open(file);
    await e.write(0, Buffer.alloc(200000, 1));
    await e.close(); // checkpoint: tables in the data area, superblock slot 1
    // 1. A damaged superblock copy: the other copy carries on; repair rewrites it.
    let img = readFileSync(file);
    const good = Buffer.from(img);
    img[4096 + 33]! ^= 1;
    writeFileSync(file, img);
    let r = checkFile(file);
    assert.ok(
      r.findings.some((f) => f.severity === 'warning' && /superblock slot 1 is damaged: superblock checksum mismatch/.test(f.message)),
      JSON.stringify(r.findings),
    );
    // 2. A bitmap that marks an in-use block free: an error, with the block named.
    writeFileSync(file, good);
    const probe = await DiskEngine.open(file, { readOnly: true });
    const { blockSize } = probe.info();
    await probe.close();
    const sbRaw = good.subarray(4096, 8192);
    const bitmapStart = sbRaw.readUInt32LE(120);
    const dataOffset = Number(sbRaw.readBigUInt64LE(64));
    img = Buffer.from(good);
    const bitsAt = dataOffset + bitmapStart * blockSize + 8;
    img[bitsAt] = 0; // blocks 0..7 marked free
    writeFileSync(file, img);
    r = checkFile(file);
    assert.equal(r.clean, false);
    assert.ok(
      r.findings.some((f) => /bitmap table checksum mismatch/.test(f.message) && f.fileOffset === bitsAt - 8),
      JSON.stringify(r.findings),
    );
    // 3. A damaged block map table: an error at the table's offset.
    const mapStart = sbRaw.readUInt32LE(104);
    img = Buffer.from(good);
    img[dataOffset + mapStart * blockSize + 12]! ^= 0x40;
    writeFileSync(file, img);
    r = checkFile(file);
    assert.ok(
      r.findings.some((f) => /block map table checksum mismatch/.test(f.message) && f.fileOffset === dataOffset + mapStart * blockSize),
      JSON.stringify(r.findings),
    );
    // 4. A block map entry pointing past the data area: refused at open, dropped by repair.
    writeFileSync(file, good);
    const w = await DiskEngine.open(file, { cache: 'writethrough' });
    await w.write(3 * 65536, Buffer.alloc(10, 9));
    (w as unknown as { head: { map: Map<number, number> & { set(v: number, p: number): void } } }).head.map.set(100, 999999);
    (w as unknown as { pending: { ops: unknown[] } }).pending.ops.push({ op: 1, v: 100, p: 999999 });
    await w.flush();
    await w.close().catch(() => undefined);
    r = checkFile(file);
    assert.ok(
      r.findings.some((f) => /virtual block 100 -> physical block 999999: physical block beyond the data area/.test(f.message)),
      JSON.stringify(r.findings),
    );
    await assert.rejects(DiskEngine.open(file), /inconsistent .*run 'outrig disk check --repair/);
    const { checkDisk } = await import('../../../src/disk/check.ts');
    const fixed = await checkDisk(file, { repair: true });
    assert.equal(fixed.clean, true, JSON.stringify(fixed.findings));
    assert.equal(fixed.repaired, true);
    const after = await DiskEngine.open(file, { readOnly: true });
    assert.ok(after.readBuffer(0, 196608).equals(Buffer.alloc(196608, 1)), 'good data survives the repair');
    assert.ok(after.readBuffer(196608, 10).equals(Buffer.alloc(10, 9)));
    await after.close();
  } finally {
    dir.remove();
  }
});
