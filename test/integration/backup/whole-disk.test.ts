/**
 * Disks without a partition table (issue 18, finding 3), backed up as vzdump would keep them: a
 * filesystem made on the whole disk file by file, anything else (a blank disk, bytes no filesystem
 * claims) block by block with its zeroes left out, deduplicated like the rest, and rebuilt. One of
 * them goes the controller's way: a volume's snapshot read over NBD into a scratch image, and the
 * rebuilt disk written into a new volume. Errors name the disk as the user knows it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { backupDiskImage, restoreDiskImage, restoreFilesIntoImage, restoreSystemState } from '../../../src/backup/bmr.ts';
import { readDiskLayout } from '../../../src/backup/disk-layout.ts';
import { copyImageToExport, withExportImage } from '../../../src/backup/nbd-source.ts';
import { prune } from '../../../src/backup/prune.ts';
import { Repository } from '../../../src/backup/repository.ts';
import { LocalStorage } from '../../../src/backup/storage.ts';
import { verifyRepository } from '../../../src/backup/verify.ts';
import { DiskEngine } from '../../../src/disk/engine.ts';
import { filesOf } from '../../helpers/disk-files.ts';
import { runCli, spawnOutrig, stopDaemon } from '../../helpers/processes.ts';
import { unrecognisedDisk, wholeDiskExt4 } from '../../helpers/small-disks.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { waitUntil } from '../../helpers/wait.ts';

const tmp = tempDir('outrig-whole-disk-');
after(() => tmp.remove());
let repo: Repository;
let storage: LocalStorage;

before(async () => {
  storage = new LocalStorage(join(tmp.path, 'repo'));
  await storage.create();
  repo = await Repository.init(storage, 'whole', { scrypt: { N: 2 ** 10, r: 8, p: 1 } });
});

const stored = async () => (await storage.list('data')).reduce((n, f) => n + f.size, 0);

test('a blank disk backs up as nothing and rebuilds as zeroes', async () => {
  const blank = join(tmp.path, 'blank.raw');
  execFileSync('truncate', ['-s', '64M', blank]);
  const before = await stored();
  const { id, manifest } = await backupDiskImage(repo, blank);
  assert.equal(manifest.layout.table.label, 'none');
  assert.deepEqual(manifest.rawAreas, []);
  assert.equal(manifest.bmrReady, true);
  assert.ok((await stored()) - before < 64 * 1024, 'no data stored for zeroes');
  const rebuilt = join(tmp.path, 'blank-rebuilt.raw');
  await restoreDiskImage(repo, await repo.findSnapshot(id), rebuilt);
  assert.ok(readFileSync(rebuilt).equals(Buffer.alloc(64 * 1024 * 1024)));
  await assert.rejects(
    restoreSystemState(repo, await repo.findSnapshot(id), rebuilt),
    /holds no system state \(its disk was kept block by block\): use a bare-metal restore/,
  );
});

test('an unpartitioned disk of unrecognised bytes, from a volume over NBD into a new volume: identical, deduplicated', async () => {
  const raw = join(tmp.path, 'noise.raw');
  const content = unrecognisedDisk(raw, 12);
  const vol = join(tmp.path, 'vol.odsk');
  const fresh = join(tmp.path, 'fresh.odsk');
  DiskEngine.create(vol, { size: content.length });
  DiskEngine.create(fresh, { size: content.length });
  const sock = join(tmp.path, 'nbd.sock');
  let server = spawnOutrig(['disk', 'serve', vol, '--socket', sock, '--name', 'vol'], {});
  await waitUntil('server', () => existsSync(sock), 15_000);
  execFileSync('nbdcopy', [raw, `nbd+unix:///vol?socket=${sock}`]);
  const work = join(tmp.path, 'work');
  mkdirSync(work);
  const first = await withExportImage(sock, 'vol', (image) => backupDiskImage(repo, image, { name: 'volume data1', source: 'volume data1' }), work);
  assert.deepEqual(readdirSync(work), [], 'the scratch image is gone');
  assert.equal(first.manifest.layout.table.label, 'none');
  // The zeroed quarter is left out: two stretches, the data around it.
  assert.deepEqual(
    first.manifest.rawAreas!.map((a) => [a.offset, a.length]),
    [
      [0, 3 * 1024 * 1024],
      [6 * 1024 * 1024, 6 * 1024 * 1024],
    ],
  );
  const before = await stored();
  const second = await withExportImage(sock, 'vol', (image) => backupDiskImage(repo, image, { name: 'volume data1', source: 'volume data1' }), work);
  assert.ok((await stored()) - before < 64 * 1024, 'the same disk again adds no data');
  await stopDaemon(server);
  assert.equal(
    (await verifyRepository(repo)).snapshots.every((s) => s.ok),
    true,
  );
  // The raw areas are blobs only the manifest refers to: prune keeps them.
  const pruned = await prune(repo, { last: 1 });
  assert.ok(pruned.removed.includes(first.id));

  const rebuilt = join(tmp.path, 'noise-rebuilt.raw');
  await restoreDiskImage(repo, await repo.findSnapshot(second.id), rebuilt);
  server = spawnOutrig(['disk', 'serve', fresh, '--socket', sock, '--name', 'new'], {});
  await waitUntil('server', () => existsSync(sock), 15_000);
  await copyImageToExport(rebuilt, sock, 'new');
  const back = join(tmp.path, 'back.raw');
  execFileSync('nbdcopy', [`nbd+unix:///new?socket=${sock}`, back]);
  await stopDaemon(server);
  assert.ok(readFileSync(back).equals(content), 'the new volume holds the same bytes');
});

test('ext4 made on the whole disk: backed up file by file, rebuilt with its identity and files', async () => {
  const disk = join(tmp.path, 'whole.raw');
  const big = Buffer.alloc(700 * 1024);
  for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i);
  wholeDiskExt4(
    disk,
    24,
    { 'etc/hostname': 'whole\n', 'home/alice/notes.txt': 'notes\n', 'data/blob.bin': big },
    { uuid: '5a5a5a5a-1111-4222-8333-444455556666', label: 'data' },
  );
  const files = filesOf(disk, 0);
  assert.ok(files['/home/alice/notes.txt'] && files['/data/blob.bin']);

  const { id, manifest, snapshot } = await backupDiskImage(repo, disk);
  assert.equal(manifest.layout.table.label, 'none');
  assert.deepEqual(manifest.filesystems, [{ partition: 0, path: '/p0' }]);
  assert.equal(manifest.rawAreas, undefined, 'a filesystem Outrig reads is not kept block by block');
  assert.equal(snapshot.source, `disk ${disk}`);
  assert.ok(manifest.ssr.includes('/p0/etc'));

  const rebuilt = join(tmp.path, 'whole-rebuilt.raw');
  await restoreDiskImage(repo, await repo.findSnapshot(id), rebuilt);
  const layout = await readDiskLayout(rebuilt, 24 * 1024 * 1024);
  assert.equal(layout.table.label, 'none');
  assert.deepEqual(
    layout.filesystems.map((f) => [f.partition, f.type, f.uuid, f.label]),
    [[0, 'ext4', '5a5a5a5a-1111-4222-8333-444455556666', 'data']],
  );
  assert.deepEqual(filesOf(rebuilt, 0), files, 'every file back, same mode and content');
  execFileSync('e2fsck', ['-fn', rebuilt], { stdio: 'ignore' });

  // A file put back into the disk it came from (what restore --include into a volume does).
  writeFileSync(join(tmp.path, 'changed.txt'), 'changed\n');
  execFileSync('debugfs', ['-w', '-R', `rm /home/alice/notes.txt`, rebuilt], { stdio: 'ignore' });
  await restoreFilesIntoImage(repo, await repo.findSnapshot(id), rebuilt, ['/p0/home/alice']);
  assert.deepEqual(filesOf(rebuilt, 0), files);
});

test('a disk Outrig cannot read is named as the user gave it, never by its scratch path', async () => {
  const disk = join(tmp.path, 'broken.raw');
  wholeDiskExt4(disk, 8, { 'a.txt': 'a\n' });
  // A superblock that claims more blocks than the disk has.
  const fd = readFileSync(disk);
  fd.writeUInt32LE(0x7fffffff, 1024 + 4);
  writeFileSync(disk, fd);
  await assert.rejects(backupDiskImage(repo, disk, { name: 'volume web-data' }), (e: Error) => {
    assert.match(e.message, /the whole disk of volume web-data holds an ext filesystem Outrig cannot read/);
    assert.ok(!e.message.includes(disk), e.message);
    return true;
  });
});

test('a partition table that cannot be read: the whole disk is kept block by block, and the backup says so', async () => {
  const disk = join(tmp.path, 'bad-table.raw');
  const content = unrecognisedDisk(disk, 4);
  content.fill(0, 446, 510);
  content.writeUInt8(0x83, 446 + 4);
  content.writeUInt32LE(2048, 446 + 8);
  content.writeUInt32LE(1 << 30, 446 + 12); // far past the disk's end
  content.writeUInt16LE(0xaa55, 510);
  writeFileSync(disk, content);
  const { id, manifest, warnings } = await backupDiskImage(repo, disk);
  assert.equal(manifest.layout.table.label, 'none');
  assert.match(warnings.join('\n'), /the partition table cannot be read \(partition 1 lies outside the disk\): the whole disk is kept block by block/);
  const rebuilt = join(tmp.path, 'bad-table-rebuilt.raw');
  await restoreDiskImage(repo, await repo.findSnapshot(id), rebuilt);
  assert.ok(readFileSync(rebuilt).equals(content));
});

test('from the command line: create --disk of an unpartitioned disk, restore latest --disk new.raw gives the same bytes; a qcow2 is refused with the fix', async () => {
  const cliRepo = join(tmp.path, 'cli-repo');
  const cli = (args: string[]) => runCli(['backup', '--repo', cliRepo, ...args], { OUTRIG_BACKUP_PASSPHRASE: 'whole' });
  const disk = join(tmp.path, 'cli-disk.raw');
  const content = unrecognisedDisk(disk, 4);
  assert.equal((await cli(['init'])).code, 0);
  const made = await cli(['create', '--disk', disk]);
  assert.equal(made.code, 0, made.stderr);
  assert.match(made.stdout, /no partition table, no filesystem Outrig reads: kept block by block, 3\.0 MiB of data\), BMR-ready/);
  const rebuilt = join(tmp.path, 'cli-new.raw');
  const back = await cli(['restore', 'latest', '--disk', rebuilt]);
  assert.equal(back.code, 0, back.stderr);
  assert.ok(readFileSync(rebuilt).equals(content));
  const qcow2 = join(tmp.path, 'blank.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', qcow2, '64M']);
  const refused = await cli(['create', '--disk', qcow2]);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /--disk \S+blank\.qcow2 is a qcow2 image: back up a raw one \(qemu-img convert -O raw \S+blank\.qcow2 disk\.raw\)/);
});
