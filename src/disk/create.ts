/**
 * Making a disk file: the first superblock, a journal whose space is reserved, nothing else (the
 * data area grows as blocks are written); a clone names its backing disk and snapshot. The file
 * and its name are durable before it is returned.
 */
import { rmSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { BlockFile } from './block-file.ts';
import { DiskError, EINVAL } from './errors.ts';
import {
  defaultJournalSize,
  DEFAULT_BLOCK_SIZE,
  encodeSuperblock,
  isPowerOfTwo,
  newSuperblock,
  SECTOR,
  SUPERBLOCK_SLOTS,
  type Backing,
  type Superblock,
} from './format.ts';
import { loadTables, readSuperblocks } from './layer.ts';

export interface CreateOptions {
  size: number;
  blockSize?: number;
  journalSize?: number;
  /** Makes the new disk a clone: unwritten blocks read from this snapshot of another disk. */
  backing?: { path: string; snapshot: string };
}

export function createDisk(path: string, opts: CreateOptions): Superblock {
  const blockSize = opts.blockSize ?? DEFAULT_BLOCK_SIZE;
  if (!isPowerOfTwo(blockSize)) throw new DiskError(`block size ${blockSize} is not a power of two`, EINVAL);
  const size = Math.ceil(opts.size / SECTOR) * SECTOR;
  let backing: Backing | undefined;
  if (opts.backing) {
    const parentPath = resolvePath(opts.backing.path);
    const pf = new BlockFile(parentPath, true);
    try {
      const { sb: psb } = readSuperblocks(pf);
      const { snapshots } = loadTables(pf, psb);
      const snap = snapshots.find((s) => s.name === opts.backing!.snapshot || String(s.id) === opts.backing!.snapshot);
      if (!snap) throw new DiskError(`${parentPath} has no snapshot '${opts.backing.snapshot}'`, EINVAL);
      if (psb.blockSize !== blockSize && opts.blockSize !== undefined)
        throw new DiskError(`a clone must use its backing disk's block size (${psb.blockSize})`, EINVAL);
      backing = { path: parentPath, uuid: psb.uuid, snapshotId: snap.id };
      return writeNew(path, { size: Math.max(size, psb.virtualSize), blockSize: psb.blockSize, journalSize: opts.journalSize, backing });
    } finally {
      pf.close();
    }
  }
  return writeNew(path, { size, blockSize, journalSize: opts.journalSize });
}

function writeNew(path: string, o: { size: number; blockSize: number; journalSize?: number; backing?: Backing }): Superblock {
  const sb = newSuperblock({ virtualSize: o.size, blockSize: o.blockSize, journalSize: o.journalSize ?? defaultJournalSize(o.size), backing: o.backing });
  BlockFile.create(path);
  const f = new BlockFile(path, false);
  try {
    f.write(SUPERBLOCK_SLOTS[0], encodeSuperblock(sb));
    // The first journal sector must not look like a record (a reused file could hold one).
    f.write(sb.journalOffset, Buffer.alloc(SECTOR));
    f.truncate(sb.dataOffset);
    // The journal always has its space, so a full file system can fail a write but never a commit.
    f.reserve(sb.journalOffset, sb.journalSize);
    f.syncNew();
  } catch (e) {
    f.close();
    rmSync(path, { force: true });
    throw e;
  }
  f.close();
  return sb;
}
