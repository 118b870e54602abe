/**
 * The on-disk format of an Outrig disk (docs/disk-format.md is the specification).
 * Pure encoders and decoders: no I/O here.
 *
 *   [0, 4096)       superblock slot 0
 *   [4096, 8192)    superblock slot 1 (the valid slot with the higher generation wins)
 *   [8192, +J)      metadata journal: a circular redo log of checksummed, numbered records
 *   [dataOffset...) data area: physical block p at dataOffset + p * blockSize
 * Serialized tables (block maps, allocation bitmap, snapshot table) live in runs of data-area
 * blocks ("extents") that the superblock points to.
 */
import { randomUUID } from 'node:crypto';
import { crc32 } from './crc.ts';

const MAGIC = 'OUTRIGDK';
const FORMAT_VERSION = 1;
export const SUPERBLOCK_SIZE = 4096;
export const SUPERBLOCK_SLOTS = [0, 4096] as const;
const JOURNAL_OFFSET = 8192;
export const SECTOR = 512;
/** Map value meaning "reads as zeros, do not fall through to the backing disk". */
export const ZERO_BLOCK = 0xffffffff;
const MAX_BLOCKS = 0xfffffffe;
const MIN_BLOCK_SIZE = 4096;
const MAX_BLOCK_SIZE = 2 * 1024 * 1024;
export const DEFAULT_BLOCK_SIZE = 64 * 1024;
const BACKING_PATH_MAX = 1024;

export class FormatError extends Error {
  constructor(
    message: string,
    /** Byte offset in the file where the problem is, when known. */
    readonly fileOffset?: number,
  ) {
    super(fileOffset === undefined ? message : `${message} (at file offset ${fileOffset})`);
  }
}

/** A run of consecutive data-area blocks holding one serialized table. */
export interface Extent {
  start: number; // first physical block
  blocks: number;
  bytes: number; // serialized length
  crc: number;
}

const NO_EXTENT: Extent = { start: 0, blocks: 0, bytes: 0, crc: 0 };

export interface Backing {
  /** Path of the backing disk, relative to this disk's directory unless absolute. */
  path: string;
  uuid: string;
  snapshotId: number;
}

export interface Superblock {
  version: number;
  uuid: string;
  virtualSize: number;
  blockSize: number;
  journalOffset: number;
  journalSize: number;
  dataOffset: number;
  /** Checkpoint counter: the valid slot with the higher generation is current. */
  generation: number;
  /** Every journal record with lsn <= checkpointLsn is reflected in the tables. */
  checkpointLsn: number;
  /** Byte offset inside the journal where record checkpointLsn + 1 starts. */
  journalHead: number;
  /** Physical blocks the data area spans (allocated or free). */
  blockCount: number;
  map: Extent;
  bitmap: Extent;
  snapshots: Extent;
  createdAt: number;
  backing?: Backing;
}

function putExtent(b: Buffer, off: number, e: Extent): void {
  b.writeUInt32LE(e.start, off);
  b.writeUInt32LE(e.blocks, off + 4);
  b.writeUInt32LE(e.bytes, off + 8);
  b.writeUInt32LE(e.crc, off + 12);
}

function getExtent(b: Buffer, off: number): Extent {
  return { start: b.readUInt32LE(off), blocks: b.readUInt32LE(off + 4), bytes: b.readUInt32LE(off + 8), crc: b.readUInt32LE(off + 12) };
}

/** Seed of journal header checksums: the CRC-32 of the disk's UUID bytes. */
export function journalSeed(uuid: string): number {
  return crc32(uuidBytes(uuid));
}

function uuidBytes(u: string): Buffer {
  return Buffer.from(u.replace(/-/g, ''), 'hex');
}

function uuidString(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/*
 * Superblock layout (little-endian):
 *   0  magic "OUTRIGDK"      8   version u32        12  header size u32 (4096)
 *   16 uuid [16]             32  virtual size u64   40  block size u32     44 flags u32 (0)
 *   48 journal offset u64    56  journal size u64   64  data offset u64
 *   72 generation u64        80  checkpoint lsn u64 88  journal head u64   96 block count u64
 *   104 map extent [16]      120 bitmap extent [16] 136 snapshot table extent [16]
 *   152 created at (ms) u64
 *   160 backing uuid [16]    176 backing snapshot id u32   180 backing path length u16
 *   182 backing path [1024]
 *   4092 crc32 of bytes [0, 4092)
 */
export function encodeSuperblock(s: Superblock): Buffer {
  const b = Buffer.alloc(SUPERBLOCK_SIZE);
  b.write(MAGIC, 0, 'ascii');
  b.writeUInt32LE(s.version, 8);
  b.writeUInt32LE(SUPERBLOCK_SIZE, 12);
  uuidBytes(s.uuid).copy(b, 16);
  b.writeBigUInt64LE(BigInt(s.virtualSize), 32);
  b.writeUInt32LE(s.blockSize, 40);
  b.writeBigUInt64LE(BigInt(s.journalOffset), 48);
  b.writeBigUInt64LE(BigInt(s.journalSize), 56);
  b.writeBigUInt64LE(BigInt(s.dataOffset), 64);
  b.writeBigUInt64LE(BigInt(s.generation), 72);
  b.writeBigUInt64LE(BigInt(s.checkpointLsn), 80);
  b.writeBigUInt64LE(BigInt(s.journalHead), 88);
  b.writeBigUInt64LE(BigInt(s.blockCount), 96);
  putExtent(b, 104, s.map);
  putExtent(b, 120, s.bitmap);
  putExtent(b, 136, s.snapshots);
  b.writeBigUInt64LE(BigInt(s.createdAt), 152);
  if (s.backing) {
    const path = Buffer.from(s.backing.path, 'utf8');
    if (path.length > BACKING_PATH_MAX) throw new FormatError(`backing path longer than ${BACKING_PATH_MAX} bytes`);
    uuidBytes(s.backing.uuid).copy(b, 160);
    b.writeUInt32LE(s.backing.snapshotId, 176);
    b.writeUInt16LE(path.length, 180);
    path.copy(b, 182);
  }
  b.writeUInt32LE(crc32(b.subarray(0, SUPERBLOCK_SIZE - 4)), SUPERBLOCK_SIZE - 4);
  return b;
}

export function decodeSuperblock(b: Buffer, fileOffset: number): Superblock {
  if (b.length < SUPERBLOCK_SIZE) throw new FormatError('superblock truncated', fileOffset);
  if (b.toString('ascii', 0, 8) !== MAGIC) throw new FormatError('bad superblock magic (not an Outrig disk?)', fileOffset);
  const want = b.readUInt32LE(SUPERBLOCK_SIZE - 4);
  const got = crc32(b.subarray(0, SUPERBLOCK_SIZE - 4));
  if (want !== got)
    throw new FormatError(`superblock checksum mismatch (stored ${want.toString(16)}, computed ${got.toString(16)})`, fileOffset + SUPERBLOCK_SIZE - 4);
  const version = b.readUInt32LE(8);
  if (version !== FORMAT_VERSION) throw new FormatError(`unsupported format version ${version}`, fileOffset + 8);
  const num = (off: number) => {
    const v = b.readBigUInt64LE(off);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError('superblock field out of range', fileOffset + off);
    return Number(v);
  };
  const pathLen = b.readUInt16LE(180);
  const backingUuid = b.subarray(160, 176);
  const s: Superblock = {
    version,
    uuid: uuidString(b.subarray(16, 32)),
    virtualSize: num(32),
    blockSize: b.readUInt32LE(40),
    journalOffset: num(48),
    journalSize: num(56),
    dataOffset: num(64),
    generation: num(72),
    checkpointLsn: num(80),
    journalHead: num(88),
    blockCount: num(96),
    map: getExtent(b, 104),
    bitmap: getExtent(b, 120),
    snapshots: getExtent(b, 136),
    createdAt: num(152),
  };
  if (pathLen > 0) {
    if (pathLen > BACKING_PATH_MAX) throw new FormatError('backing path length out of range', fileOffset + 180);
    s.backing = { uuid: uuidString(backingUuid), snapshotId: b.readUInt32LE(176), path: b.toString('utf8', 182, 182 + pathLen) };
  }
  validateGeometry(s, fileOffset);
  return s;
}

export function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

/** Checks the fields that every later computation trusts; throws FormatError naming the field. */
function validateGeometry(s: Superblock, at = 0): void {
  const bad = (what: string, off: number) => {
    throw new FormatError(what, at + off);
  };
  if (!isPowerOfTwo(s.blockSize) || s.blockSize < MIN_BLOCK_SIZE || s.blockSize > MAX_BLOCK_SIZE) bad(`invalid block size ${s.blockSize}`, 40);
  if (s.virtualSize <= 0 || s.virtualSize % SECTOR !== 0) bad(`invalid virtual size ${s.virtualSize}`, 32);
  if (Math.ceil(s.virtualSize / s.blockSize) > MAX_BLOCKS) bad('virtual size too large for the block size', 32);
  if (s.journalOffset !== JOURNAL_OFFSET) bad(`journal offset ${s.journalOffset} is not ${JOURNAL_OFFSET}`, 48);
  if (s.journalSize < 64 * 1024 || s.journalSize % SECTOR !== 0) bad(`invalid journal size ${s.journalSize}`, 56);
  if (s.dataOffset < s.journalOffset + s.journalSize || s.dataOffset % s.blockSize !== 0) bad(`invalid data offset ${s.dataOffset}`, 64);
  if (s.journalHead >= s.journalSize || s.journalHead % SECTOR !== 0) bad(`journal head ${s.journalHead} outside the journal`, 88);
  if (s.blockCount > MAX_BLOCKS) bad('block count out of range', 96);
  for (const [name, e, off] of [
    ['map', s.map, 104],
    ['bitmap', s.bitmap, 120],
    ['snapshot table', s.snapshots, 136],
  ] as const) {
    if (e.blocks > 0 && e.start + e.blocks > s.blockCount) bad(`${name} extent beyond the data area`, off);
    if (e.bytes > e.blocks * s.blockSize) bad(`${name} extent length exceeds its blocks`, off);
  }
}

export function newSuperblock(opts: { virtualSize: number; blockSize: number; journalSize: number; backing?: Backing }): Superblock {
  const dataOffset = Math.ceil((JOURNAL_OFFSET + opts.journalSize) / opts.blockSize) * opts.blockSize;
  const s: Superblock = {
    version: FORMAT_VERSION,
    uuid: randomUUID(),
    virtualSize: opts.virtualSize,
    blockSize: opts.blockSize,
    journalOffset: JOURNAL_OFFSET,
    journalSize: opts.journalSize,
    dataOffset,
    generation: 1,
    checkpointLsn: 0,
    journalHead: 0,
    blockCount: 0,
    map: NO_EXTENT,
    bitmap: NO_EXTENT,
    snapshots: NO_EXTENT,
    createdAt: Date.now(),
    backing: opts.backing,
  };
  validateGeometry(s);
  return s;
}

/** Journal size for a new disk: 1/256 of the virtual size, between 4 MiB and 64 MiB. */
export function defaultJournalSize(virtualSize: number): number {
  const j = Math.min(64 << 20, Math.max(4 << 20, Math.floor(virtualSize / 256)));
  return Math.ceil(j / SECTOR) * SECTOR;
}

// ---- journal records ----

export const RECORD_MAGIC = 0x4c524a4f; // "OJRL"
export const RECORD_HEADER = 32;
export const RECORD_TXN = 1;
export const RECORD_PAD = 2;

/**
 * Logical operations a transaction carries, applied in order:
 * Map (vblock u32, pblock u32), Unmap (vblock u32), Alloc (pblock u32), Free (pblock u32).
 */
export const Op = { Map: 1, Unmap: 2, Alloc: 3, Free: 4 } as const;

export type LogicalOp =
  { op: typeof Op.Map; v: number; p: number } | { op: typeof Op.Unmap; v: number } | { op: typeof Op.Alloc; p: number } | { op: typeof Op.Free; p: number };

function opsSize(ops: LogicalOp[]): number {
  let n = 0;
  for (const o of ops) n += o.op === Op.Map ? 9 : 5;
  return n;
}

export function encodeOps(ops: LogicalOp[]): Buffer {
  const b = Buffer.allocUnsafe(opsSize(ops));
  let off = 0;
  for (const o of ops) {
    b[off++] = o.op;
    if (o.op === Op.Map) {
      b.writeUInt32LE(o.v, off);
      b.writeUInt32LE(o.p, off + 4);
      off += 8;
    } else {
      b.writeUInt32LE(o.op === Op.Unmap ? o.v : o.p, off);
      off += 4;
    }
  }
  return b;
}

export function decodeOps(b: Buffer): LogicalOp[] {
  const ops: LogicalOp[] = [];
  let off = 0;
  while (off < b.length) {
    const code = b[off++];
    const need = code === Op.Map ? 8 : 4;
    if (off + need > b.length) throw new FormatError(`truncated operation ${code} in journal record`);
    const a = b.readUInt32LE(off);
    switch (code) {
      case Op.Map:
        ops.push({ op: Op.Map, v: a, p: b.readUInt32LE(off + 4) });
        break;
      case Op.Unmap:
        ops.push({ op: Op.Unmap, v: a });
        break;
      case Op.Alloc:
        ops.push({ op: Op.Alloc, p: a });
        break;
      case Op.Free:
        ops.push({ op: Op.Free, p: a });
        break;
      default:
        throw new FormatError(`unknown journal operation ${code}`);
    }
    off += need;
  }
  return ops;
}

export function paddedRecordSize(payloadBytes: number): number {
  return Math.ceil((RECORD_HEADER + payloadBytes) / SECTOR) * SECTOR;
}

/*
 * Record layout: 0 magic u32 | 4 type u16 | 6 reserved u16 | 8 lsn u64 | 16 payload length u32 |
 * 20 payload crc32 u32 | 24 header crc32 (of bytes 0..24) u32 | 28 reserved u32 | 32 payload,
 * zero-padded to a multiple of 512 bytes.
 */
/**
 * `seed` (derived from the disk's UUID) seeds the header checksum, so bytes that only look like a
 * record (say, stale data shaped by a guest) never pass for one.
 */
export function encodeRecord(type: number, lsn: number, payload: Buffer, seed: number, totalSize = paddedRecordSize(payload.length)): Buffer {
  const b = Buffer.alloc(totalSize);
  b.writeUInt32LE(RECORD_MAGIC, 0);
  b.writeUInt16LE(type, 4);
  b.writeBigUInt64LE(BigInt(lsn), 8);
  b.writeUInt32LE(payload.length, 16);
  b.writeUInt32LE(crc32(payload), 20);
  b.writeUInt32LE(crc32(b.subarray(0, 24), seed), 24);
  payload.copy(b, RECORD_HEADER);
  return b;
}

interface RecordHeader {
  type: number;
  lsn: number;
  payloadLength: number;
  payloadCrc: number;
}

/** Parses a record header; null when it is not a valid header (torn, stale or never written). */
export function decodeRecordHeader(b: Buffer, seed: number): RecordHeader | null {
  if (b.length < RECORD_HEADER || b.readUInt32LE(0) !== RECORD_MAGIC) return null;
  if (b.readUInt32LE(24) !== crc32(b.subarray(0, 24), seed)) return null;
  const lsn = b.readBigUInt64LE(8);
  if (lsn > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return { type: b.readUInt16LE(4), lsn: Number(lsn), payloadLength: b.readUInt32LE(16), payloadCrc: b.readUInt32LE(20) };
}

// ---- serialized tables ----

const MAP_MAGIC = 0x50414d4f; // "OMAP"
const BITMAP_MAGIC = 0x4d54424f; // "OBTM"
const SNAP_MAGIC = 0x504e534f; // "OSNP"

/** Block map table: magic u32, count u32, then count pairs (vblock u32, pblock u32) sorted by vblock. */
export function encodeMapTable(entries: { v: Uint32Array; p: Uint32Array; count: number }): Buffer {
  const b = Buffer.allocUnsafe(8 + entries.count * 8);
  b.writeUInt32LE(MAP_MAGIC, 0);
  b.writeUInt32LE(entries.count, 4);
  for (let i = 0; i < entries.count; i++) {
    b.writeUInt32LE(entries.v[i]!, 8 + i * 8);
    b.writeUInt32LE(entries.p[i]!, 12 + i * 8);
  }
  return b;
}

export function decodeMapTable(b: Buffer, fileOffset: number): { v: Uint32Array; p: Uint32Array; count: number } {
  if (b.length < 8 || b.readUInt32LE(0) !== MAP_MAGIC) throw new FormatError('bad block map table magic', fileOffset);
  const count = b.readUInt32LE(4);
  if (8 + count * 8 > b.length) throw new FormatError(`block map table claims ${count} entries but is only ${b.length} bytes`, fileOffset + 4);
  const v = new Uint32Array(count);
  const p = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    v[i] = b.readUInt32LE(8 + i * 8);
    p[i] = b.readUInt32LE(12 + i * 8);
  }
  return { v, p, count };
}

/** Allocation bitmap: magic u32, bit count u32, then ceil(bits / 8) bytes; bit p set = block p in use. */
export function encodeBitmapTable(bits: Uint8Array, count: number): Buffer {
  const bytes = Math.ceil(count / 8);
  const b = Buffer.alloc(8 + bytes);
  b.writeUInt32LE(BITMAP_MAGIC, 0);
  b.writeUInt32LE(count, 4);
  b.set(bits.subarray(0, bytes), 8);
  return b;
}

export function decodeBitmapTable(b: Buffer, fileOffset: number): { bits: Uint8Array; count: number } {
  if (b.length < 8 || b.readUInt32LE(0) !== BITMAP_MAGIC) throw new FormatError('bad bitmap table magic', fileOffset);
  const count = b.readUInt32LE(4);
  if (8 + Math.ceil(count / 8) > b.length) throw new FormatError('bitmap table truncated', fileOffset + 4);
  return { bits: new Uint8Array(b.subarray(8, 8 + Math.ceil(count / 8))), count };
}

export interface SnapshotEntry {
  id: number;
  name: string;
  createdAt: number;
  map: Extent;
  /** Mapped blocks in the snapshot. */
  blocks: number;
}

/** Snapshot table: magic u32, count u32, then per snapshot: id u32, created u64, blocks u32, map extent [16], name length u16, name. */
export function encodeSnapshotTable(snaps: SnapshotEntry[]): Buffer {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(8);
  head.writeUInt32LE(SNAP_MAGIC, 0);
  head.writeUInt32LE(snaps.length, 4);
  parts.push(head);
  for (const s of snaps) {
    const name = Buffer.from(s.name, 'utf8');
    const e = Buffer.alloc(34 + name.length);
    e.writeUInt32LE(s.id, 0);
    e.writeBigUInt64LE(BigInt(s.createdAt), 4);
    e.writeUInt32LE(s.blocks, 12);
    putExtent(e, 16, s.map);
    e.writeUInt16LE(name.length, 32);
    name.copy(e, 34);
    parts.push(e);
  }
  return Buffer.concat(parts);
}

export function decodeSnapshotTable(b: Buffer, fileOffset: number): SnapshotEntry[] {
  if (b.length < 8 || b.readUInt32LE(0) !== SNAP_MAGIC) throw new FormatError('bad snapshot table magic', fileOffset);
  const count = b.readUInt32LE(4);
  const out: SnapshotEntry[] = [];
  let off = 8;
  for (let i = 0; i < count; i++) {
    if (off + 34 > b.length) throw new FormatError(`snapshot table truncated at entry ${i}`, fileOffset + off);
    const nameLen = b.readUInt16LE(off + 32);
    if (off + 34 + nameLen > b.length) throw new FormatError(`snapshot ${i} name runs past the table`, fileOffset + off + 32);
    out.push({
      id: b.readUInt32LE(off),
      createdAt: Number(b.readBigUInt64LE(off + 4)),
      blocks: b.readUInt32LE(off + 12),
      map: getExtent(b, off + 16),
      name: b.toString('utf8', off + 34, off + 34 + nameLen),
    });
    off += 34 + nameLen;
  }
  return out;
}
