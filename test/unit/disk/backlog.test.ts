/**
 * The write-back backlog limit (issue 17, finding 4): disks sharing a budget make their own
 * backlog durable once the total acknowledged-but-not-durable bytes pass the limit, so no number
 * of disks or writers can grow it without bound; under the limit write-back does not sync at all.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, afterEach, test } from 'node:test';
import { BacklogBudget } from '../../../src/disk/backlog.ts';
import { BlockFile } from '../../../src/disk/block-file.ts';
import { DiskEngine } from '../../../src/disk/engine.ts';
import { tempDir } from '../../helpers/tmp.ts';

const dir = tempDir('outrig-backlog-');
after(() => dir.remove());
const realSync = BlockFile.prototype.datasync;
afterEach(() => {
  BlockFile.prototype.datasync = realSync;
});

const CHUNK = 64 * 1024;

async function writeAcross(budget: BacklogBudget, tag: string): Promise<{ syncs: number; maxUsedAfterAck: number }> {
  const disks = await Promise.all(
    [0, 1].map((i) => {
      const path = join(dir.path, `${tag}-${i}.odsk`);
      DiskEngine.create(path, { size: 8 << 20 });
      return DiskEngine.open(path, { cache: 'writeback', backlog: budget });
    }),
  );
  let syncs = 0;
  BlockFile.prototype.datasync = function (this: BlockFile) {
    syncs++;
    return realSync.call(this);
  };
  let maxUsedAfterAck = 0;
  for (let n = 0; n < 64; n++) {
    await disks[n % 2]!.write((n >> 1) * CHUNK, Buffer.alloc(CHUNK, n + 1));
    maxUsedAfterAck = Math.max(maxUsedAfterAck, budget.used);
  }
  BlockFile.prototype.datasync = realSync;
  for (const [i, d] of disks.entries()) {
    for (let n = i; n < 64; n += 2) assert.deepEqual(d.readBuffer((n >> 1) * CHUNK, CHUNK), Buffer.alloc(CHUNK, n + 1));
    await d.close();
  }
  assert.equal(budget.used, 0, 'closing gives every byte back');
  return { syncs, maxUsedAfterAck };
}

test('disks sharing a backlog limit sync once the total passes it, and only then', async () => {
  const tight = new BacklogBudget(1 << 20);
  const t = await writeAcross(tight, 'tight');
  assert.ok(t.syncs >= 3, `4 MiB through a 1 MiB backlog needs syncs (${t.syncs})`);
  assert.ok(t.maxUsedAfterAck <= (1 << 20) + CHUNK, `the backlog stays within the limit plus one round (${t.maxUsedAfterAck})`);
  assert.ok(tight.peak <= (1 << 20) + CHUNK, `peak ${tight.peak}`);

  const roomy = new BacklogBudget(64 << 20);
  const r = await writeAcross(roomy, 'roomy');
  assert.equal(r.syncs, 0, 'under the limit, write-back acknowledges without syncing');
  assert.equal(roomy.peak, 4 << 20);
});

test('a backlog limit must be a positive number of bytes', () => {
  assert.throws(() => new BacklogBudget(0), /positive number of bytes/);
  assert.throws(() => new BacklogBudget(1.5), /positive number of bytes/);
});
