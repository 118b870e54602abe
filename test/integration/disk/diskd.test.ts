/**
 * diskd as the agent drives it: a separate process, started by the storage manager, serving
 * volumes over NBD and refusing what would orphan data (deleting a volume or snapshot that clones
 * still read).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import type { DiskdError } from '../../../src/agent/storage.ts';
import { Storage } from '../../../src/agent/storage.ts';
import { createLogger } from '../../../src/common/log.ts';
import { convertToOutrigDisk } from '../../../src/cli/commands/image.ts';
import { findProcessesWith } from '../../../src/hypervisor/process.ts';
import { killProcessesUnder } from '../../helpers/cleanup.ts';
import { tempDir } from '../../helpers/tmp.ts';

const run = promisify(execFile);

describe('diskd', () => {
  const dir = tempDir('outrig-diskd-');
  const storage = new Storage(join(dir.path, 'diskd'), createLogger('test', { file: join(dir.path, 'log') }));
  const uri = (exp: string) => `nbd+unix:///${exp}?socket=${storage.nbdSocket}`;

  before(() => storage.ensureRunning());
  after(async () => {
    await storage.stop();
    await killProcessesUnder(dir.path);
    dir.remove();
  });

  test('runs as its own process, once per directory', async () => {
    const pids = await findProcessesWith(join(dir.path, 'diskd'));
    assert.equal(pids.length, 1);
    await storage.ensureRunning();
    assert.deepEqual(await findProcessesWith(join(dir.path, 'diskd')), pids, 'a second ensureRunning reuses it');
  });

  test('creates volumes idempotently and serves them over NBD', async () => {
    const a = await storage.createVolume('v-a', { sizeBytes: 64 << 20 });
    const again = await storage.createVolume('v-a', { sizeBytes: 64 << 20 });
    assert.deepEqual(again, a);
    await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x42 0 1M', '-c', 'flush', uri('v-a')]);
    const r = await run('qemu-io', ['-f', 'raw', '-c', 'read -P 0x42 0 1M', uri('v-a')]);
    assert.doesNotMatch(r.stdout, /Pattern verification failed/);
    const [v] = (await storage.volumes()).filter((x) => x.name === 'v-a');
    assert.equal(v!.usedBytes, 1 << 20);
  });

  test('snapshots and clones share space; deletes that would orphan a clone are refused', async () => {
    await storage.createSnapshot('v-a', 's-1');
    await storage.createSnapshot('v-a', 's-1'); // idempotent
    await storage.createVolume('v-b', { sizeBytes: 64 << 20, source: { volume: 'v-a', snapshot: 's-1' } });
    const b = (await storage.volumes()).find((x) => x.name === 'v-b')!;
    assert.deepEqual(b.source, { volume: 'v-a', snapshot: 's-1' });
    assert.equal(b.usedBytes, 0, 'nothing copied until written');
    await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x77 0 4096', uri('v-b')]);
    const rb = await run('qemu-io', ['-f', 'raw', '-c', 'read -P 0x77 0 4096', '-c', 'read -P 0x42 4096 4096', uri('v-b')]);
    assert.doesNotMatch(rb.stdout, /Pattern verification failed/);
    const ra = await run('qemu-io', ['-f', 'raw', '-c', 'read -P 0x42 0 4096', uri('v-a')]);
    assert.doesNotMatch(ra.stdout, /Pattern verification failed/, 'the source is untouched');
    await assert.rejects(storage.deleteSnapshot('v-a', 's-1'), (e: DiskdError) => e.status === 409 && /has clones: v-b/.test(e.message));
    await assert.rejects(storage.deleteVolume('v-a'), (e: DiskdError) => e.status === 409);
    await storage.deleteVolume('v-b');
    await storage.deleteSnapshot('v-a', 's-1');
    await storage.deleteVolume('v-b'); // deleting what is gone is fine
  });

  test('images: registered once, cloned into volumes, grown', async () => {
    const raw = join(dir.path, 'img.raw');
    await run('qemu-img', ['create', '-q', '-f', 'raw', raw, '8M']);
    await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x11 0 64k', raw]);
    const staged = join(storage.paths.dir, 'incoming.odsk');
    await convertToOutrigDisk(raw, staged, { format: 'raw' });
    await storage.registerImage('img-t', staged);
    assert.equal(await storage.hasImage('img-t'), true);
    await storage.createVolume('v-c', { sizeBytes: 8 << 20, source: { image: 'img-t' } });
    await storage.resize('v-c', 16 << 20);
    const c = (await storage.volumes()).find((x) => x.name === 'v-c')!;
    assert.equal(c.sizeBytes, 16 << 20);
    assert.deepEqual(c.source, { image: 'img-t', snapshot: 'base' });
    const r = await run('qemu-io', ['-f', 'raw', '-c', 'read -P 0x11 0 64k', '-c', 'read -P 0 8M 8M', uri('v-c')]);
    assert.doesNotMatch(r.stdout, /Pattern verification failed/);
    await assert.rejects(storage.resize('v-c', 4 << 20), /shrinking a volume is not supported/);
  });

  test("reports its file system's size and free space, and what its volumes may still allocate", async () => {
    const before = (await storage.volumesAndSpace()).space!;
    const [size, avail] = (await run('df', ['-B1', '--output=size,avail', join(dir.path, 'diskd', 'volumes')])).stdout
      .trim()
      .split('\n')[1]!
      .trim()
      .split(/\s+/)
      .map(Number);
    assert.equal(before.totalBytes, size);
    assert.ok(Math.abs(before.freeBytes - avail!) < 64 << 20, `free ${before.freeBytes}, df ${avail}`);
    // A new 32 MiB volume may allocate all of it; each block written is that much less.
    await storage.createVolume('v-space', { sizeBytes: 32 << 20 });
    const made = (await storage.volumesAndSpace()).space!;
    assert.equal(made.provisionedBytes - before.provisionedBytes, 32 << 20);
    // Its journal's 4 MiB are reserved when it is made: gone from free space, not a promise.
    assert.equal(made.mayAllocateBytes - before.mayAllocateBytes, 32 << 20);
    await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x5 0 1M', '-c', 'flush', uri('v-space')]);
    const written = await storage.volumesAndSpace();
    assert.equal(made.mayAllocateBytes - written.space!.mayAllocateBytes, 1 << 20);
    assert.equal(written.volumes.find((v) => v.name === 'v-space')!.usedBytes, 1 << 20, 'the volumes and the space come from one look');
    // Rewriting blocks it has allocates nothing more.
    await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x6 0 1M', '-c', 'flush', uri('v-space')]);
    assert.equal((await storage.volumesAndSpace()).space!.mayAllocateBytes, written.space!.mayAllocateBytes);
    await storage.deleteVolume('v-space');
    assert.equal((await storage.volumesAndSpace()).space!.mayAllocateBytes, before.mayAllocateBytes);
  });

  test('bad names and missing sources are refused with a reason', async () => {
    await assert.rejects(storage.createVolume('../etc', { sizeBytes: 1 << 20 }), (e: DiskdError) => e.status === 400);
    await assert.rejects(storage.createVolume('v-x', { sizeBytes: 1 << 20, source: { volume: 'nope', snapshot: 's' } }), (e: DiskdError) => e.status === 404);
  });

  test('volumes survive a diskd restart', async () => {
    await storage.stop();
    assert.deepEqual(await findProcessesWith(join(dir.path, 'diskd')), []);
    await storage.ensureRunning();
    assert.ok((await storage.volumes()).some((v) => v.name === 'v-a'));
    const r = await run('qemu-io', ['-f', 'raw', '-c', 'read -P 0x42 0 1M', uri('v-a')]);
    assert.doesNotMatch(r.stdout, /Pattern verification failed/);
  });
});
