/**
 * Bare-metal recovery of a disk image: the backup is file-based (each filesystem's files, read
 * from the image with debugfs, no loop device and no mount) and carries what rebuilding the disk
 * needs: the layout (disk-layout.ts), each filesystem's identity, and the boot loader's raw areas.
 * The restore recreates the partition table, writes the boot areas back, and makes each filesystem
 * again with the same UUID, label, block and inode size from the restored files (mkfs.ext4 -d),
 * so a boot loader that finds its root by UUID (GRUB) boots the result as it booted the original.
 *
 * In the snapshot, partition N's files are under /pN.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, realpathSync, readdirSync, readFileSync, readlinkSync, mkdtempSync, openSync, readSync, rmSync, statSync, truncateSync, writeFileSync, writeSync, closeSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { promisify } from 'node:util';
import { Archiver, type BackupOptions } from './archiver.ts';
import { Chunker, chunkLengths } from './chunker.ts';
import { detectBootLoader, detectMounts, type BootLoader, type FsView, type MountPoint } from './boot-info.ts';
import { bootAreas, readDiskLayout, sfdiskScript, type DiskLayout } from './disk-layout.ts';
import type { Repository, SnapshotRecord } from './repository.ts';
import { Restorer } from './restorer.ts';
import { findLiveDisk, parseMountinfo, type LiveDisk } from './live-disk.ts';
import { installExtlinux } from './extlinux.ts';

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
  ];
}

/** Where system state lives on a Linux root filesystem. */
export const SYSTEM_STATE_PATHS = ['/etc', '/boot', '/usr/lib/modules', '/lib/modules', '/var/lib/dpkg'];

async function saveRaw(repo: Repository, image: string, offset: number, length: number): Promise<string[]> {
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
      ids.push(await repo.saveBlob('data', buf.subarray(at, at + n)));
      at += n;
    }
    return ids;
  } finally {
    closeSync(fd);
  }
}

async function writeRaw(repo: Repository, image: string, offset: number, ids: string[]): Promise<void> {
  const fd = openSync(image, 'r+');
  try {
    let at = offset;
    for (const id of ids) {
      const data = await repo.loadBlob(id);
      writeSync(fd, data, 0, data.length, at);
      at += data.length;
    }
  } finally {
    closeSync(fd);
  }
}

const FILE_SYSTEMS = /^ext[234]$/;

type DiskBackup = { id: string; snapshot: SnapshotRecord; manifest: BmrManifest };

/** Backs up a disk image (a volume's snapshot exported as a file, or a disk): BMR-ready when every partition is covered. */
export async function backupDiskImage(repo: Repository, image: string, opts: BackupOptions = {}): Promise<DiskBackup> {
  return backupDisk(repo, image, statSync(image).size, new Map(), opts);
}

/**
 * A bare-metal record of this running machine's disk (the one holding `path`): the partition
 * table, boot areas and filesystem identities read from the disk, and each mounted filesystem's
 * files read through its mount (a consistent view, unlike the device under a live filesystem).
 */
export async function backupLiveDisk(repo: Repository, path: string, opts: BackupOptions = {}): Promise<DiskBackup & { disk: LiveDisk }> {
  const disk = findLiveDisk(path);
  return { ...(await backupDisk(repo, disk.device, disk.sizeBytes, disk.mounted, opts)), disk };
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
async function backupDisk(repo: Repository, image: string, sizeBytes: number, mounted: Map<number, string>, opts: BackupOptions): Promise<DiskBackup> {
  const layout = await readDiskLayout(image, sizeBytes);
  // Real path: the mount table names mounts by it.
  const work = realpathSync(mkdtempSync(join(tmpdir(), 'outrig-bmr-')));
  try {
    const sources: { path: string; as: string }[] = [];
    const filesystems: BmrManifest['filesystems'] = [];
    for (const fs of layout.filesystems.filter((f) => FILE_SYSTEMS.test(f.type))) {
      const p = layout.partitions.find((x) => x.index === fs.partition)!;
      const dir = join(work, `p${fs.partition}`);
      mkdirSync(dir);
      const mountPoint = mounted.get(fs.partition);
      if (mountPoint) await bindReadOnly(mountPoint, dir);
      else {
        await run('debugfs', ['-R', `rdump / ${dir}`, `${image}?offset=${p.start * layout.table.sectorSize}`]);
        // mkfs makes its own lost+found on restore.
        rmSync(join(dir, 'lost+found'), { recursive: true, force: true });
      }
      sources.push({ path: dir, as: `/p${fs.partition}` });
      filesystems.push({ partition: fs.partition, path: `/p${fs.partition}` });
    }
    const areas: BmrManifest['bootAreas'] = [];
    for (const a of bootAreas(layout)) areas.push({ ...a, content: await saveRaw(repo, image, a.offset, a.length) });
    const covered = new Set([...filesystems.map((f) => f.partition), ...areas.map((a) => layout.partitions.find((p) => p.start * layout.table.sectorSize === a.offset)?.index)]);
    const rawPartitions: BmrManifest['rawPartitions'] = [];
    for (const p of layout.partitions.filter((x) => !covered.has(x.index))) {
      rawPartitions.push({ partition: p.index, content: await saveRaw(repo, image, p.start * layout.table.sectorSize, p.size * layout.table.sectorSize) });
    }
    const ssr = filesystems.flatMap((f) => SYSTEM_STATE_PATHS.filter((p) => existsSync(join(work, `p${f.partition}`, p))).map((p) => `${f.path}${p}`));
    const views: FsView[] = filesystems.map((f) => {
      const root = join(work, `p${f.partition}`);
      return {
        partition: f.partition,
        exists: (p) => existsSync(join(root, p)),
        read: (p) => (existsSync(join(root, p)) && statSync(join(root, p)).size < 1024 * 1024 ? readFileSync(join(root, p), 'utf8') : undefined),
      };
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
      bmrReady: true,
      ssr,
      bootLoader: detectBootLoader(bootSector, views),
      mounts: detectMounts(views, layout),
    };
    const { id, snapshot } = await new Archiver(repo, { ...opts, manifest }).run(sources);
    return { id, snapshot, manifest };
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

/** Rebuilds a disk image from a BMR-ready snapshot: table, boot areas, filesystems with their identities. */
export async function restoreDiskImage(repo: Repository, snapshot: SnapshotRecord, image: string): Promise<void> {
  const m = snapshot.manifest as BmrManifest | undefined;
  if (!m || m.kind !== 'disk-image' || !m.bmrReady) throw new Error('this snapshot is not BMR-ready: it has no disk layout (make it from a disk or volume)');
  if (m.bootLoader?.kind === 'extlinux' && !m.bootLoader.config) {
    throw new Error(`this disk boots with extlinux from partition ${m.bootLoader.partition}, but the backup found no extlinux configuration next to ldlinux.sys, so it cannot be installed again`);
  }
  const ss = m.layout.table.sectorSize;
  writeFileSync(image, '');
  truncateSync(image, m.layout.sizeBytes);
  const r = spawnSync('sfdisk', ['-q', image], { input: sfdiskScript(m.layout) });
  if (r.status !== 0) throw new Error(`sfdisk could not write the partition table: ${r.stderr.toString().trim()}`);
  for (const a of m.bootAreas) await writeRaw(repo, image, a.offset, a.content);
  for (const r of m.rawPartitions) {
    const p = m.layout.partitions.find((x) => x.index === r.partition)!;
    await writeRaw(repo, image, p.start * ss, r.content);
  }
  const work = mkdtempSync(join(tmpdir(), 'outrig-bmr-restore-'));
  try {
    for (const f of m.filesystems) {
      const id = m.layout.filesystems.find((x) => x.partition === f.partition)!;
      const p = m.layout.partitions.find((x) => x.index === f.partition)!;
      await new Restorer(repo, { include: [f.path] }).run(snapshot, work);
      const args = ['-q', '-F', '-E', `offset=${p.start * ss}`, '-d', join(work, f.path.slice(1)), '-t', id.type];
      if (id.uuid) args.push('-U', id.uuid);
      if (id.label) args.push('-L', id.label);
      if (id.blockSize) args.push('-b', String(id.blockSize));
      if (id.inodeSize) args.push('-I', String(id.inodeSize));
      args.push(image, `${(p.size * ss) / 1024}k`);
      await run('mkfs.ext4', args).catch((e: Error & { stderr?: string }) => {
        throw new Error(`mkfs for partition ${f.partition} failed: ${e.stderr?.trim() || e.message}`, { cause: e });
      });
    }
    await reinstallExtlinux(m, image);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * extlinux's boot record holds the sector list of ldlinux.sys, which a filesystem rebuilt file by
 * file no longer matches (shared/research/bootable-disk.md): it is installed again. GRUB finds its
 * root by filesystem UUID, which the rebuild keeps, and needs nothing.
 */
async function reinstallExtlinux(m: BmrManifest, image: string): Promise<void> {
  const b = m.bootLoader;
  if (b?.kind !== 'extlinux' || !b.config) return;
  const p = m.layout.partitions.find((x) => x.index === b.partition);
  if (!p) throw new Error(`extlinux's partition ${b.partition} is not in the backed-up partition table`);
  const ss = m.layout.table.sectorSize;
  await installExtlinux(image, { offset: p.start * ss, sizeBytes: p.size * ss }, posix.dirname(b.config), b.config);
}

/** A debugfs command argument: quoted, since paths may hold spaces. */
function q(p: string): string {
  return `"${p.replace(/(["\\])/g, '\\$1')}"`;
}

/**
 * The debugfs commands that put a directory tree (restored files) at `dest` inside a filesystem,
 * replacing what is there: directories are made, files and links replaced, and modes, owners and
 * times set as the snapshot has them. Pure but for reading the local tree and asking `isDir`.
 */
export function debugfsScript(localRoot: string, dest: string, isDir: (fsPath: string) => boolean): string {
  const lines: string[] = [];
  const meta = (fsPath: string, local: string) => {
    const st = lstatSync(local, { bigint: true });
    lines.push(`sif ${q(fsPath)} mode 0${st.mode.toString(8)}`);
    lines.push(`sif ${q(fsPath)} uid ${st.uid}`);
    lines.push(`sif ${q(fsPath)} gid ${st.gid}`);
    lines.push(`sif ${q(fsPath)} mtime @${st.mtimeNs / 1_000_000_000n}`);
  };
  const walk = (local: string, fsPath: string) => {
    for (const e of readdirSync(local, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const l = join(local, e.name);
      const f = fsPath === '/' ? `/${e.name}` : `${fsPath}/${e.name}`;
      if (e.isDirectory()) {
        // debugfs's mkdir on an existing name leaves an allocated, unlinked inode behind.
        if (!isDir(f)) lines.push(`mkdir ${q(f)}`);
        walk(l, f);
        meta(f, l);
      } else if (e.isSymbolicLink()) {
        lines.push(`rm ${q(f)}`, `symlink ${q(f)} ${q(readlinkSync(l))}`);
      } else if (e.isFile()) {
        lines.push(`rm ${q(f)}`, `write ${q(l)} ${q(f)}`);
        meta(f, l);
      }
    }
  };
  walk(localRoot, dest);
  return lines.join('\n') + '\n';
}

/**
 * System-state recovery onto an existing disk image: the SSR group's files replace those in each
 * filesystem (debugfs, no mount), and the boot areas are written back. Files outside the group
 * (user data) are left as they are.
 */
export async function restoreSystemState(repo: Repository, snapshot: SnapshotRecord, image: string): Promise<{ paths: string[] }> {
  const m = snapshot.manifest as BmrManifest | undefined;
  if (!m || m.kind !== 'disk-image') throw new Error('this snapshot has no system-state group (make it from a disk or volume)');
  return restoreFilesIntoImage(repo, snapshot, image, m.ssr, { bootAreas: true });
}

/**
 * Files of a disk's backup put back into the same disk (image): each path (`/p<partition>/...`,
 * as the snapshot names them) replaces what the filesystem has there; nothing else changes. The
 * filesystems must be the ones backed up (same UUIDs): anything else wants a bare-metal restore.
 */
export async function restoreFilesIntoImage(repo: Repository, snapshot: SnapshotRecord, image: string, include: string[], o: { bootAreas?: boolean } = {}): Promise<{ paths: string[] }> {
  const m = snapshot.manifest as BmrManifest | undefined;
  if (!m || m.kind !== 'disk-image') throw new Error('this snapshot is not of a disk (make it from a disk or volume)');
  const outside = include.find((p) => !m.filesystems.some((f) => p === f.path || p.startsWith(`${f.path}/`)));
  if (outside) throw new Error(`${outside} is on none of the backup's filesystems (${m.filesystems.map((f) => f.path).join(', ')})`);
  const layout = await readDiskLayout(image, statSync(image).size);
  for (const f of m.layout.filesystems.filter((x) => m.filesystems.some((y) => y.partition === x.partition))) {
    const now = layout.filesystems.find((x) => x.partition === f.partition);
    if (!now || now.uuid !== f.uuid) throw new Error(`partition ${f.partition} of ${image} is not the filesystem backed up (UUID ${now?.uuid ?? 'none'}, expected ${f.uuid ?? '?'}): use a bare-metal restore instead`);
  }
  const work = mkdtempSync(join(tmpdir(), 'outrig-into-'));
  try {
    await new Restorer(repo, { include }).run(snapshot, work);
    for (const f of m.filesystems) {
      const p = m.layout.partitions.find((x) => x.index === f.partition)!;
      const root = join(work, f.path.slice(1));
      if (!existsSync(root)) continue;
      const script = join(work, `p${f.partition}.debugfs`);
      const dev = `${image}?offset=${p.start * m.layout.table.sectorSize}`;
      const isDir = (path: string) => /Type: directory/.test(spawnSync('debugfs', ['-R', `stat ${q(path)}`, dev]).stdout.toString());
      writeFileSync(script, debugfsScript(root, '/', isDir));
      const r = spawnSync('debugfs', ['-w', '-f', script, dev]);
      if (r.status !== 0) throw new Error(`debugfs could not write the files into partition ${f.partition}: ${r.stderr.toString().trim()}`);
    }
    if (o.bootAreas) for (const a of m.bootAreas) await writeRaw(repo, image, a.offset, a.content);
    // ldlinux.sys written again by debugfs sits in other blocks than its boot record points to.
    const loaderDir = m.bootLoader?.kind === 'extlinux' && m.bootLoader.config ? `/p${m.bootLoader.partition}${posix.dirname(m.bootLoader.config)}` : undefined;
    if (loaderDir && include.some((x) => x === loaderDir || loaderDir.startsWith(`${x}/`) || x.startsWith(`${loaderDir}/`))) await reinstallExtlinux(m, image);
    return { paths: include };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
