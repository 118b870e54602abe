/**
 * The disk reader's entry point, run only inside the sandbox (src/sandbox) with the disk as file
 * descriptor 3, read-only: `layout DISKSIZE` prints the partition table and filesystem identities
 * as JSON; `extract DISKSIZE OFFSET SIZE` writes the filesystem at OFFSET as frames (frames.ts).
 * It parses hostile bytes, so it runs with no rights: whatever it prints, the writer checks again.
 */
import { readSync, writeSync } from 'node:fs';
import { CorruptError, slice, type Source } from './source.ts';
import { encodeFrame, type Frame } from './frames.ts';
import { ExtFs } from './ext-fs.ts';
import { looksLikeExt } from './ext-super.ts';
import { readPartitionTable } from './partitions.ts';
import { walkFilesystem } from './walk.ts';
import { otherFilesystem } from './identify.ts';

const DISK_FD = 3;

function diskSource(size: number): Source {
  return {
    size,
    read(o, n) {
      if (o < 0 || n < 0 || o + n > size) throw new CorruptError(`a read at ${o} (${n} bytes) is outside the disk`);
      const b = Buffer.allocUnsafe(n);
      for (let got = 0; got < n;) {
        const r = readSync(DISK_FD, b, got, n - got, o + got);
        if (r === 0) throw new CorruptError('the disk ends before its stated size');
        got += r;
      }
      return b;
    },
  };
}

function writeAll(b: Buffer): void {
  for (let o = 0; o < b.length;) {
    try {
      o += writeSync(1, b, o);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
    }
  }
}

/** The filesystem in a region (a partition, or the whole disk as partition 0): its identity, a type for people, or nothing known. */
function identify(region: Source, partition: number): unknown {
  if (!looksLikeExt(region)) {
    const type = otherFilesystem(region);
    return type ? { partition, type } : undefined;
  }
  try {
    const sb = new ExtFs(region).sb;
    return {
      partition,
      type: sb.type,
      uuid: sb.uuid,
      label: sb.label.toString('base64'),
      blockSize: sb.blockSize,
      inodeSize: sb.inodeSize,
      inodesCount: sb.inodesCount,
      features: sb.features,
    };
  } catch (e) {
    if (!(e instanceof CorruptError)) throw e;
    return { partition, type: 'ext', error: e.message };
  }
}

/**
 * The partition table and each partition's filesystem. A disk with no table (blank, or a
 * filesystem made on the whole device) is label `none`, its filesystem, if any, as partition 0;
 * `tableProblem` says why a table that seemed to be there was not used, when nothing else was found.
 */
function layout(disk: Source): unknown {
  let t;
  let tableProblem: string | undefined;
  try {
    t = readPartitionTable(disk);
  } catch (e) {
    if (!(e instanceof CorruptError)) throw e;
    if (disk.size >= 512 && disk.read(510, 2).readUInt16LE(0) === 0xaa55) tableProblem = e.message;
  }
  if (t?.partitions.length) {
    const table = t;
    const filesystems = table.partitions.map((p) => identify(slice(disk, p.start * table.table.sectorSize, p.size * table.table.sectorSize), p.index));
    return { ...table, filesystems: filesystems.filter((f) => f) };
  }
  const fs = identify(disk, 0);
  // An empty table with nothing on the disk stays a table (sfdisk makes it again).
  if (t && !fs) return { ...t, filesystems: [] };
  return { table: { label: 'none', sectorSize: 512 }, partitions: [], filesystems: fs ? [fs] : [], ...(tableProblem && !fs ? { tableProblem } : {}) };
}

function extract(disk: Source, offset: number, size: number): void {
  const fs = new ExtFs(slice(disk, offset, size));
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const flush = () => {
    if (pending.length) writeAll(Buffer.concat(pending));
    pending = [];
    pendingBytes = 0;
  };
  walkFilesystem(
    fs,
    (f: Frame, data?: Buffer) => {
      const b = encodeFrame(f);
      pending.push(b);
      pendingBytes += b.length;
      // Content goes out as it is, not copied into a batch.
      if (data) {
        flush();
        writeAll(data);
      } else if (pendingBytes >= 256 * 1024) flush();
    },
    { maxFileBytes: size, maxApparentBytes: 16 * size, maxDepth: 256 },
  );
  flush();
}

const [cmd, diskSize, offset, size] = process.argv.slice(2).map((a, i) => (i === 0 ? a : Number(a))) as [string, number, number, number];
try {
  const disk = diskSource(diskSize);
  if (cmd === 'layout') writeAll(Buffer.from(JSON.stringify(layout(disk))));
  else if (cmd === 'extract') extract(disk, offset, size);
  else throw new Error(`unknown command ${cmd}`);
} catch (e) {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exitCode = e instanceof CorruptError ? 2 : 1;
}
