/**
 * ext inodes and where their data is: extent trees (ext4), block maps (ext2/3) and inline data.
 * Every block number is checked against the filesystem, every tree node against its expected
 * depth and against being visited twice, so a hostile tree cannot loop or point outside. Pure.
 */
import { CorruptError, type Source } from './source.ts';
import { hugeFiles, inodeTable, type Superblock } from './ext-super.ts';

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;

const EXTENTS_FL = 0x80000;
const INLINE_DATA_FL = 0x10000000;
const HUGE_FILE_FL = 0x40000;
const EA_INODE_FL = 0x200000;
const EXTENT_MAGIC = 0xf30a;
/** An uninitialised extent's length is stored plus this; it reads as zeros. */
const UNINIT = 32768;

export interface Inode {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  links: number;
  flags: number;
  /** 512-byte sectors in use (file blocks, the xattr block, tree blocks). */
  sectors: number;
  atime: string;
  mtime: string;
  /** i_block: extent root, block map or inline data. */
  block: Buffer;
  xattrBlock: number;
  /** The in-inode extended attribute area (after i_extra_isize), if any. */
  extra: Buffer;
}

/** A run of the file's blocks: logical block, physical block, count. */
export interface Run {
  logical: number;
  physical: number;
  count: number;
}

/** Seconds and the extra field (2 epoch bits, 30 nanosecond bits) as nanoseconds. */
function time(sec: number, extra: number | undefined): string {
  const s = BigInt(sec) + (extra === undefined ? 0n : BigInt(extra & 3) << 32n);
  const ns = extra === undefined ? 0n : BigInt(extra >>> 2);
  return (s * 1_000_000_000n + (ns < 1_000_000_000n ? ns : 0n)).toString();
}

export function readInode(src: Source, sb: Superblock, ino: number): Inode {
  if (!Number.isInteger(ino) || ino < 1 || ino > sb.inodesCount) throw new CorruptError(`inode ${ino} does not exist`);
  const g = Math.floor((ino - 1) / sb.inodesPerGroup);
  const b = src.read(inodeTable(src, sb, g) * sb.blockSize + ((ino - 1) % sb.inodesPerGroup) * sb.inodeSize, sb.inodeSize);
  const extraSize = sb.inodeSize > 128 ? b.readUInt16LE(0x80) : 0;
  if (128 + extraSize > sb.inodeSize || extraSize % 4) throw new CorruptError(`inode ${ino}: an extra size of ${extraSize}`);
  const has = (end: number) => extraSize >= end - 128;
  const flags = b.readUInt32LE(0x20);
  let sectors = b.readUInt32LE(0x1c) + b.readUInt16LE(0x74) * 2 ** 32;
  if (hugeFiles(sb) && flags & HUGE_FILE_FL) sectors *= sb.blockSize / 512;
  return {
    ino,
    mode: b.readUInt16LE(0),
    uid: b.readUInt16LE(0x02) + b.readUInt16LE(0x78) * 65536,
    gid: b.readUInt16LE(0x18) + b.readUInt16LE(0x7a) * 65536,
    size: b.readUInt32LE(0x04) + b.readUInt32LE(0x6c) * 2 ** 32,
    links: b.readUInt16LE(0x1a),
    flags,
    sectors,
    atime: time(b.readInt32LE(0x08), has(0x90) ? b.readUInt32LE(0x8c) : undefined),
    mtime: time(b.readInt32LE(0x10), has(0x8c) ? b.readUInt32LE(0x88) : undefined),
    block: Buffer.from(b.subarray(0x28, 0x28 + 60)),
    xattrBlock: b.readUInt32LE(0x68) + b.readUInt16LE(0x76) * 2 ** 32,
    extra: Buffer.from(b.subarray(128 + extraSize)),
  };
}

export function isInline(i: Inode): boolean {
  return (i.flags & INLINE_DATA_FL) !== 0;
}

/** A symlink whose target sits in i_block (no data blocks). */
export function isFastSymlink(sb: Superblock, i: Inode): boolean {
  if (isInline(i)) return false;
  if (i.flags & EA_INODE_FL) return i.size < 60;
  const xattrSectors = i.xattrBlock ? sb.blockSize / 512 : 0;
  return i.sectors - xattrSectors === 0;
}

/** The file's mapped blocks in logical order (holes are gaps), from its extent tree or block map. */
export function runs(src: Source, sb: Superblock, i: Inode): Run[] {
  const blocks = Math.ceil(i.size / sb.blockSize);
  const out: Run[] = [];
  const add = (logical: number, physical: number, count: number) => {
    if (logical >= blocks || count <= 0) return;
    count = Math.min(count, blocks - logical);
    if (physical < sb.firstDataBlock || physical + count > sb.blocksCount) throw new CorruptError(`inode ${i.ino} maps blocks outside the filesystem`);
    const last = out.at(-1);
    if (last && last.logical + last.count === logical && last.physical + last.count === physical) last.count += count;
    else out.push({ logical, physical, count });
  };
  if (i.flags & EXTENTS_FL) walkExtents(src, sb, i, add);
  else walkBlockMap(src, sb, i, blocks, add);
  return out;
}

function walkExtents(src: Source, sb: Superblock, i: Inode, add: (l: number, p: number, n: number) => void): void {
  const seen = new Set<number>();
  const node = (b: Buffer, depth: number | undefined) => {
    if (b.readUInt16LE(0) !== EXTENT_MAGIC) throw new CorruptError(`inode ${i.ino}: an extent node without its magic`);
    const entries = b.readUInt16LE(2);
    const d = b.readUInt16LE(6);
    if (d > 5 || (depth !== undefined && d !== depth)) throw new CorruptError(`inode ${i.ino}: an extent node at the wrong depth`);
    if (12 + entries * 12 > b.length) throw new CorruptError(`inode ${i.ino}: an extent node with too many entries`);
    let prev = -1;
    for (let e = 0; e < entries; e++) {
      const o = 12 + e * 12;
      const logical = b.readUInt32LE(o);
      if (logical <= prev) throw new CorruptError(`inode ${i.ino}: extents out of order`);
      prev = logical;
      if (d === 0) {
        const len = b.readUInt16LE(o + 4);
        // Uninitialised extents read as zeros: a hole to the writer.
        if (len <= UNINIT) add(logical, b.readUInt16LE(o + 6) * 2 ** 32 + b.readUInt32LE(o + 8), len);
      } else {
        const child = b.readUInt32LE(o + 4) + b.readUInt16LE(o + 8) * 2 ** 32;
        if (seen.has(child) || child < sb.firstDataBlock || child >= sb.blocksCount)
          throw new CorruptError(`inode ${i.ino}: an extent tree that loops or points outside`);
        seen.add(child);
        node(src.read(child * sb.blockSize, sb.blockSize), d - 1);
      }
    }
  };
  node(i.block, undefined);
}

function walkBlockMap(src: Source, sb: Superblock, i: Inode, blocks: number, add: (l: number, p: number, n: number) => void): void {
  const per = sb.blockSize / 4;
  const seen = new Set<number>();
  let logical = 0;
  const indirect = (block: number, level: number) => {
    const span = per ** level;
    if (block === 0) return void (logical += span);
    if (seen.has(block) || block >= sb.blocksCount) throw new CorruptError(`inode ${i.ino}: a block map that loops or points outside`);
    seen.add(block);
    const b = src.read(block * sb.blockSize, sb.blockSize);
    for (let k = 0; k < per && logical < blocks; k++) {
      const p = b.readUInt32LE(k * 4);
      if (level === 1) {
        if (p) add(logical, p, 1);
        logical++;
      } else indirect(p, level - 1);
    }
  };
  for (let k = 0; k < 12 && logical < blocks; k++, logical++) {
    const p = i.block.readUInt32LE(k * 4);
    if (p) add(logical, p, 1);
  }
  for (let level = 1; level <= 3 && logical < blocks; level++) indirect(i.block.readUInt32LE((11 + level) * 4), level);
}
