/**
 * The disk under a path of this running machine, and where each of its partitions is mounted: what
 * a bare-metal record of a live machine reads (`backup create PATH --bmr`). The mount table and
 * sysfs are parsed here; bmr.ts reads the disk itself.
 */
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

interface MountEntry {
  /** major:minor of the filesystem's device. */
  devt: string;
  /** The directory of the filesystem this mount shows (`/` unless a bind mount of a subdirectory). */
  root: string;
  mountPoint: string;
  fsType: string;
}

/** Octal escapes of /proc/self/mountinfo (`\040` for a space). */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** /proc/self/mountinfo: `id parent maj:min root mountpoint options [optional...] - fstype source superoptions`. Pure. */
export function parseMountinfo(text: string): MountEntry[] {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      const f = l.split(' ');
      const dash = f.indexOf('-');
      return { devt: f[2]!, root: unescape(f[3]!), mountPoint: unescape(f[4]!), fsType: f[dash + 1] ?? '' };
    });
}

/** The mount a path is on: the last one (mounted over earlier ones) with the longest mount point containing it. Pure. */
export function mountOf(entries: MountEntry[], path: string): MountEntry | undefined {
  let best: MountEntry | undefined;
  for (const e of entries) {
    const inside = e.mountPoint === '/' || path === e.mountPoint || path.startsWith(`${e.mountPoint}/`);
    if (inside && (!best || e.mountPoint.length >= best.mountPoint.length)) best = e;
  }
  return best;
}

export interface LiveDisk {
  /** The disk's device node (/dev/sda, /dev/loop0). */
  device: string;
  sizeBytes: number;
  /** Partition number → where its whole filesystem is mounted (the first such mount). */
  mounted: Map<number, string>;
}

/** The partitioned disk holding the filesystem of `path`, and the mounts of its partitions. */
export function findLiveDisk(path: string, o: { sys?: string; mountinfo?: string; dev?: string } = {}): LiveDisk {
  const sys = o.sys ?? '/sys';
  const entries = parseMountinfo(readFileSync(o.mountinfo ?? '/proc/self/mountinfo', 'utf8'));
  const real = realpathSync(path);
  const m = mountOf(entries, real);
  if (!m) throw new Error(`${path} is on no mounted filesystem`);
  const part = join(sys, 'dev', 'block', m.devt);
  if (!existsSync(part))
    throw new Error(`${path} is on ${m.fsType} (device ${m.devt}), which is no block device: a bare-metal record needs a filesystem on a disk partition`);
  const partDir = realpathSync(part);
  if (!existsSync(join(partDir, 'partition'))) {
    throw new Error(
      `${path} is on ${basename(partDir)}, which is not a partition of a disk (a whole-disk filesystem, LVM or RAID): a bare-metal record is for partitioned disks`,
    );
  }
  const diskDir = dirname(partDir);
  const device = join(o.dev ?? '/dev', basename(diskDir));
  if (!existsSync(device)) throw new Error(`the disk of ${path} has no device node ${device}`);
  const mounted = new Map<number, string>();
  for (const child of readdirSync(diskDir)) {
    const dir = join(diskDir, child);
    if (!existsSync(join(dir, 'partition')) || !existsSync(join(dir, 'dev'))) continue;
    const devt = readFileSync(join(dir, 'dev'), 'utf8').trim();
    const mount = entries.find((e) => e.devt === devt && e.root === '/');
    if (mount) mounted.set(Number(readFileSync(join(dir, 'partition'), 'utf8').trim()), mount.mountPoint);
  }
  return { device, sizeBytes: Number(readFileSync(join(diskDir, 'size'), 'utf8').trim()) * 512, mounted };
}
