/**
 * Restores of disk backups (bmr.ts makes them): a whole disk rebuilt (bare-metal), or files put
 * back into a disk that exists (system state, or chosen paths). Every filesystem is made anew with
 * mkfs.ext4 -d from a directory: for an existing disk, its filesystem is first read out (by the
 * sandboxed reader, strictly: if anything of the guest's could not be carried, nothing is done),
 * the backup's files are merged in, and the filesystem is made again with the same identity. No
 * name or link target from a guest ever goes into a command language, and no tool that reads a
 * guest's bytes runs unconfined.
 *
 * A snapshot's manifest is checked before use: a repository is shared by the cluster's hosts, and
 * the manifest's fields become an sfdisk script and mkfs arguments.
 */
import { execFile } from 'node:child_process';
import {
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
  writeSync,
  chmodSync,
  lchownSync,
  lutimesSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { promisify } from 'node:util';
import type { BmrManifest } from './bmr.ts';
import { checkManifest } from './bmr-manifest.ts';
import { partitionName, readDiskLayout, regionOf, sfdiskScript, unquotableNames, type FilesystemIdentity } from './disk-layout.ts';
import { writeRawAreas } from './raw-areas.ts';
import type { Repository, SnapshotRecord } from './repository.ts';
import { Restorer } from './restorer.ts';
import { installExtlinux } from './extlinux.ts';
import { writeXattrs } from './xattrs.ts';
import { extractFilesystem, hasControl } from '../guest-disk/index.ts';
import { runConfined } from '../sandbox/index.ts';

const run = promisify(execFile);

async function writeRaw(repo: Repository, image: string, offset: number, ids: string[], limit: number): Promise<void> {
  const fd = openSync(image, 'r+');
  try {
    let at = offset;
    for (const id of ids) {
      const data = await repo.loadBlob(id);
      if (at + data.length > limit) throw new Error(`a raw area of the backup runs past where it belongs (offset ${at})`);
      writeSync(fd, data, 0, data.length, at);
      at += data.length;
    }
  } finally {
    closeSync(fd);
  }
}

/** Makes the ext filesystem `id` at `part` of `image` from the files in `dir`, confined: it sees only them and the image. */
async function makeFilesystem(image: string, part: { offset: number; sizeBytes: number }, id: FilesystemIdentity, dir: string): Promise<void> {
  const args = ['-q', '-F', '-E', `offset=${part.offset}`, '-d', dir, '-t', id.type];
  if (id.uuid) args.push('-U', id.uuid);
  if (id.label) args.push('-L', id.label);
  if (id.blockSize) args.push('-b', String(id.blockSize));
  if (id.inodeSize) args.push('-I', String(id.inodeSize));
  if (id.inodesCount) args.push('-N', String(id.inodesCount));
  args.push(image, `${part.sizeBytes / 1024}k`);
  await runConfined('mkfs.ext4', args, {
    identity: 'reader',
    readable: [dir, ...['/etc/mke2fs.conf'].filter((f) => existsSync(f))],
    writable: [image],
    maxFileBytes: statSync(image).size,
    timeoutMs: 3_600_000,
    what: `mkfs.ext4 (partition at ${part.offset})`,
  }).catch((e: Error) => {
    throw new Error(`making the filesystem at ${part.offset} failed: ${e.message}`, { cause: e });
  });
}

function partitionOf(m: BmrManifest, index: number): { offset: number; sizeBytes: number } {
  return regionOf(m.layout, index);
}

/** Rebuilds a disk image from a BMR-ready snapshot: table, boot areas, filesystems with their identities. Returns what was not restored. */
export async function restoreDiskImage(repo: Repository, snapshot: SnapshotRecord, image: string): Promise<{ skipped: { path: string; why: string }[] }> {
  const m = checkManifest(snapshot.manifest);
  if (!m.bmrReady) throw new Error('this snapshot is not BMR-ready: it has no disk layout (make it from a disk or volume)');
  if (m.bootLoader?.kind === 'extlinux' && !m.bootLoader.config) {
    throw new Error(
      `this disk boots with extlinux from partition ${m.bootLoader.partition}, but the backup found no extlinux configuration next to ldlinux.sys, so it cannot be installed again`,
    );
  }
  writeFileSync(image, '');
  truncateSync(image, m.layout.sizeBytes);
  // A disk with no partition table gets none: its filesystem starts at byte 0, or its raw areas are all of it.
  if (m.layout.table.label !== 'none') {
    await new Promise<void>((resolve, reject) => {
      const p = execFile('sfdisk', ['-q', image], (e, _o, err) =>
        e ? reject(new Error(`sfdisk could not write the partition table: ${String(err).trim() || e.message}`)) : resolve(),
      );
      p.stdin!.end(sfdiskScript(m.layout));
    });
    // Names sfdisk's script cannot quote are set as plain arguments.
    for (const [index, name] of unquotableNames(m.layout)) await run('sfdisk', ['-q', '--part-label', image, String(index), name]);
  }
  await writeRawAreas(repo, image, m.rawAreas ?? [], m.layout.sizeBytes);
  for (const a of m.bootAreas) await writeRaw(repo, image, a.offset, a.content, a.offset + a.length);
  for (const r of m.rawPartitions) {
    const p = partitionOf(m, r.partition);
    await writeRaw(repo, image, p.offset, r.content, p.offset + p.sizeBytes);
  }
  const work = mkdtempSync(join(tmpdir(), 'outrig-bmr-restore-'));
  try {
    const restorer = new Restorer(repo, { include: m.filesystems.map((f) => f.path) });
    await restorer.run(snapshot, work);
    for (const f of m.filesystems) {
      const id = m.layout.filesystems.find((x) => x.partition === f.partition)!;
      const dir = join(work, f.path.slice(1));
      mkdirSync(dir, { recursive: true });
      await makeFilesystem(image, partitionOf(m, f.partition), id, dir);
    }
    await reinstallExtlinux(m, image);
    return { skipped: restorer.skipped };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * extlinux's boot record holds the sector list of ldlinux.sys, which a filesystem rebuilt file by
 * file no longer matches (shared/research/bootable-disk.md): it is installed again. GRUB finds its
 * root by filesystem UUID, which the rebuild keeps, and needs nothing.
 */
async function reinstallExtlinux(m: BmrManifest, image: string, rebuilt?: Set<number>): Promise<void> {
  const b = m.bootLoader;
  if (b?.kind !== 'extlinux' || !b.config || b.partition === undefined) return;
  if (rebuilt && !rebuilt.has(b.partition)) return;
  await installExtlinux(image, partitionOf(m, b.partition), posix.dirname(b.config), b.config);
}

/**
 * The restored tree `from` merged into `into` (a filesystem read out of a disk): what `from` has
 * replaces what `into` has under the same name; directories in both are merged and take the
 * backup's owner, mode and times. `into` holds a guest's entries: nothing there is followed, a
 * symlink or file in the way of a directory is removed first.
 */
function merge(from: string, into: string): void {
  for (const name of readdirSync(from)) {
    const s = join(from, name);
    const d = join(into, name);
    const src = lstatSync(s);
    const dst = lstatSync(d, { throwIfNoEntry: false });
    if (src.isDirectory() && dst?.isDirectory()) {
      merge(s, d);
      lchownSync(d, src.uid, src.gid);
      chmodSync(d, src.mode & 0o7777);
      lutimesSync(d, src.atime, src.mtime);
      continue;
    }
    if (dst) rmSync(d, { recursive: true, force: true });
    renameSync(s, d);
  }
}

/**
 * System-state recovery onto an existing disk image: the SSR group's files replace those in each
 * filesystem, and the boot areas are written back. Files outside the group (user data) stay.
 */
export async function restoreSystemState(
  repo: Repository,
  snapshot: SnapshotRecord,
  image: string,
  name = image,
): Promise<{ paths: string[]; skipped: { path: string; why: string }[] }> {
  const m = checkManifest(snapshot.manifest);
  // A disk kept block by block has neither files nor boot areas: there is nothing to put back selectively.
  if (!m.ssr.length && !m.bootAreas.length) throw new Error('this snapshot holds no system state (its disk was kept block by block): use a bare-metal restore');
  return restoreFilesIntoImage(repo, snapshot, image, m.ssr, { bootAreas: true, name });
}

/**
 * Files of a disk's backup put back into the same disk (image): each path (`/p<partition>/...`,
 * as the snapshot names them) replaces what the filesystem has there; nothing else changes. The
 * filesystems must be the ones backed up (same UUIDs): anything else wants a bare-metal restore.
 * The image is changed only once everything has been read and merged.
 */
export async function restoreFilesIntoImage(
  repo: Repository,
  snapshot: SnapshotRecord,
  image: string,
  include: string[],
  o: { bootAreas?: boolean; name?: string } = {},
): Promise<{ paths: string[]; skipped: { path: string; why: string }[] }> {
  const m = checkManifest(snapshot.manifest);
  const bad = include.find((p) => !/^\/p[0-9]+(\/[^/]+)*$/.test(p) || p.split('/').some((c) => c === '.' || c === '..') || hasControl(p));
  if (bad !== undefined) throw new Error(`${JSON.stringify(bad)} is not a path of the backup (/pN/...)`);
  const outside = include.find((p) => !m.filesystems.some((f) => p === f.path || p.startsWith(`${f.path}/`)));
  if (outside) throw new Error(`${outside} is on none of the backup's filesystems (${m.filesystems.map((f) => f.path).join(', ')})`);
  const size = statSync(image).size;
  const name = o.name ?? image;
  const now = await readDiskLayout(image, size, [], name);
  for (const f of m.layout.filesystems.filter((x) => m.filesystems.some((y) => y.partition === x.partition))) {
    const fs = now.filesystems.find((x) => x.partition === f.partition);
    if (!fs || fs.uuid !== f.uuid)
      throw new Error(
        `${partitionName(f.partition)} of ${name} is not the filesystem backed up (UUID ${fs?.uuid ?? 'none'}, expected ${f.uuid ?? '?'}): use a bare-metal restore instead`,
      );
  }
  const touched = m.filesystems.filter((f) => include.some((p) => p === f.path || p.startsWith(`${f.path}/`)));
  const work = mkdtempSync(join(tmpdir(), 'outrig-into-'));
  try {
    // Everything read first: a filesystem that cannot be carried whole stops the restore before the image changes.
    for (const f of touched) {
      const dir = join(work, 'now', f.path.slice(1));
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const part = partitionOf(m, f.partition);
      const r = await extractFilesystem(image, dir, { offset: part.offset, size: part.sizeBytes, diskSize: size, strict: true });
      await writeXattrs(r.xattrs);
    }
    const restorer = new Restorer(repo, { include });
    await restorer.run(snapshot, join(work, 'backup'));
    const rebuilt = new Set<number>();
    for (const f of touched) {
      const dir = join(work, 'now', f.path.slice(1));
      const from = join(work, 'backup', f.path.slice(1));
      if (existsSync(from)) merge(from, dir);
      await makeFilesystem(
        image,
        partitionOf(m, f.partition),
        now.filesystems.find((x) => x.partition === f.partition)!,
        dir,
      );
      rebuilt.add(f.partition);
    }
    if (o.bootAreas) for (const a of m.bootAreas) await writeRaw(repo, image, a.offset, a.content, a.offset + a.length);
    // A rebuilt filesystem moves ldlinux.sys: extlinux goes on again wherever it lives.
    await reinstallExtlinux(m, image, rebuilt);
    return { paths: include, skipped: restorer.skipped };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
