/**
 * A volume backed up from its disk-engine snapshot over NBD (what the agent does for an instance's
 * volume), deleted, and rebuilt into a new volume through NBD: the new volume reads back with the
 * same layout, filesystem identity and files, and no temporary image or device is left behind.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { backupDiskImage, restoreDiskImage } from '../../../src/backup/bmr.ts';
import { readDiskLayout } from '../../../src/backup/disk-layout.ts';
import { copyImageToExport, withExportImage } from '../../../src/backup/nbd-source.ts';
import { Repository } from '../../../src/backup/repository.ts';
import { LocalStorage } from '../../../src/backup/storage.ts';
import { DiskEngine } from '../../../src/disk/engine.ts';
import { buildTestDisk } from '../../../src/hypervisor/guest-image/test-disk.ts';
import { spawnOutrig, stopDaemon } from '../../helpers/processes.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { waitUntil } from '../../helpers/wait.ts';

const tmp = tempDir('outrig-volsrc-');
after(() => tmp.remove());

test('backup from a volume snapshot over NBD, rebuild into a new volume over NBD', async () => {
  const raw = await buildTestDisk(join(tmp.path, 'src.raw'));
  const layout = await readDiskLayout(raw.path, raw.sizeBytes);
  const vol = join(tmp.path, 'vol.odsk');
  const fresh = join(tmp.path, 'new.odsk');
  DiskEngine.create(vol, { size: raw.sizeBytes });
  DiskEngine.create(fresh, { size: raw.sizeBytes });
  const sock = join(tmp.path, 'nbd.sock');
  let server = spawnOutrig(['disk', 'serve', vol, '--socket', sock, '--name', 'vol'], {});
  await waitUntil('server', () => existsSync(sock), 15_000);
  execFileSync('nbdcopy', [raw.path, `nbd+unix:///vol?socket=${sock}`]);
  await stopDaemon(server);
  const e = await DiskEngine.open(vol);
  await e.createSnapshot('backup-1');
  await e.close();

  const storage = new LocalStorage(join(tmp.path, 'repo'));
  await storage.create();
  const repo = await Repository.init(storage, undefined);
  const work = join(tmp.path, 'work');
  execFileSync('mkdir', ['-p', work]);
  server = spawnOutrig(['disk', 'serve', vol, '--socket', sock, '--name', 'vol'], {});
  await waitUntil('server', () => existsSync(sock), 15_000);
  const { id } = await withExportImage(sock, 'vol@backup-1', (image) => backupDiskImage(repo, image), work);
  await stopDaemon(server);
  assert.deepEqual(readdirSync(work), [], 'the temporary image is gone');
  rmSync(vol);

  const rebuilt = join(tmp.path, 'rebuilt.raw');
  await restoreDiskImage(repo, await repo.findSnapshot(id), rebuilt);
  server = spawnOutrig(['disk', 'serve', fresh, '--socket', sock, '--name', 'new'], {});
  await waitUntil('server', () => existsSync(sock), 15_000);
  await copyImageToExport(rebuilt, sock, 'new');
  const back = join(tmp.path, 'back.raw');
  execFileSync('nbdcopy', [`nbd+unix:///new?socket=${sock}`, back]);
  await stopDaemon(server);
  const again = await readDiskLayout(back, raw.sizeBytes);
  assert.deepEqual(again.partitions, layout.partitions);
  assert.deepEqual(
    again.filesystems.map((f) => [f.uuid, f.label]),
    layout.filesystems.map((f) => [f.uuid, f.label]),
  );
  execFileSync('e2fsck', ['-fn', `${back}?offset=${layout.partitions[0]!.start * 512}`], { stdio: 'ignore' });
});
