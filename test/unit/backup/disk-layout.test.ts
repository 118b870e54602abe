import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BIOS_BOOT_GUID, bootAreas, parseBlkid, parseDumpe2fs, parseSfdisk, sfdiskScript } from '../../../src/backup/disk-layout.ts';

const fixture = (f: string) => readFileSync(join(import.meta.dirname, '..', '..', 'fixtures', 'disk-layout', f), 'utf8');

test('MBR layout (recorded from the GRUB test disk): table id, partition, bootable flag; boot area up to the first partition', () => {
  const l = parseSfdisk(fixture('mbr-grub.sfdisk.json'));
  assert.equal(l.table.label, 'dos');
  assert.match(l.table.id, /^0x[0-9a-f]{8}$/);
  assert.deepEqual(l.partitions, [{ index: 1, start: 2048, size: 63488, type: '83', bootable: true }]);
  assert.deepEqual(bootAreas(l), [{ offset: 0, length: 2048 * 512, what: 'the boot sector and the gap before the first partition' }]);
  assert.equal(sfdiskScript(l), `label: dos\nlabel-id: ${l.table.id}\nunit: sectors\nstart=2048, size=63488, type=83, bootable\n`);
});

test('GPT layout with a BIOS-boot partition: uuids, names, attributes, and the BIOS-boot partition backed up raw', () => {
  const l = parseSfdisk(fixture('gpt-bios-grub.sfdisk.json'));
  assert.equal(l.table.label, 'gpt');
  assert.equal(l.table.firstLba, 2048);
  assert.equal(l.partitions[0]!.type, BIOS_BOOT_GUID);
  assert.deepEqual(l.partitions[1], { index: 2, start: 4096, size: 81920, type: '0FC63DAF-8483-4772-8E7D-3D69D8477DE4', uuid: '5A1C0F00-0000-4000-8000-0000000000A2', name: 'root', attrs: 'LegacyBIOSBootable' });
  assert.deepEqual(bootAreas(l).map((a) => [a.offset, a.length]), [[0, 2048 * 512], [2048 * 512, 2048 * 512]]);
  assert.match(sfdiskScript(l), /start=4096, size=81920, type=0FC63DAF-8483-4772-8E7D-3D69D8477DE4, uuid=5A1C0F00-0000-4000-8000-0000000000A2, name="root", attrs="LegacyBIOSBootable"\n$/);
  assert.throws(() => parseSfdisk('{"partitiontable":{"label":"sun","id":"x"}}'), /sun is not supported/);
});

test('filesystem identity: blkid export and the dumpe2fs header', () => {
  assert.deepEqual(parseBlkid('DEVNAME=/x\nLABEL=outrig-root\nUUID=bc58\nBLOCK_SIZE=4096\nTYPE=ext4\n'), { DEVNAME: '/x', LABEL: 'outrig-root', UUID: 'bc58', BLOCK_SIZE: '4096', TYPE: 'ext4' });
  const d = parseDumpe2fs(fixture('ext4.dumpe2fs.txt'));
  assert.ok(d.features.includes('metadata_csum') && d.features.includes('64bit') && d.features.includes('extent'));
  assert.equal(d.blockSize, 4096);
  assert.equal(d.inodeSize, 256);
});
