import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BIOS_BOOT_GUID, bootAreas, sfdiskScript, unquotableNames, type DiskLayout } from '../../../src/backup/disk-layout.ts';

const fixture = (f: string) => readFileSync(join(import.meta.dirname, '..', '..', 'fixtures', 'disk-layout', f), 'utf8');

/** A layout as sfdisk --json recorded it (the reader in src/guest-disk reports the same; test/integration/guest-disk checks that on real tables). */
function recorded(f: string): Pick<DiskLayout, 'table' | 'partitions'> {
  const t = JSON.parse(fixture(f)).partitiontable;
  return {
    table: { label: t.label, id: t.id, sectorSize: t.sectorsize ?? 512, firstLba: t.firstlba, lastLba: t.lastlba },
    partitions: t.partitions.map((p: Record<string, unknown>) => {
      const { node, ...rest } = p;
      return { index: Number(/(\d+)$/.exec(String(node))![1]), ...rest };
    }),
  };
}

test('MBR layout (recorded from the GRUB test disk): table id, partition, bootable flag; boot area up to the first partition', () => {
  const l = recorded('mbr-grub.sfdisk.json');
  assert.equal(l.table.label, 'dos');
  assert.match(l.table.id, /^0x[0-9a-f]{8}$/);
  assert.deepEqual(l.partitions, [{ index: 1, start: 2048, size: 63488, type: '83', bootable: true }]);
  assert.deepEqual(bootAreas(l), [{ offset: 0, length: 2048 * 512, what: 'the boot sector and the gap before the first partition' }]);
  assert.equal(sfdiskScript(l), `label: dos\nlabel-id: ${l.table.id}\nunit: sectors\nstart=2048, size=63488, type=83, bootable\n`);
});

test('GPT layout with a BIOS-boot partition: uuids, names, attributes, and the BIOS-boot partition backed up raw', () => {
  const l = recorded('gpt-bios-grub.sfdisk.json');
  assert.equal(l.table.label, 'gpt');
  assert.equal(l.table.firstLba, 2048);
  assert.equal(l.partitions[0]!.type, BIOS_BOOT_GUID);
  assert.deepEqual(l.partitions[1], {
    index: 2,
    start: 4096,
    size: 81920,
    type: '0FC63DAF-8483-4772-8E7D-3D69D8477DE4',
    uuid: '5A1C0F00-0000-4000-8000-0000000000A2',
    name: 'root',
    attrs: 'LegacyBIOSBootable',
  });
  assert.deepEqual(
    bootAreas(l).map((a) => [a.offset, a.length]),
    [
      [0, 2048 * 512],
      [2048 * 512, 2048 * 512],
    ],
  );
  assert.match(
    sfdiskScript(l),
    /start=4096, size=81920, type=0FC63DAF-8483-4772-8E7D-3D69D8477DE4, uuid=5A1C0F00-0000-4000-8000-0000000000A2, name="root", attrs="LegacyBIOSBootable"\n$/,
  );
});

test("a partition name sfdisk's script cannot quote stays out of the script and is set apart", () => {
  const l = recorded('gpt-bios-grub.sfdisk.json');
  l.partitions[1]!.name = 'root"\nlabel: dos';
  const script = sfdiskScript(l);
  assert.doesNotMatch(script, /label: dos/);
  assert.equal(script.split('\n').length, 7);
  assert.deepEqual(unquotableNames(l), [[2, 'root"\nlabel: dos']]);
});
