import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { findLiveDisk, mountOf, parseMountinfo } from '../../../src/backup/live-disk.ts';

// Lines in the form the kernel writes them (proc(5)), with an escaped space in one mount point.
const MOUNTINFO = [
  '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
  '23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw',
  '24 22 8:2 / /data rw,relatime shared:2 - ext4 /dev/sda2 rw',
  '25 22 8:2 /exports /srv/my\\040share rw,relatime shared:2 - ext4 /dev/sda2 rw',
  '',
].join('\n');

test('mountinfo: device numbers, roots, unescaped mount points, types; the mount a path is on', () => {
  const m = parseMountinfo(MOUNTINFO);
  assert.deepEqual(
    m.map((e) => [e.devt, e.root, e.mountPoint, e.fsType]),
    [
      ['8:1', '/', '/', 'ext4'],
      ['0:21', '/', '/proc', 'proc'],
      ['8:2', '/', '/data', 'ext4'],
      ['8:2', '/exports', '/srv/my share', 'ext4'],
    ],
  );
  assert.equal(mountOf(m, '/etc/hosts')?.devt, '8:1');
  assert.equal(mountOf(m, '/data/x')?.mountPoint, '/data');
  assert.equal(mountOf(m, '/database')?.mountPoint, '/', 'a prefix of the name is not a parent directory');
  assert.equal(mountOf(m, '/proc')?.fsType, 'proc');
});

test("the disk of a path, and where its partitions are mounted, from a sysfs tree like the kernel's", () => {
  const root = mkdtempSync(join(tmpdir(), 'outrig-live-disk-'));
  try {
    // /sys/devices/.../sda with sda1 (mounted at /), sda2 (at /data) and sda3 (not mounted).
    const sda = join(root, 'devices', 'pci0000:00', 'block', 'sda');
    mkdirSync(join(root, 'dev', 'block'), { recursive: true });
    mkdirSync(sda, { recursive: true });
    writeFileSync(join(sda, 'size'), '2097152\n');
    writeFileSync(join(sda, 'dev'), '8:0\n');
    for (const [n, devt] of [
      [1, '8:1'],
      [2, '8:2'],
      [3, '8:3'],
    ] as const) {
      mkdirSync(join(sda, `sda${n}`));
      writeFileSync(join(sda, `sda${n}`, 'partition'), `${n}\n`);
      writeFileSync(join(sda, `sda${n}`, 'dev'), `${devt}\n`);
      symlinkSync(join(sda, `sda${n}`), join(root, 'dev', 'block', devt));
    }
    symlinkSync(sda, join(root, 'dev', 'block', '8:0'));
    mkdirSync(join(root, 'devnodes'));
    writeFileSync(join(root, 'devnodes', 'sda'), '');
    writeFileSync(join(root, 'mountinfo'), MOUNTINFO);
    const opts = { sys: root, mountinfo: join(root, 'mountinfo'), dev: join(root, 'devnodes') };
    const d = findLiveDisk('/', opts);
    assert.equal(d.device, join(root, 'devnodes', 'sda'));
    assert.equal(d.sizeBytes, 1024 ** 3);
    assert.deepEqual(
      [...d.mounted].sort(),
      [
        [1, '/'],
        [2, '/data'],
      ],
      'the whole filesystem mount, not the bind of a subdirectory; sda3 unmounted',
    );
    // A path on a filesystem with no block device, or on a whole disk, is refused with the reason.
    assert.throws(() => findLiveDisk('/proc', opts), /no block device/);
    writeFileSync(join(root, 'mountinfo'), '22 1 8:0 / / rw - ext4 /dev/sda rw\n');
    assert.throws(() => findLiveDisk('/', opts), /sda, which is not a partition of a disk/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
