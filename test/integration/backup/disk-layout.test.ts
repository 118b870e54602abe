/** Reading a real bootable disk image's layout from outside, and recreating its table from it. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { readDiskLayout, sfdiskScript } from '../../../src/backup/disk-layout.ts';
import { buildTestDisk } from '../../../src/hypervisor/guest-image/test-disk.ts';
import { tempDir } from '../../helpers/tmp.ts';

const tmp = tempDir('outrig-layout-');
after(() => tmp.remove());

test('the GRUB test disk: MBR table, one bootable partition, ext4 with its UUID, label and features; the table recreated on a blank disk reads back the same', async () => {
  const disk = await buildTestDisk(join(tmp.path, 'disk.raw'));
  const l = await readDiskLayout(disk.path, disk.sizeBytes);
  assert.equal(l.table.label, 'dos');
  assert.equal(l.partitions.length, 1);
  assert.equal(l.partitions[0]!.bootable, true);
  const fs = l.filesystems[0]!;
  assert.equal(fs.type, 'ext4');
  assert.equal(fs.label, 'outrig-root');
  assert.match(fs.uuid ?? '', /^[0-9a-f-]{36}$/);
  assert.ok(fs.features?.includes('extent'));
  assert.equal(fs.blockSize, 4096);
  // The identity blkid reads is the one the filesystem itself records.
  assert.match(
    execFileSync('dumpe2fs', ['-h', `${disk.path}?offset=${l.partitions[0]!.start * 512}`], { stdio: ['ignore', 'pipe', 'ignore'] }).toString(),
    new RegExp(`Filesystem UUID:\\s+${fs.uuid}`),
  );

  const blank = join(tmp.path, 'blank.raw');
  writeFileSync(blank, '');
  truncateSync(blank, disk.sizeBytes);
  execFileSync('sfdisk', ['-q', blank], { input: sfdiskScript(l) });
  const again = await readDiskLayout(blank, disk.sizeBytes);
  assert.deepEqual(again.table, l.table);
  assert.deepEqual(again.partitions, l.partitions);
  assert.deepEqual(again.filesystems, [], 'a recreated table has no filesystems yet');
});
