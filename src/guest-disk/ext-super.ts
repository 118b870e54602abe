/**
 * The ext2/3/4 superblock and group descriptors, read and checked for sanity before anything
 * trusts them: sizes within the partition, counts within what the block size allows, only
 * features this reader understands. Pure (over a Source).
 */
import { CorruptError, type Source } from './source.ts';

const EXT_MAGIC = 0xef53;

const COMPAT: Record<number, string> = {
  0x1: 'dir_prealloc',
  0x2: 'imagic_inodes',
  0x4: 'has_journal',
  0x8: 'ext_attr',
  0x10: 'resize_inode',
  0x20: 'dir_index',
  0x40: 'lazy_bg',
  0x200: 'sparse_super2',
  0x400: 'fast_commit',
  0x800: 'stable_inodes',
  0x1000: 'orphan_file',
};
const INCOMPAT: Record<number, string> = {
  0x1: 'compression',
  0x2: 'filetype',
  0x4: 'needs_recovery',
  0x8: 'journal_dev',
  0x10: 'meta_bg',
  0x40: 'extent',
  0x80: '64bit',
  0x100: 'mmp',
  0x200: 'flex_bg',
  0x400: 'ea_inode',
  0x1000: 'dirdata',
  0x2000: 'metadata_csum_seed',
  0x4000: 'large_dir',
  0x8000: 'inline_data',
  0x10000: 'encrypt',
  0x20000: 'casefold',
};
const RO_COMPAT: Record<number, string> = {
  0x1: 'sparse_super',
  0x2: 'large_file',
  0x4: 'btree_dir',
  0x8: 'huge_file',
  0x10: 'uninit_bg',
  0x20: 'dir_nlink',
  0x40: 'extra_isize',
  0x100: 'quota',
  0x200: 'bigalloc',
  0x400: 'metadata_csum',
  0x800: 'replica',
  0x1000: 'read-only',
  0x2000: 'project',
  0x4000: 'shared_blocks',
  0x8000: 'verity',
  0x10000: 'orphan_present',
};

export const INCOMPAT_FILETYPE = 0x2;
const INCOMPAT_RECOVER = 0x4;
const INCOMPAT_META_BG = 0x10;
const INCOMPAT_64BIT = 0x80;
/** What this reader reads correctly; anything else is refused rather than misread. */
const INCOMPAT_KNOWN = 0x2 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x2000 | 0x4000 | 0x8000 | 0x20000;
const RO_SPARSE_SUPER = 0x1;
const RO_HUGE_FILE = 0x8;
const RO_BIGALLOC = 0x200;

export interface Superblock {
  blockSize: number;
  blocksCount: number;
  inodesCount: number;
  blocksPerGroup: number;
  inodesPerGroup: number;
  firstDataBlock: number;
  inodeSize: number;
  groupCount: number;
  descSize: number;
  firstMetaBg: number;
  compat: number;
  incompat: number;
  roCompat: number;
  uuid: string;
  /** Raw label bytes (up to the first NUL). */
  label: Buffer;
  /** Features by the names dumpe2fs and mkfs use. */
  features: string[];
  type: 'ext2' | 'ext3' | 'ext4';
}

function names(bits: number, table: Record<number, string>): string[] {
  return Object.entries(table)
    .filter(([b]) => (bits & Number(b)) !== 0)
    .map(([, n]) => n);
}

/** The filesystem's identity as blkid would name it: ext4 as soon as a feature ext3 lacks is on. */
function fsType(compat: number, incompat: number, roCompat: number): Superblock['type'] {
  if (incompat & ~(INCOMPAT_FILETYPE | INCOMPAT_RECOVER | INCOMPAT_META_BG) || roCompat & ~(0x1 | 0x2 | 0x4)) return 'ext4';
  return compat & 0x4 ? 'ext3' : 'ext2';
}

function uuidOf(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Whether the bytes at 1024 hold an ext superblock at all (cheap; parseSuperblock checks the rest). */
export function looksLikeExt(src: Source): boolean {
  return src.size >= 2048 && src.read(1024 + 0x38, 2).readUInt16LE(0) === EXT_MAGIC;
}

export function parseSuperblock(src: Source): Superblock {
  if (src.size < 2048) throw new CorruptError('the partition is too small for an ext filesystem');
  const s = src.read(1024, 1024);
  if (s.readUInt16LE(0x38) !== EXT_MAGIC) throw new CorruptError('no ext superblock (bad magic)');
  const logBlock = s.readUInt32LE(0x18);
  if (logBlock > 6) throw new CorruptError(`the superblock claims blocks of 2^${10 + logBlock} bytes`);
  const blockSize = 1024 << logBlock;
  const compat = s.readUInt32LE(0x5c);
  const incompat = s.readUInt32LE(0x60);
  const roCompat = s.readUInt32LE(0x64);
  const unknown = incompat & ~INCOMPAT_KNOWN;
  if (unknown)
    throw new CorruptError(`the filesystem uses features this reader does not support: ${names(unknown, INCOMPAT).join(', ') || `0x${unknown.toString(16)}`}`);
  if (roCompat & RO_BIGALLOC) throw new CorruptError('the filesystem uses bigalloc, which this reader does not support');
  const is64 = (incompat & INCOMPAT_64BIT) !== 0;
  const blocksCount = s.readUInt32LE(0x04) + (is64 ? s.readUInt32LE(0x150) * 2 ** 32 : 0);
  const inodesCount = s.readUInt32LE(0x00);
  const blocksPerGroup = s.readUInt32LE(0x20);
  const inodesPerGroup = s.readUInt32LE(0x28);
  const firstDataBlock = s.readUInt32LE(0x14);
  const rev = s.readUInt32LE(0x4c);
  const inodeSize = rev === 0 ? 128 : s.readUInt16LE(0x58);
  const descSize = is64 ? s.readUInt16LE(0xfe) : 32;
  const bad = (why: string) => new CorruptError(`the superblock is corrupt: ${why}`);
  if (blocksCount * blockSize > src.size) throw bad(`it claims ${blocksCount} blocks of ${blockSize} bytes, more than the partition's ${src.size} bytes`);
  if (blocksCount === 0 || firstDataBlock >= blocksCount) throw bad('no blocks');
  if (blocksPerGroup === 0 || blocksPerGroup > 8 * blockSize) throw bad(`${blocksPerGroup} blocks per group`);
  if (inodesPerGroup === 0 || inodesPerGroup > 8 * blockSize) throw bad(`${inodesPerGroup} inodes per group`);
  if (inodeSize < 128 || inodeSize > blockSize || (inodeSize & (inodeSize - 1)) !== 0) throw bad(`inodes of ${inodeSize} bytes`);
  if (descSize < 32 || descSize > blockSize || (descSize & (descSize - 1)) !== 0 || (is64 && descSize < 64))
    throw bad(`group descriptors of ${descSize} bytes`);
  const groupCount = Math.ceil((blocksCount - firstDataBlock) / blocksPerGroup);
  if (inodesCount > groupCount * inodesPerGroup || inodesCount < 11) throw bad(`${inodesCount} inodes in ${groupCount} groups`);
  const labelRaw = s.subarray(0x78, 0x88);
  const nul = labelRaw.indexOf(0);
  return {
    blockSize,
    blocksCount,
    inodesCount,
    blocksPerGroup,
    inodesPerGroup,
    firstDataBlock,
    inodeSize,
    groupCount,
    descSize,
    firstMetaBg: s.readUInt32LE(0x104),
    compat,
    incompat,
    roCompat,
    uuid: uuidOf(s.subarray(0x68, 0x78)),
    label: Buffer.from(nul < 0 ? labelRaw : labelRaw.subarray(0, nul)),
    features: [...names(compat, COMPAT), ...names(incompat, INCOMPAT), ...names(roCompat, RO_COMPAT)],
    type: fsType(compat, incompat, roCompat),
  };
}

function isPowerOf(n: number, b: number): boolean {
  while (n > 1 && n % b === 0) n /= b;
  return n === 1;
}

/** Whether group g holds a superblock backup (and so its descriptors under meta_bg sit one block later). */
function hasSuper(sb: Superblock, g: number): boolean {
  if (!(sb.roCompat & RO_SPARSE_SUPER)) return true;
  return g <= 1 || isPowerOf(g, 3) || isPowerOf(g, 5) || isPowerOf(g, 7);
}

/** The block holding group g's descriptor (flat after the superblock, or per meta group under meta_bg). */
function descriptorBlock(sb: Superblock, g: number): number {
  const perBlock = sb.blockSize / sb.descSize;
  const mg = Math.floor(g / perBlock);
  if (!(sb.incompat & INCOMPAT_META_BG) || mg < sb.firstMetaBg) return sb.firstDataBlock + 1 + mg;
  const first = mg * perBlock;
  return sb.firstDataBlock + first * sb.blocksPerGroup + (hasSuper(sb, first) ? 1 : 0);
}

/** Where group g's inode table starts (block number), checked to lie in the filesystem. */
export function inodeTable(src: Source, sb: Superblock, g: number): number {
  const perBlock = sb.blockSize / sb.descSize;
  const at = descriptorBlock(sb, g) * sb.blockSize + (g % perBlock) * sb.descSize;
  const d = src.read(at, sb.descSize);
  const block = d.readUInt32LE(0x08) + (sb.descSize >= 64 ? d.readUInt32LE(0x28) * 2 ** 32 : 0);
  const tableBlocks = Math.ceil((sb.inodesPerGroup * sb.inodeSize) / sb.blockSize);
  if (block < sb.firstDataBlock || block + tableBlocks > sb.blocksCount) throw new CorruptError(`group ${g}'s inode table is outside the filesystem`);
  return block;
}

export function hugeFiles(sb: Superblock): boolean {
  return (sb.roCompat & RO_HUGE_FILE) !== 0;
}
