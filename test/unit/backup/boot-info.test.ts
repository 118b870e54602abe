/** Boot loader and mount points read from outside a disk: pure functions over the boot sector and the filesystems' files. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { detectBootLoader, detectMounts, mountPoints, type FsView } from '../../../src/backup/boot-info.ts';
import type { DiskLayout } from '../../../src/backup/disk-layout.ts';

const layout: DiskLayout = {
  sizeBytes: 64 * 1024 * 1024,
  table: { label: 'gpt', id: 'X', sectorSize: 512 },
  partitions: [
    { index: 1, start: 2048, size: 2048, type: '21686148-6449-6E6F-744E-656564454649' },
    { index: 2, start: 4096, size: 81920, type: '0FC63DAF-8483-4772-8E7D-3D69D8477DE4', uuid: 'AAAA0000-1111-2222-3333-444455556666' },
    { index: 3, start: 86016, size: 32768, type: '0FC63DAF-8483-4772-8E7D-3D69D8477DE4', uuid: 'BBBB0000-1111-2222-3333-444455556666' },
  ],
  filesystems: [
    { partition: 2, type: 'ext4', uuid: '0b0e0b0e-1111-4222-8333-000000000001', label: 'root' },
    { partition: 3, type: 'ext4', uuid: '0b0e0b0e-1111-4222-8333-000000000002', label: 'data' },
  ],
};

const fsView = (partition: number, files: Record<string, string>): FsView => ({ partition, exists: (p) => p in files, read: (p) => files[p] });

test('mount points come from fstab lines naming this disk by UUID, LABEL or PARTUUID; the rest is ignored', () => {
  const fstab = [
    '# /etc/fstab',
    'UUID=0B0E0B0E-1111-4222-8333-000000000001 /  ext4 errors=remount-ro 0 1',
    'LABEL=data /srv/data ext4 defaults,noatime 0 2',
    'PARTUUID=bbbb0000-1111-2222-3333-444455556666 /also ext4 defaults 0 2',
    'UUID=ffffffff-0000-0000-0000-000000000000 /elsewhere ext4 defaults 0 2',
    '/dev/sdb1 none swap sw 0 0',
    'tmpfs /tmp tmpfs defaults 0 0',
    '',
  ].join('\n');
  assert.deepEqual(mountPoints(fstab, layout), [
    { partition: 2, mountPoint: '/', options: 'errors=remount-ro' },
    { partition: 3, mountPoint: '/srv/data', options: 'defaults,noatime' },
    { partition: 3, mountPoint: '/also', options: 'defaults' },
  ]);
  assert.deepEqual(
    detectMounts([fsView(3, {}), fsView(2, { '/etc/fstab': fstab })], layout).map((m) => m.mountPoint),
    ['/', '/srv/data', '/also'],
  );
  assert.deepEqual(detectMounts([fsView(2, {})], layout), []);
});

test("the boot loader: GRUB's boot sector and its grub.cfg; extlinux's ldlinux.sys; neither", () => {
  const grubSector = readFileSync('/usr/lib/grub/i386-pc/boot.img');
  assert.deepEqual(detectBootLoader(grubSector, [fsView(3, {}), fsView(2, { '/boot/grub/grub.cfg': 'linux /boot/vmlinuz' })]), {
    kind: 'grub',
    partition: 2,
    config: '/boot/grub/grub.cfg',
  });
  assert.deepEqual(detectBootLoader(grubSector, [fsView(2, {})]), { kind: 'grub' });
  const blank = Buffer.alloc(512);
  assert.deepEqual(detectBootLoader(blank, [fsView(2, { '/boot/syslinux/ldlinux.sys': '', '/boot/syslinux/extlinux.conf': 'DEFAULT linux' })]), {
    kind: 'extlinux',
    partition: 2,
    config: '/boot/syslinux/extlinux.conf',
  });
  assert.deepEqual(
    detectBootLoader(blank, [fsView(2, { '/boot/grub/grub.cfg': '' })]),
    { kind: 'unknown' },
    'a grub.cfg without GRUB in the boot sector is not proof',
  );
});
