/**
 * Issue 17, finding 6: a full host disk is an error of the requests that need new space, never
 * of a volume. diskd runs on a small ext4 file system; one volume fills it; the other volume keeps
 * serving reads and overwrites, refuses only writes to new blocks (ENOSPC, one request at a time),
 * and accepts them again once space is freed. Before the fix the victim's first refused write
 * marked it failed for good ("disk failed and stopped accepting writes").
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { Storage } from '../../../src/agent/storage.ts';
import { createLogger } from '../../../src/common/log.ts';
import { checkDisk } from '../../../src/disk/check.ts';
import { killProcessesUnder } from '../../helpers/cleanup.ts';
import { mountSmallFs, type SmallFs } from '../../helpers/small-fs.ts';
import { tempDir } from '../../helpers/tmp.ts';

const run = promisify(execFile);
const log = tempDir('outrig-full-disk-log-');
let fs: SmallFs;
let storage: Storage;
const uri = (name: string) => `nbd+unix:///${name}?socket=${storage.nbdSocket}`;

/** Runs qemu-io commands against a volume; returns its output (qemu-io reports failed commands there). */
async function io(name: string, ...cmds: string[]): Promise<string> {
  const r = await run('qemu-io', ['-f', 'raw', ...cmds.flatMap((c) => ['-c', c]), uri(name)]).catch((e: { stdout: string; stderr: string }) => e);
  return r.stdout + r.stderr;
}

function ok(out: string, what: string): void {
  assert.doesNotMatch(out, /failed|error/i, `${what}:\n${out}`);
}

before(async () => {
  fs = mountSmallFs(32);
  storage = new Storage(join(fs.path, 'diskd'), createLogger('test', { file: join(log.path, 'log') }));
  await storage.ensureRunning();
});

after(async () => {
  await storage?.stop();
  await killProcessesUnder(fs.path);
  fs?.release();
  log.remove();
});

test('a volume that fills the host disk breaks no other volume; the victim recovers when space is freed', async () => {
  await storage.createVolume('victim', { sizeBytes: 8 << 20 });
  await storage.createVolume('filler', { sizeBytes: 64 << 20 });
  ok(await io('victim', 'write -P 0x11 0 1M', 'flush'), 'the victim writes while there is space');

  // The filler takes every free block; its own writes past that fail with ENOSPC.
  const fill = await io('filler', ...Array.from({ length: 64 }, (_, i) => `write -P 0x22 ${i}M 1M`), 'flush');
  assert.match(fill, /No space left on device/, `filling the file system fails with ENOSPC:\n${fill}`);
  const filler = (await storage.volumes()).find((v) => v.name === 'filler')!;
  assert.ok(filler.usedBytes > 8 << 20, `the filler took the space (${filler.usedBytes} bytes)`);

  ok(await io('victim', 'read -P 0x11 0 1M'), 'the victim still reads');
  ok(await io('victim', 'write -P 0x33 0 512k', 'flush', 'read -P 0x33 0 512k', 'read -P 0x11 512k 512k'), 'the victim still overwrites');
  const refused = await io('victim', 'write -P 0x44 4M 1M');
  assert.match(refused, /write failed: No space left on device/, `a write to new blocks is refused for want of space:\n${refused}`);
  ok(await io('victim', 'write -P 0x55 0 64k', 'flush', 'read -P 0x55 0 64k', 'read -P 0x33 64k 448k'), 'the refused write did not stop the volume');
  // A refused write maps nothing: its blocks still read as zeros, not as whatever the file held.
  ok(await io('victim', 'read -P 0 4M 1M'), 'the refused range reads as before');

  await storage.deleteVolume('filler');
  ok(await io('victim', 'write -P 0x44 4M 1M', 'flush', 'read -P 0x44 4M 1M'), 'with space back, new blocks are written again');

  await storage.stop();
  const report = await checkDisk(join(storage.paths.volumes, 'victim.odsk'));
  assert.deepEqual(report.findings, [], `disk check finds nothing, not even a leaked block: ${JSON.stringify(report)}`);
  await storage.ensureRunning();
  ok(
    await io('victim', 'read -P 0x55 0 64k', 'read -P 0x33 64k 448k', 'read -P 0x11 512k 512k', 'read -P 0 1M 3M', 'read -P 0x44 4M 1M'),
    'everything reads back after a restart',
  );
});
