/**
 * Bare-metal recovery of a disk image: the GRUB test disk (with an extra file written into its
 * filesystem) is backed up file by file, the original is deleted, the image is rebuilt from the
 * snapshot, and it boots under QEMU to the guest's ready marker. The rebuilt disk has the same
 * partition table, the same filesystem UUID, label and features, and the same files.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { backupDiskImage, backupLiveDisk, restoreDiskImage, restoreSystemState } from '../../../src/backup/bmr.ts';
import { readDiskLayout } from '../../../src/backup/disk-layout.ts';
import { prune } from '../../../src/backup/prune.ts';
import { verifyRepository } from '../../../src/backup/verify.ts';
import { Repository } from '../../../src/backup/repository.ts';
import { LocalStorage } from '../../../src/backup/storage.ts';
import { buildTestDisk } from '../../../src/hypervisor/guest-image/test-disk.ts';
import { debugfs, filesOf } from '../../helpers/disk-files.ts';
import { mountDiskImage } from '../../helpers/loop-disk.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { waitUntil } from '../../helpers/wait.ts';

const tmp = tempDir('outrig-bmr-');
after(() => tmp.remove());

/** Boots a disk image under QEMU and waits for the marker on its serial console; false if it does not come. */
/**
 * Boots the image under TCG until the guest's ready marker (true) or, when `failure` is given,
 * until the boot loader shows it failed (false): a positive sign, not a timeout taken for one.
 */
async function boots(image: string, marker: string, failure?: RegExp): Promise<boolean> {
  const log = join(tmp.path, `serial-${Math.random().toString(16).slice(2)}.log`);
  const qemu = spawn(
    'qemu-system-x86_64',
    [
      '-machine',
      'q35,accel=tcg',
      '-cpu',
      'max',
      '-m',
      '256',
      '-nodefaults',
      '-display',
      'none',
      '-no-reboot',
      '-serial',
      `file:${log}`,
      '-smbios',
      'type=1,serial=bmr1',
      '-drive',
      `file=${image},format=raw,if=virtio`,
    ],
    { stdio: 'ignore' },
  );
  const text = () => (existsSync(log) ? readFileSync(log, 'utf8') : '');
  try {
    const outcome = await waitUntil(
      'the ready marker or a boot failure',
      () => (text().includes(marker) ? 'ready' : failure?.test(text()) ? 'failed' : undefined),
      120_000,
    );
    return outcome === 'ready';
  } catch (e) {
    throw new Error(`${(e as Error).message}; the console showed: ${JSON.stringify(text().slice(-1500))}`, { cause: e });
  } finally {
    qemu.kill('SIGKILL');
  }
}

/** What GRUB (its serial terminal set up in core.img) and SYSLINUX (SERIAL in its configuration) print when the configuration is broken. */
const GRUB_FAILED = /can't find command|grub>/;
const SYSLINUX_FAILED = /Could not find kernel image|boot:/;

test('a disk image backed up file by file is rebuilt from the snapshot and boots', async () => {
  const random = Buffer.alloc(1300 * 1024);
  for (let i = 0; i < random.length; i += 4) random.writeUInt32LE((i * 2654435761) >>> 0, i);
  const disk = await buildTestDisk(join(tmp.path, 'disk.raw'), {
    rootUuid: '0b0e0b0e-1111-4222-8333-000000000001',
    data: {
      sizeMiB: 16,
      uuid: '0b0e0b0e-1111-4222-8333-000000000002',
      files: { 'hello.txt': 'hello from the data filesystem\n', 'sub/nested.txt': 'nested\n', 'blob.bin': random },
    },
  });
  const before = await readDiskLayout(disk.path, disk.sizeBytes);
  const offset = before.partitions[0]!.start * 512;
  writeFileSync(join(tmp.path, 'note.txt'), 'written before the backup\n');
  execFileSync('debugfs', ['-w', '-R', `write ${join(tmp.path, 'note.txt')} note.txt`, `${disk.path}?offset=${offset}`], { stdio: 'ignore' });
  const files = filesOf(disk.path, offset);
  assert.ok(files['/note.txt'] && files['/boot/vmlinuz']);

  const storage = new LocalStorage(join(tmp.path, 'repo'));
  await storage.create();
  const repo = await Repository.init(storage, 'bmr', { scrypt: { N: 2 ** 10, r: 8, p: 1 } });
  const { id, manifest } = await backupDiskImage(repo, disk.path);
  assert.equal(manifest.bmrReady, true);
  assert.deepEqual(manifest.filesystems, [
    { partition: 1, path: '/p1' },
    { partition: 2, path: '/p2' },
  ]);
  assert.deepEqual(manifest.bootLoader, { kind: 'grub', partition: 1, config: '/boot/grub/grub.cfg' });
  const dataOffset = before.partitions[1]!.start * 512;
  const dataFiles = filesOf(disk.path, dataOffset);
  assert.deepEqual(Object.keys(dataFiles).sort(), ['/blob.bin', '/hello.txt', '/sub/nested.txt']);
  rmSync(disk.path);

  const reopened = await Repository.open(storage, 'bmr');
  const rebuilt = join(tmp.path, 'rebuilt.raw');
  await restoreDiskImage(reopened, await reopened.findSnapshot(id.slice(0, 10)), rebuilt);
  const after = await readDiskLayout(rebuilt, disk.sizeBytes);
  assert.deepEqual(after.table, before.table);
  assert.deepEqual(after.partitions, before.partitions);
  assert.deepEqual(
    after.filesystems.map((f) => [f.type, f.uuid, f.label, f.blockSize, f.inodeSize]),
    before.filesystems.map((f) => [f.type, f.uuid, f.label, f.blockSize, f.inodeSize]),
  );
  assert.deepEqual(after.filesystems[0]!.features?.sort(), before.filesystems[0]!.features?.sort());
  assert.deepEqual(
    after.filesystems.map((f) => [f.uuid, f.label]),
    [
      ['0b0e0b0e-1111-4222-8333-000000000001', 'outrig-root'],
      ['0b0e0b0e-1111-4222-8333-000000000002', 'outrig-data'],
    ],
  );
  assert.deepEqual(filesOf(rebuilt, offset), files);
  assert.deepEqual(filesOf(rebuilt, dataOffset), dataFiles);
  execFileSync('e2fsck', ['-fn', `${rebuilt}?offset=${dataOffset}`], { stdio: 'ignore' });
  execFileSync('e2fsck', ['-fn', `${rebuilt}?offset=${offset}`], { stdio: 'ignore' });

  assert.equal(await boots(rebuilt, disk.readyMarker), true, 'the rebuilt disk boots to the ready marker');

  // The boot areas are blobs only the manifest refers to: prune must keep them and verify must check them.
  const pruned = await prune(reopened, { last: 5 });
  assert.deepEqual(pruned.removed, []);
  assert.ok((await verifyRepository(reopened)).snapshots.every((s) => s.ok));
  const twice = join(tmp.path, 'rebuilt-after-prune.raw');
  await restoreDiskImage(reopened, await reopened.findSnapshot(id), twice);
  const head = (p: string) => readFileSync(p).subarray(0, offset);
  assert.ok(head(twice).equals(head(rebuilt)), 'the boot sector and gap come back after a prune');
});

test('system-state recovery puts the broken boot configuration back and leaves newer user data as it is', async () => {
  const disk = await buildTestDisk(join(tmp.path, 'ssr.raw'));
  const offset = (await readDiskLayout(disk.path, disk.sizeBytes)).partitions[0]!.start * 512;
  const goodCfg = debugfs(disk.path, offset, 'cat /boot/grub/grub.cfg');
  const storage = new LocalStorage(join(tmp.path, 'repo-ssr'));
  await storage.create();
  const repo = await Repository.init(storage, undefined);
  writeFileSync(join(tmp.path, 'data-v1.txt'), 'version 1\n');
  debugfs(disk.path, offset, `write ${join(tmp.path, 'data-v1.txt')} data.txt`, true);
  const { id, manifest } = await backupDiskImage(repo, disk.path);
  assert.deepEqual(manifest.ssr, ['/p1/boot']);

  // After the backup: user data changes, and the system configuration gets broken.
  writeFileSync(join(tmp.path, 'data-v2.txt'), 'version 2, after the backup\n');
  debugfs(disk.path, offset, 'rm data.txt', true);
  debugfs(disk.path, offset, `write ${join(tmp.path, 'data-v2.txt')} data.txt`, true);
  writeFileSync(join(tmp.path, 'broken.cfg'), 'this is not a grub configuration\n');
  debugfs(disk.path, offset, 'rm /boot/grub/grub.cfg', true);
  debugfs(disk.path, offset, `write ${join(tmp.path, 'broken.cfg')} /boot/grub/grub.cfg`, true);
  assert.equal(await boots(disk.path, disk.readyMarker, GRUB_FAILED), false, 'the broken disk does not boot');

  await restoreSystemState(repo, await repo.findSnapshot(id), disk.path);
  assert.equal(debugfs(disk.path, offset, 'cat /boot/grub/grub.cfg'), goodCfg);
  assert.equal(debugfs(disk.path, offset, 'cat /data.txt'), 'version 2, after the backup\n');
  execFileSync('e2fsck', ['-fn', `${disk.path}?offset=${offset}`], { stdio: 'ignore' });
  assert.equal(await boots(disk.path, disk.readyMarker), true, 'the disk boots again after the system-state restore');
});

test('an extlinux disk is rebuilt with extlinux installed again, and a system-state restore that rewrites ldlinux.sys installs it again too', async () => {
  const disk = await buildTestDisk(join(tmp.path, 'ext.raw'), { bootLoader: 'extlinux', rootUuid: '0b0e0b0e-2222-4222-8333-000000000001' });
  const layout = await readDiskLayout(disk.path, disk.sizeBytes);
  const offset = layout.partitions[0]!.start * 512;
  const files = filesOf(disk.path, offset);
  assert.ok(files['/boot/syslinux/ldlinux.sys'] && files['/boot/syslinux/extlinux.conf']);
  assert.equal(await boots(disk.path, disk.readyMarker), true, 'the extlinux disk boots as built');

  const storage = new LocalStorage(join(tmp.path, 'repo-ext'));
  await storage.create();
  const repo = await Repository.init(storage, undefined);
  const { id, manifest } = await backupDiskImage(repo, disk.path);
  assert.deepEqual(manifest.bootLoader, { kind: 'extlinux', partition: 1, config: '/boot/syslinux/extlinux.conf' });
  assert.equal(manifest.bmrReady, true);

  // Bare-metal: the filesystem is made anew from the files, so ldlinux.sys lands in new blocks.
  const rebuilt = join(tmp.path, 'ext-rebuilt.raw');
  await restoreDiskImage(repo, await repo.findSnapshot(id), rebuilt);
  const after = await readDiskLayout(rebuilt, disk.sizeBytes);
  assert.deepEqual(after.partitions, layout.partitions);
  assert.deepEqual(
    after.filesystems.map((f) => [f.uuid, f.label]),
    layout.filesystems.map((f) => [f.uuid, f.label]),
  );
  const back = filesOf(rebuilt, offset);
  // extlinux --install rewrites ldlinux.sys (it patches the file with its own location) and ldlinux.c32: all else is as backed up.
  for (const f of Object.keys(files).filter((x) => !/\/ldlinux\.(sys|c32)$/.test(x))) assert.deepEqual(back[f], files[f], f);
  execFileSync('e2fsck', ['-fn', `${rebuilt}?offset=${offset}`], { stdio: 'ignore' });
  assert.equal(await boots(rebuilt, disk.readyMarker), true, 'the rebuilt extlinux disk boots to the ready marker');

  // System state: a broken configuration, then the SSR group (/p1/boot, ldlinux.sys with it) put back.
  writeFileSync(join(tmp.path, 'broken.conf'), 'SERIAL 0 115200\nDEFAULT nothing\nPROMPT 0\nTIMEOUT 1\n');
  debugfs(rebuilt, offset, 'rm /boot/syslinux/extlinux.conf', true);
  debugfs(rebuilt, offset, `write ${join(tmp.path, 'broken.conf')} /boot/syslinux/extlinux.conf`, true);
  assert.equal(await boots(rebuilt, disk.readyMarker, SYSLINUX_FAILED), false, 'the broken disk does not boot');
  await restoreSystemState(repo, await repo.findSnapshot(id), rebuilt);
  assert.equal(debugfs(rebuilt, offset, 'cat /boot/syslinux/extlinux.conf'), debugfs(disk.path, offset, 'cat /boot/syslinux/extlinux.conf'));
  execFileSync('e2fsck', ['-fn', `${rebuilt}?offset=${offset}`], { stdio: 'ignore' });
  assert.equal(await boots(rebuilt, disk.readyMarker), true, 'the disk boots again after the system-state restore');
});

test("a live machine's disk (mounted filesystems, one inside the other) is recorded bare-metal through its mounts, rebuilt, and boots", async () => {
  const disk = await buildTestDisk(join(tmp.path, 'live.raw'), {
    rootUuid: '0b0e0b0e-3333-4222-8333-000000000001',
    data: { sizeMiB: 8, uuid: '0b0e0b0e-3333-4222-8333-000000000002', files: { 'hello.txt': 'data filesystem\n' } },
  });
  const layout = await readDiskLayout(disk.path, disk.sizeBytes);
  const [rootOffset, dataOffset] = layout.partitions.map((p) => p.start * 512) as [number, number];
  // The "machine": the disk on a loop device, its root mounted, the data filesystem mounted inside it.
  const root = join(tmp.path, 'live-root');
  const machine = await mountDiskImage(disk.path, root);
  let result: Awaited<ReturnType<typeof backupLiveDisk>> | undefined;
  const storage = new LocalStorage(join(tmp.path, 'repo-live'));
  await storage.create();
  const repo = await Repository.init(storage, undefined);
  try {
    writeFileSync(join(root, 'written-live.txt'), 'written while the machine runs\n');
    writeFileSync(join(root, 'data', 'more.txt'), 'more data\n');

    result = await backupLiveDisk(repo, root);
    assert.equal(result.disk.device, machine.loop);
    assert.deepEqual([...result.disk.mounted].sort(), [
      [1, root],
      [2, join(root, 'data')],
    ]);
    assert.deepEqual(result.manifest.filesystems, [
      { partition: 1, path: '/p1' },
      { partition: 2, path: '/p2' },
    ]);
    assert.equal(result.manifest.bmrReady, true);
    assert.equal(result.manifest.bootLoader?.kind, 'grub');
    const mountPoints = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '');
    assert.deepEqual(
      mountPoints.filter((m) => m.includes('outrig-bmr-') && !m.startsWith(tmp.path)),
      [],
      'no mount left behind',
    );
  } finally {
    machine.release();
  }
  const files = filesOf(disk.path, rootOffset);
  const dataFiles = filesOf(disk.path, dataOffset);
  assert.ok(files['/written-live.txt'] && dataFiles['/more.txt'], 'the live writes are on the disk');
  rmSync(disk.path);

  const rebuilt = join(tmp.path, 'live-rebuilt.raw');
  await restoreDiskImage(repo, await repo.findSnapshot(result.id), rebuilt);
  const after = await readDiskLayout(rebuilt, disk.sizeBytes);
  assert.deepEqual(after.partitions, layout.partitions);
  assert.deepEqual(
    after.filesystems.map((f) => [f.type, f.uuid, f.label, f.blockSize]),
    layout.filesystems.map((f) => [f.type, f.uuid, f.label, f.blockSize]),
  );
  // Each filesystem holds its own files only: the root has an empty /data, as on the disk.
  assert.deepEqual(filesOf(rebuilt, rootOffset), files);
  assert.deepEqual(filesOf(rebuilt, dataOffset), dataFiles);
  execFileSync('e2fsck', ['-fn', `${rebuilt}?offset=${rootOffset}`], { stdio: 'ignore' });
  assert.equal(await boots(rebuilt, disk.readyMarker), true, 'the rebuilt machine boots to the ready marker');
});
