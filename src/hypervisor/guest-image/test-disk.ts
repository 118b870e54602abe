/**
 * A bootable test disk from Debian packages only, without loop devices or mounts (but for the
 * extlinux variant, which can only be installed on a mounted filesystem): an MBR
 * partition table (sfdisk), an ext4 root filesystem made from a directory (mkfs.ext4 -d) holding
 * the test guest's kernel and initramfs, and GRUB written by hand (boot.img in the MBR, a core.img
 * built by grub-mkimage in the gap after it). The firmware boots it like any disk; the guest is the
 * same test guest as the kernel image, found by name over SMBIOS.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { installExtlinux } from '../../backup/index.ts';
import { buildTestGuest } from './test-guest.ts';

const EXTLINUX_CONFIG = '/boot/syslinux/extlinux.conf';

const run = promisify(execFile);
const SECTOR = 512;
const PART_START = 2048;

export interface TestDisk {
  path: string;
  sizeBytes: number;
  readyMarker: string;
  rootUuid: string;
  dataUuid?: string;
}

interface TestDiskOptions {
  sizeMiB?: number;
  /** A second partition with an ext4 filesystem `outrig-data` holding these files (path → content). */
  data?: { sizeMiB: number; files: Record<string, string | Buffer>; uuid?: string };
  rootUuid?: string;
  /** grub (default: written by hand, no mount) or extlinux (installed on the mounted root: needs a loop device). */
  bootLoader?: 'grub' | 'extlinux';
}

export async function buildTestDisk(out: string, opts: TestDiskOptions = {}): Promise<TestDisk> {
  const dataMiB = opts.data?.sizeMiB ?? 0;
  const sizeMiB = (opts.sizeMiB ?? 32) + dataMiB;
  const work = await mkdtemp(join(tmpdir(), 'outrig-test-disk-'));
  try {
    const guest = await buildTestGuest({ outDir: join(work, 'guest') });
    const root = join(work, 'rootfs');
    await mkdir(join(root, 'boot', 'grub'), { recursive: true });
    await copyFile(join(work, 'guest', 'vmlinuz'), join(root, 'boot', 'vmlinuz'));
    await copyFile(join(work, 'guest', 'initrd.img'), join(root, 'boot', 'initrd.img'));
    const extlinux = opts.bootLoader === 'extlinux';
    if (extlinux) {
      await mkdir(join(root, 'boot', 'syslinux'), { recursive: true });
      await writeFile(
        join(root, EXTLINUX_CONFIG),
        [
          'DEFAULT linux',
          'TIMEOUT 0',
          'PROMPT 0',
          'SERIAL 0 115200',
          'LABEL linux',
          '  LINUX /boot/vmlinuz',
          '  INITRD /boot/initrd.img',
          `  APPEND ${guest.cmdline}`,
          '',
        ].join('\n'),
      );
    } else {
      await writeFile(
        join(root, 'boot', 'grub', 'grub.cfg'),
        ['set timeout=0', `linux /boot/vmlinuz ${guest.cmdline}`, 'initrd /boot/initrd.img', 'boot', ''].join('\n'),
      );
    }
    const uuid = opts.rootUuid ?? randomUUID();
    const fsBytes = (sizeMiB - dataMiB - 1) * 1024 * 1024;
    const fsImage = join(work, 'root.img');
    await run('mkfs.ext4', ['-q', '-F', '-b', '4096', '-d', root, '-U', uuid, '-L', 'outrig-root', fsImage, `${fsBytes / 1024}k`]);

    const disk = join(work, 'disk.raw');
    await writeFile(disk, '');
    const fd = await open(disk, 'r+');
    try {
      await fd.truncate(sizeMiB * 1024 * 1024);
    } finally {
      await fd.close();
    }
    // sfdisk reads its script on stdin.
    await new Promise<void>((resolve, reject) => {
      const p = execFile('sfdisk', ['-q', disk], (e) => (e ? reject(e) : resolve()));
      const data = dataMiB ? `start=${PART_START + fsBytes / SECTOR}, size=${(dataMiB * 1024 * 1024) / SECTOR}, type=83\n` : '';
      p.stdin!.end(`label: dos\nlabel-id: 0x0ad15c00\nstart=${PART_START}, size=${fsBytes / SECTOR}, type=83, bootable\n${data}`);
    });
    let dataUuid: string | undefined;
    if (opts.data) {
      const dir = join(work, 'datafs');
      for (const [path, content] of Object.entries(opts.data.files)) {
        await mkdir(join(dir, path, '..'), { recursive: true });
        await writeFile(join(dir, path), content);
      }
      await mkdir(dir, { recursive: true });
      dataUuid = opts.data.uuid ?? randomUUID();
      // Written straight into the disk at the partition's offset (no loop device, no separate image).
      await run('mkfs.ext4', [
        '-q',
        '-F',
        '-b',
        '4096',
        '-E',
        `offset=${PART_START * SECTOR + fsBytes}`,
        '-d',
        dir,
        '-U',
        dataUuid,
        '-L',
        'outrig-data',
        disk,
        `${dataMiB * 1024}k`,
      ]);
    }
    const fs = await readFile(fsImage);
    const d = await open(disk, 'r+');
    try {
      await d.write(fs, 0, fs.length, PART_START * SECTOR);
    } finally {
      await d.close();
    }
    if (extlinux) await installExtlinuxBoot(disk, fsBytes);
    else await installGrub(disk, work, uuid);
    await mkdir(join(out, '..'), { recursive: true });
    await copyFile(disk, out);
    return { path: out, sizeBytes: sizeMiB * 1024 * 1024, readyMarker: guest.readyMarker, rootUuid: uuid, dataUuid };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** syslinux's MBR boot code, and extlinux installed on the (mounted) root filesystem. */
async function installExtlinuxBoot(disk: string, fsBytes: number): Promise<void> {
  const d = await open(disk, 'r+');
  try {
    await d.write(await readFile('/usr/lib/syslinux/mbr/mbr.bin'), 0, 440, 0);
  } finally {
    await d.close();
  }
  await installExtlinux(disk, { offset: PART_START * SECTOR, sizeBytes: fsBytes }, '/boot/syslinux', EXTLINUX_CONFIG);
}

/** GRUB by hand: boot.img in the MBR, a core.img that finds the root by UUID in the gap after it. */
async function installGrub(disk: string, work: string, uuid: string): Promise<void> {
  const early = join(work, 'early.cfg');
  await writeFile(
    early,
    [
      'serial --unit=0 --speed=115200',
      'terminal_input serial',
      'terminal_output serial',
      `search --no-floppy --fs-uuid --set=root ${uuid}`,
      'set prefix=($root)/boot/grub',
      '',
    ].join('\n'),
  );
  const core = join(work, 'core.img');
  await run('grub-mkimage', [
    '-O',
    'i386-pc',
    '-o',
    core,
    '-c',
    early,
    '-p',
    '/boot/grub',
    'biosdisk',
    'part_msdos',
    'ext2',
    'search',
    'search_fs_uuid',
    'normal',
    'configfile',
    'linux',
    'serial',
    'terminal',
    'echo',
    'test',
  ]);
  const coreBytes = await readFile(core);
  if (coreBytes.length > (PART_START - 1) * SECTOR) throw new Error('GRUB core image does not fit before the partition');
  const bootImg = await readFile('/usr/lib/grub/i386-pc/boot.img');
  const d = await open(disk, 'r+');
  try {
    // boot.img's code goes in the first 440 bytes; the partition table after it stays.
    await d.write(bootImg, 0, 440, 0);
    // core.img at sector 1: where boot.img looks for it by default.
    await d.write(coreBytes, 0, coreBytes.length, SECTOR);
  } finally {
    await d.close();
  }
}
