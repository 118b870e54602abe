/**
 * Bare-metal recovery of a disk image: the backup is file-based (each filesystem's files, read
 * out of the image by Outrig's own reader in a sandbox, no loop device and no mount: the disk is
 * the guest's, so hostile; see src/guest-disk) and carries what rebuilding the disk needs: the
 * layout (disk-layout.ts), each filesystem's identity, and the boot loader's raw areas. Restores
 * (bmr-restore.ts) make each filesystem again from files with mkfs.ext4 -d.
 *
 * In the snapshot, partition N's files are under /pN. A disk with no partition table is read the
 * way vzdump would keep it, only smaller: a filesystem on the whole disk file by file (as partition
 * 0, /p0), anything else (blank, or a filesystem Outrig does not read) block by block, its zeroes
 * left out (raw-areas.ts).
 */
import { execFile } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, realpathSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Archiver, type BackupOptions } from './archiver.ts';
import { Chunker, chunkLengths } from './chunker.ts';
import { detectBootLoader, detectMounts, type BootLoader, type FsView, type MountPoint } from './boot-info.ts';
import { bootAreas, partitionName, readDiskLayout, regionOf, type DiskLayout } from './disk-layout.ts';
import { saveRawAreas, type RawArea } from './raw-areas.ts';
import type { Repository, SnapshotRecord } from './repository.ts';
import { findLiveDisk, parseMountinfo, type LiveDisk } from './live-disk.ts';
import { writeXattrs } from './xattrs.ts';
import { extractFilesystem, noFollow, readSmallFile } from '../guest-disk/index.ts';

export { restoreDiskImage, restoreFilesIntoImage, restoreSystemState } from './bmr-restore.ts';

const run = promisify(execFile);

export interface BmrManifest {
  kind: 'disk-image';
  layout: DiskLayout;
  /** Raw areas (boot sector and gap, BIOS-boot partitions) as blobs. */
  bootAreas: { offset: number; length: number; what: string; content: string[] }[];
  /** Where each filesystem's files are in the snapshot. */
  filesystems: { partition: number; path: string }[];
  /** Partitions with no filesystem Outrig reads file by file, kept raw. */
  rawPartitions: { partition: number; content: string[] }[];
  /** A disk with no partition table and no filesystem Outrig reads: its data stretches, kept block by block (zeroes left out). */
  rawAreas?: RawArea[];
  /** The BMR group: everything a rebuild needs, all of it in this snapshot. */
  bmrReady: boolean;
  /** What the disk boots with (kind and configuration), and where its filesystems are mounted (from the root's /etc/fstab). */
  bootLoader?: BootLoader;
  mounts?: MountPoint[];
  /**
   * The SSR group: system state (OS configuration, boot files, boot loader configuration) as
   * snapshot paths, and the boot areas. Restoring it puts the system back and leaves user data as it is.
   */
  ssr: string[];
}

/** Blobs a snapshot's BMR manifest holds outside its file tree (boot areas, raw partitions), by what they are. */
export function manifestBlobs(manifest: unknown): { what: string; ids: string[] }[] {
  const m = manifest as Partial<BmrManifest> | undefined;
  if (m?.kind !== 'disk-image') return [];
  return [
    ...(m.bootAreas ?? []).map((a) => ({ what: `boot area ${a.what}`, ids: a.content })),
    ...(m.rawPartitions ?? []).map((r) => ({ what: `raw partition ${r.partition}`, ids: r.content })),
    ...(m.rawAreas ?? []).map((a) => ({ what: `raw disk area at ${a.offset}`, ids: a.content })),
  ];
}

/** Where system state lives on a Linux root filesystem. */
const SYSTEM_STATE_PATHS = ['/etc', '/boot', '/usr/lib/modules', '/lib/modules', '/var/lib/dpkg'];

async function saveRaw(repo: Repository, image: string, offset: number, length: number, signal?: AbortSignal): Promise<string[]> {
  const fd = openSync(image, 'r');
  try {
    const buf = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const n = readSync(fd, buf, got, length - got, offset + got);
      if (n === 0) break;
      got += n;
    }
    const ids: string[] = [];
    let at = 0;
    for (const n of chunkLengths(buf.subarray(0, got), new Chunker(repo.chunker, repo.gear))) {
      signal?.throwIfAborted();
      ids.push(await repo.saveBlob('data', buf.subarray(at, at + n)));
      at += n;
    }
    return ids;
  } finally {
    closeSync(fd);
  }
}

const FILE_SYSTEMS = /^ext[234]$/;

/** An entry of a guest's filesystem the backup did not carry, and why (escaped: the path is the guest's). */
interface SkippedEntry {
  path: string;
  why: string;
}

type DiskBackup = { id: string; snapshot: SnapshotRecord; manifest: BmrManifest; skipped: SkippedEntry[]; warnings: string[] };

interface DiskBackupOptions extends BackupOptions {
  /** What messages call the disk (default: its path): a volume read into a scratch image is the volume. */
  name?: string;
}

/** Backs up a disk image (a volume's snapshot exported as a file, or a disk): BMR-ready when every partition is covered. */
export async function backupDiskImage(repo: Repository, image: string, opts: DiskBackupOptions = {}): Promise<DiskBackup> {
  return backupDisk(repo, image, statSync(image).size, new Map(), { source: `disk ${image}`, ...opts });
}

/**
 * A bare-metal record of this running machine's disk (the one holding `path`): the partition
 * table, boot areas and filesystem identities read from the disk, and each mounted filesystem's
 * files read through its mount (a consistent view, unlike the device under a live filesystem).
 */
export async function backupLiveDisk(repo: Repository, path: string, opts: BackupOptions = {}): Promise<DiskBackup & { disk: LiveDisk }> {
  const disk = findLiveDisk(path);
  return { ...(await backupDisk(repo, disk.device, disk.sizeBytes, disk.mounted, { source: `disk ${disk.device}`, ...opts })), disk };
}

/**
 * A mounted filesystem, seen at `at` without the filesystems mounted inside it (a bind mount is
 * not recursive) and read-only. The caller unmounts it.
 */
async function bindReadOnly(mountPoint: string, at: string): Promise<void> {
  await run('mount', ['--bind', '-o', 'ro', mountPoint, at]).catch((e: Error & { stderr?: string }) => {
    throw new Error(`could not bind ${mountPoint} read-only to read it: ${e.stderr?.trim() || e.message}`, { cause: e });
  });
}

/** Mount points under `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  return parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'))
    .map((e) => e.mountPoint)
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/**
 * Backs up a disk (image file or device): each ext filesystem file by file, from its mount when
 * `mounted` names one (a live machine) or else out of the disk with debugfs; the rest as above.
 */
async function backupDisk(
  repo: Repository,
  image: string,
  sizeBytes: number,
  mounted: Map<number, string>,
  { name = image, ...opts }: DiskBackupOptions,
): Promise<DiskBackup> {
  const warnings: string[] = [];
  const layout = await readDiskLayout(image, sizeBytes, warnings, name);
  const skipped: SkippedEntry[] = [];
  // Real path: the mount table names mounts by it.
  const work = realpathSync(mkdtempSync(join(tmpdir(), 'outrig-bmr-')));
  try {
    const sources: { path: string; as: string }[] = [];
    const filesystems: BmrManifest['filesystems'] = [];
    for (const fs of layout.filesystems.filter((f) => FILE_SYSTEMS.test(f.type))) {
      opts.signal?.throwIfAborted();
      const region = regionOf(layout, fs.partition);
      const dir = join(work, `p${fs.partition}`);
      mkdirSync(dir);
      const mountPoint = mounted.get(fs.partition);
      if (mountPoint) await bindReadOnly(mountPoint, dir);
      else {
        const r = await extractFilesystem(image, dir, { offset: region.offset, size: region.sizeBytes, diskSize: sizeBytes }).catch((e: Error) => {
          throw new Error(`cannot read the filesystem on ${partitionName(fs.partition)} of ${name}: ${e.message}`, { cause: e });
        });
        await writeXattrs(r.xattrs);
        skipped.push(...r.skipped.map((x) => ({ path: `/p${fs.partition}${x.path.slice(1, -1)}`, why: x.why })));
        if (r.skippedCount > r.skipped.length)
          skipped.push({ path: `/p${fs.partition}`, why: `and ${r.skippedCount - r.skipped.length} more entries skipped` });
      }
      sources.push({ path: dir, as: `/p${fs.partition}` });
      filesystems.push({ partition: fs.partition, path: `/p${fs.partition}` });
    }
    const areas: BmrManifest['bootAreas'] = [];
    for (const a of bootAreas(layout)) areas.push({ ...a, content: await saveRaw(repo, image, a.offset, a.length, opts.signal) });
    const covered = new Set([
      ...filesystems.map((f) => f.partition),
      ...areas.map((a) => layout.partitions.find((p) => p.start * layout.table.sectorSize === a.offset)?.index),
    ]);
    const rawPartitions: BmrManifest['rawPartitions'] = [];
    for (const p of layout.partitions.filter((x) => !covered.has(x.index))) {
      rawPartitions.push({
        partition: p.index,
        content: await saveRaw(repo, image, p.start * layout.table.sectorSize, p.size * layout.table.sectorSize, opts.signal),
      });
    }
    const onRead = (bytes: number) => opts.onProgress?.({ files: 0, dirs: 0, bytes, bytesRead: bytes, unchanged: 0, errors: [] });
    const rawAreas = layout.table.label === 'none' && !filesystems.length ? await saveRawAreas(repo, image, 0, sizeBytes, onRead, opts.signal) : undefined;
    // The guest's symlinks are never followed: /etc/fstab -> /etc/shadow reads as no fstab.
    const ssr = filesystems.flatMap((f) => SYSTEM_STATE_PATHS.filter((p) => noFollow(join(work, `p${f.partition}`), p)).map((p) => `${f.path}${p}`));
    const views: FsView[] = filesystems.map((f) => {
      const root = join(work, `p${f.partition}`);
      return { partition: f.partition, exists: (p) => noFollow(root, p) !== undefined, read: (p) => readSmallFile(root, p) };
    });
    const bootSector = Buffer.alloc(512);
    const fd = openSync(image, 'r');
    try {
      readSync(fd, bootSector, 0, 512, 0);
    } finally {
      closeSync(fd);
    }
    const manifest: BmrManifest = {
      kind: 'disk-image',
      layout,
      bootAreas: areas,
      filesystems,
      rawPartitions,
      ...(rawAreas ? { rawAreas } : {}),
      bmrReady: true,
      ssr,
      bootLoader: detectBootLoader(bootSector, views),
      mounts: detectMounts(views, layout),
    };
    const { id, snapshot } = await new Archiver(repo, { ...opts, manifest }).run(sources);
    return { id, snapshot, manifest, skipped, warnings };
  } finally {
    await removeWork(work);
  }
}

/** The work directory, its binds undone first. Never a recursive delete across a mount that stayed: it would reach into the machine's files. */
async function removeWork(work: string): Promise<void> {
  for (const m of mountsUnder(work)) await run('umount', [m]).catch(() => undefined);
  const left = mountsUnder(work);
  if (left.length) throw new Error(`could not unmount ${left.join(', ')}: unmount by hand, then remove ${work}`);
  rmSync(work, { recursive: true, force: true });
}
