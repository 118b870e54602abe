/**
 * The engine on a file system that runs out of space (issue 17, finding 6), every path where that
 * can happen: a round's data, a block that a round both writes and trims, a checkpoint's tables,
 * and a journal append. The file system is simulated by failing the engine's writes past a limit
 * (after writing what fits, as a short write does), because the order of the failures matters and
 * a real full file system cannot choose it; test/integration/disk/full-host-disk.test.ts plays the
 * real thing. Each time: the failing request alone gets ENOSPC, the disk keeps serving, nothing
 * acknowledged is lost across a reopen, and the file checks clean.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, afterEach, test } from 'node:test';
import { BlockFile } from '../../../src/disk/block-file.ts';
import { checkFile } from '../../../src/disk/check.ts';
import { DiskEngine, ENOSPC } from '../../../src/disk/engine.ts';
import { tempDir } from '../../helpers/tmp.ts';

const B = 4096;
const dir = tempDir('outrig-enospc-');
after(() => dir.remove());

const realWrite = BlockFile.prototype.write;
/** Writes by the disk at `path` that reach past `limit()` write what fits, then fail with ENOSPC. */
function fullAt(path: string, limit: () => number): void {
  BlockFile.prototype.write = function (this: BlockFile, pos: number, data: Uint8Array, offset = 0, len = data.length - offset) {
    if (this.path === path && pos + len > limit()) {
      const fits = Math.max(0, limit() - pos);
      if (fits) realWrite.call(this, pos, data, offset, fits);
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    }
    return realWrite.call(this, pos, data, offset, len);
  };
}
afterEach(() => {
  BlockFile.prototype.write = realWrite;
});

const fill = (byte: number, n = B) => Buffer.alloc(n, byte);
let nth = 0;
function newDisk(cache: 'writeback' | 'writethrough', journalSize = 64 * 1024): string {
  const path = join(dir.path, `d${nth++}.odsk`);
  DiskEngine.create(path, { size: 1 << 20, blockSize: B, journalSize });
  return path;
}

async function reopenedReads(path: string, expect: [number, Buffer][]): Promise<void> {
  // Notes (a journal to replay, after a close that found no room for a checkpoint) are fine.
  assert.deepEqual(
    checkFile(path).findings.filter((f) => f.severity !== 'note'),
    [],
    'the file checks clean, no block leaked',
  );
  const e = await DiskEngine.open(path, { readOnly: true });
  try {
    for (const [off, data] of expect) assert.deepEqual(e.readBuffer(off, data.length), data, `bytes at ${off} after a reopen`);
  } finally {
    await e.close();
  }
}

const rejectsNoSpace = (p: Promise<unknown>) => assert.rejects(p, (err: { errno?: number }) => err.errno === ENOSPC);

for (const cache of ['writethrough', 'writeback'] as const) {
  test(`${cache}: a write that finds no space fails alone; the disk keeps serving and recovers`, async () => {
    const path = newDisk(cache);
    const e = await DiskEngine.open(path, { cache });
    let limit = Infinity;
    fullAt(path, () => limit);
    await e.write(0, fill(1, 2 * B));
    await e.flush();
    limit = new BlockFile(path, true).size; // no room past what the file holds now
    // One round: an overwrite, and a write that spans a mapped block and a new one.
    const [over, spans] = await Promise.allSettled([e.write(0, fill(2)), e.write(B, fill(3, 2 * B))]);
    assert.equal(over.status, 'fulfilled', 'the overwrite in the same round succeeds');
    assert.equal(spans.status, 'rejected');
    assert.equal((spans as PromiseRejectedResult).reason.errno, ENOSPC);
    await e.flush();
    assert.deepEqual(e.readBuffer(2 * B, B), fill(0), 'the refused new block maps nothing: it still reads zeros');
    await e.write(B, fill(4));
    await e.flush();
    limit = Infinity;
    await e.write(2 * B, fill(5));
    await e.flush();
    await e.close();
    await reopenedReads(path, [
      [0, fill(2)],
      [B, fill(4)],
      [2 * B, fill(5)],
    ]);
  });
}

test('a block written, trimmed and written again in one round: only the piece that finds no space is undone', async () => {
  const path = newDisk('writethrough');
  const e = await DiskEngine.open(path, { cache: 'writethrough' });
  await e.write(0, fill(1));
  const end = new BlockFile(path, true).size;
  fullAt(path, () => end + B); // room for one new block
  const results = await Promise.allSettled([e.write(B, fill(7)), e.trim(B, B), e.write(B, fill(8))]);
  assert.deepEqual(
    results.map((r) => r.status),
    ['fulfilled', 'fulfilled', 'rejected'],
  );
  assert.deepEqual(e.readBuffer(B, B), fill(0), 'the block reads as the trim left it');
  await e.close();
  await reopenedReads(path, [
    [0, fill(1)],
    [B, fill(0)],
  ]);
});

test('a checkpoint that finds no space for its tables fails without harm and succeeds later', async () => {
  const path = newDisk('writethrough');
  const e = await DiskEngine.open(path, { cache: 'writethrough' });
  await e.write(0, fill(1, 4 * B));
  let limit = new BlockFile(path, true).size;
  fullAt(path, () => limit);
  await rejectsNoSpace(e.checkpointNow());
  await e.write(0, fill(2)); // the disk still takes overwrites
  limit = Infinity;
  await e.checkpointNow();
  await e.close();
  await reopenedReads(path, [
    [0, fill(2)],
    [B, fill(1, 3 * B)],
  ]);
});

test('a checkpoint the journal needs, with no space for its tables, fails the round, not the disk', async () => {
  const path = newDisk('writethrough', 64 * 1024);
  const e = await DiskEngine.open(path, { cache: 'writethrough' });
  // Single-block writes, one record each, until a checkpoint has run and the journal is one
  // record short of the half that triggers the next; the blocks the first checkpoint freed are
  // taken again by then, so the data area has no free block.
  let v = 0;
  const gen0 = e.info().generation;
  let record = 0;
  for (;;) {
    const before = e.info().journal.used;
    await e.write(v * B, fill(v & 0xff));
    v++;
    const { used, size } = e.info().journal;
    if (used > before) record = used - before;
    if (e.info().generation > gen0 && v > 8 && used + 2 * record > size / 2) break;
  }
  assert.equal(e.info().allocatedBlocks, e.info().dataAreaBlocks, 'no free block inside the data area');
  let limit = new BlockFile(path, true).size;
  fullAt(path, () => limit);
  const gen = e.info().generation;
  let refused = false;
  for (let t = 0; t < 4 && !refused; t++) await e.trim(t * B, B).catch((err: { errno?: number }) => (refused = err.errno === ENOSPC));
  assert.ok(refused, 'a trim whose record needed a checkpoint was refused for want of space');
  assert.equal(e.info().generation, gen, 'no checkpoint happened');
  await e.write((v - 1) * B, fill(0xee)); // overwrites still work
  limit = Infinity;
  await e.trim(5 * B, B);
  assert.ok(e.info().generation > gen, 'with space back, the checkpoint runs');
  await e.close();
  await reopenedReads(path, [
    [(v - 1) * B, fill(0xee)],
    [5 * B, fill(0)],
    [6 * B, fill(6)],
  ]);
});

test('a journal append cut short by a full file system: the round fails, the next commit checkpoints first', async () => {
  const path = newDisk('writethrough');
  const e = await DiskEngine.open(path, { cache: 'writethrough' });
  await e.write(0, fill(1));
  const journalEnd = 4096 * 2 + 64 * 1024; // past the superblocks and the journal: only the journal fails
  let failJournal = true;
  fullAt(path, () => Infinity);
  const inner = BlockFile.prototype.write;
  BlockFile.prototype.write = function (this: BlockFile, pos: number, data: Uint8Array, offset = 0, len = data.length - offset) {
    if (this.path === path && failJournal && pos < journalEnd && pos >= 8192) {
      failJournal = false;
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    }
    return inner.call(this, pos, data, offset, len);
  };
  await rejectsNoSpace(e.write(B, fill(2)));
  await e.write(2 * B, fill(3));
  await e.close();
  await reopenedReads(path, [
    [0, fill(1)],
    [2 * B, fill(3)],
  ]);
});
