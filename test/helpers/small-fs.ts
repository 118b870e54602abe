/**
 * A small ext4 file system on a loop device, for tests that must run a host's disk full without
 * filling the machine's own. ext4 because it is what hosts run (its delayed allocation reserves
 * space at write time, so a full file system answers pwrite with ENOSPC, as on a real host).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './tmp.ts';

export interface SmallFs {
  /** Where it is mounted. */
  path: string;
  /** Unmounts it and removes its image; safe to call twice. */
  release(): void;
}

export function mountSmallFs(sizeMiB: number): SmallFs {
  const work = tempDir('outrig-small-fs-');
  const image = join(work.path, 'fs.img');
  const path = join(work.path, 'mnt');
  mkdirSync(path);
  execFileSync('truncate', ['-s', `${sizeMiB}M`, image]);
  // No reserved blocks: the test's root process would otherwise get 5% more than the free figure.
  execFileSync('mkfs.ext4', ['-q', '-F', '-m', '0', image]);
  execFileSync('mount', ['-o', 'loop', image, path]);
  let released = false;
  return {
    path,
    release() {
      if (released) return;
      released = true;
      spawnSync('umount', [path]);
      rmSync(image, { force: true });
      work.remove();
    },
  };
}
