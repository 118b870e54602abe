/**
 * A disk image as a running machine would have it: on a loop device, its first partition mounted
 * at `root` and its second mounted inside it at `root/data`. This kernel has no MBR partition
 * parser, so partx adds the partition devices (shared/research/bootable-disk.md).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { waitUntil } from './wait.ts';

export interface MountedDisk {
  loop: string;
  root: string;
  /** Unmounts both filesystems and frees the loop device; safe to call twice. */
  release(): void;
}

export async function mountDiskImage(image: string, root: string): Promise<MountedDisk> {
  const loop = execFileSync('losetup', ['--find', '--show', image], { encoding: 'utf8' }).trim();
  const mounted: string[] = [];
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    for (const m of mounted) execFileSync('umount', [m]);
    spawnSync('partx', ['--delete', loop]);
    execFileSync('losetup', ['--detach', loop]);
  };
  try {
    if (!existsSync(`${loop}p1`)) execFileSync('partx', ['--add', loop]);
    await waitUntil('the partition devices', () => existsSync(`${loop}p1`) && existsSync(`${loop}p2`), 10_000, 50);
    mkdirSync(root, { recursive: true });
    execFileSync('mount', [`${loop}p1`, root]);
    mounted.unshift(root);
    mkdirSync(join(root, 'data'), { recursive: true });
    execFileSync('mount', [`${loop}p2`, join(root, 'data')]);
    mounted.unshift(join(root, 'data'));
    return { loop, root, release };
  } catch (e) {
    release();
    throw e;
  }
}
