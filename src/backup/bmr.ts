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
import { mkdtempSync, openSync, readSync, rmSync, statSync, truncateSync, writeFileSync, writeSync, closeSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Archiver, type BackupOptions } from './archiver.ts';
import { Chunker } from './chunker.ts';
import { bootAreas, readDiskLayout, sfdiskScript, type DiskLayout } from './disk-layout.ts';
import type { Repository, SnapshotRecord } from './repository.ts';
import { Restorer } from './restorer.ts';

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
}

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
    const chunker = new Chunker(repo.chunker, repo.gear);
    for (let at = 0; at < got; ) {
      const n = chunker.cut(buf.subarray(at, got), true);
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

/** Backs up a disk image (a volume's snapshot exported as a file, or a disk): BMR-ready when every partition is covered. */
export async function backupDiskImage(repo: Repository, image: string, opts: BackupOptions = {}): Promise<{ id: string; snapshot: SnapshotRecord; manifest: BmrManifest }> {
  const layout = await readDiskLayout(image, statSync(image).size);
  const work = mkdtempSync(join(tmpdir(), 'outrig-bmr-'));
  try {
    const sources: { path: string; as: string }[] = [];
    const filesystems: BmrManifest['filesystems'] = [];
    for (const fs of layout.filesystems.filter((f) => FILE_SYSTEMS.test(f.type))) {
      const p = layout.partitions.find((x) => x.index === fs.partition)!;
      const dir = join(work, `p${fs.partition}`);
      mkdirSync(dir);
      await run('debugfs', ['-R', `rdump / ${dir}`, `${image}?offset=${p.start * layout.table.sectorSize}`]);
      // mkfs makes its own lost+found on restore.
      rmSync(join(dir, 'lost+found'), { recursive: true, force: true });
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
    const manifest: BmrManifest = { kind: 'disk-image', layout, bootAreas: areas, filesystems, rawPartitions, bmrReady: true };
    const { id, snapshot } = await new Archiver(repo, { ...opts, manifest }).run(sources);
    return { id, snapshot, manifest };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Rebuilds a disk image from a BMR-ready snapshot: table, boot areas, filesystems with their identities. */
export async function restoreDiskImage(repo: Repository, snapshot: SnapshotRecord, image: string): Promise<void> {
  const m = snapshot.manifest as BmrManifest | undefined;
  if (!m || m.kind !== 'disk-image' || !m.bmrReady) throw new Error('this snapshot is not BMR-ready: it has no disk layout (make it from a disk or volume)');
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
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
