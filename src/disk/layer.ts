/**
 * The read side of a disk file: its superblocks and tables, and layers (a map of virtual to
 * physical blocks in a file, with the backing snapshot of a clone below it) with the reads and
 * extent queries that resolve through them. Free of engine state: `disk check`, snapshots and
 * clones' backing files use it too.
 */
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, resolve as resolvePath } from 'node:path';
import { BlockFile } from './block-file.ts';
import { BlockMap } from './block-map.ts';
import { crc32 } from './crc.ts';
import {
  decodeBitmapTable,
  decodeSnapshotTable,
  decodeSuperblock,
  FormatError,
  SUPERBLOCK_SLOTS,
  ZERO_BLOCK,
  type Backing,
  type Extent,
  type SnapshotEntry,
  type Superblock,
} from './format.ts';
import { readMapTable } from './map-table.ts';
/** A piece of a read: data, or (data undefined) zeros. */
export interface ReadSegment {
  offset: number;
  length: number;
  data?: Buffer;
}

export interface StatusExtent {
  length: number;
  /** Unallocated: reads as zeros and takes no space. */
  hole: boolean;
}

/**
 * A read-only layer of block lookups: a snapshot's map, or the head map, in some file, with an
 * optional parent (the backing snapshot of a clone) consulted for blocks this layer lacks.
 */
export interface Layer {
  file: BlockFile;
  dataOffset: number;
  blockSize: number;
  map: BlockMap;
  parent?: Layer;
  /** Files this layer opened itself (backing chains), closed with it. */
  owned: BlockFile[];
}

type Resolved = { layer: Layer; p: number } | null; // null: reads as zeros

export function resolveBlock(layer: Layer, v: number): Resolved {
  for (let l: Layer | undefined = layer; l; l = l.parent) {
    const p = l.map.get(v);
    if (p === ZERO_BLOCK) return null;
    if (p >= 0) return { layer: l, p };
  }
  return null;
}

/** Reads [offset, offset+length) of a layer, coalescing physically contiguous blocks into one read. */
export function readLayer(layer: Layer, offset: number, length: number): ReadSegment[] {
  const B = layer.blockSize;
  const segs: ReadSegment[] = [];
  let pos = offset;
  const end = offset + length;
  // A run of data from one layer at consecutive physical offsets.
  let run: { offset: number; length: number; layer: Layer; phys: number } | null = null;
  let hole: { offset: number; length: number } | null = null;
  const flushRun = () => {
    if (run) segs.push({ offset: run.offset, length: run.length, data: run.layer.file.read(run.phys, run.length) });
    run = null;
  };
  const flushHole = () => {
    if (hole) segs.push(hole);
    hole = null;
  };
  while (pos < end) {
    const v = Math.floor(pos / B);
    const inBlock = pos - v * B;
    const len = Math.min(B - inBlock, end - pos);
    const r = resolveBlock(layer, v);
    if (!r) {
      flushRun();
      if (hole) hole.length += len;
      else hole = { offset: pos, length: len };
    } else {
      flushHole();
      const phys = r.layer.dataOffset + r.p * B + inBlock;
      const cur = run as { offset: number; length: number; layer: Layer; phys: number } | null;
      if (cur && cur.layer === r.layer && cur.phys + cur.length === phys) cur.length += len;
      else {
        flushRun();
        run = { offset: pos, length: len, layer: r.layer, phys };
      }
    }
    pos += len;
  }
  flushRun();
  flushHole();
  return segs;
}

export function statusOfLayer(layer: Layer, offset: number, length: number, maxExtents = Infinity): StatusExtent[] {
  const B = layer.blockSize;
  const out: StatusExtent[] = [];
  let pos = offset;
  const end = offset + length;
  while (pos < end && out.length <= maxExtents) {
    const v = Math.floor(pos / B);
    const len = Math.min(B - (pos - v * B), end - pos);
    const hole = resolveBlock(layer, v) === null;
    const last = out[out.length - 1];
    if (last && last.hole === hole) last.length += len;
    else out.push({ length: len, hole });
    pos += len;
  }
  return out.slice(0, maxExtents);
}

export function readSuperblocks(file: BlockFile): { sb: Superblock; slot: number; problems: string[] } {
  const problems: string[] = [];
  let best: { sb: Superblock; slot: number } | null = null;
  for (let slot = 0; slot < SUPERBLOCK_SLOTS.length; slot++) {
    const at = SUPERBLOCK_SLOTS[slot]!;
    try {
      const sb = decodeSuperblock(file.read(at, 4096), at);
      if (!best || sb.generation > best.sb.generation) best = { sb, slot };
    } catch (e) {
      problems.push(`superblock slot ${slot}: ${(e as Error).message}`);
    }
  }
  if (!best) throw new FormatError(`no valid superblock in ${file.path}: ${problems.join('; ')}`, 0);
  return { ...best, problems };
}

function readExtent(file: BlockFile, sb: Superblock, e: Extent, what: string): Buffer {
  const at = sb.dataOffset + e.start * sb.blockSize;
  const b = file.read(at, e.bytes);
  if (crc32(b) !== e.crc) throw new FormatError(`${what} checksum mismatch`, at);
  return b;
}

/** Loads the head map and snapshot table of a superblock (no journal replay). */
export function loadTables(file: BlockFile, sb: Superblock): { map: BlockMap; bits: { bits: Uint8Array; count: number }; snapshots: SnapshotEntry[] } {
  const map = sb.map.bytes ? readMapTable(file, sb.dataOffset + sb.map.start * sb.blockSize, sb.map, 'block map table') : new BlockMap();
  const bits = sb.bitmap.bytes
    ? decodeBitmapTable(readExtent(file, sb, sb.bitmap, 'bitmap table'), sb.dataOffset + sb.bitmap.start * sb.blockSize)
    : { bits: new Uint8Array(0), count: 0 };
  const snapshots = sb.snapshots.bytes
    ? decodeSnapshotTable(readExtent(file, sb, sb.snapshots, 'snapshot table'), sb.dataOffset + sb.snapshots.start * sb.blockSize)
    : [];
  return { map, bits, snapshots };
}

export function loadSnapshotMap(file: BlockFile, sb: Superblock, s: SnapshotEntry): BlockMap {
  if (!s.map.bytes) return new BlockMap();
  return readMapTable(file, sb.dataOffset + s.map.start * sb.blockSize, s.map, `map of snapshot ${s.name}`);
}

/** Opens the read-only layer a clone reads through: a snapshot of its backing disk (and so on down). */
export function openBackingLayer(diskPath: string, backing: Backing, depth = 0): Layer {
  if (depth > 32) throw new FormatError('backing chain deeper than 32 disks (a loop?)');
  const path = isAbsolute(backing.path) ? backing.path : resolvePath(dirname(diskPath), backing.path);
  if (!existsSync(path)) throw new FormatError(`backing disk ${path} is missing`);
  const file = new BlockFile(path, true);
  try {
    const { sb } = readSuperblocks(file);
    if (sb.uuid !== backing.uuid) throw new FormatError(`backing disk ${path} has UUID ${sb.uuid}, expected ${backing.uuid}`);
    const { snapshots } = loadTables(file, sb);
    const snap = snapshots.find((s) => s.id === backing.snapshotId);
    if (!snap) throw new FormatError(`backing disk ${path} has no snapshot ${backing.snapshotId}`);
    const parent = sb.backing ? openBackingLayer(path, sb.backing, depth + 1) : undefined;
    return { file, dataOffset: sb.dataOffset, blockSize: sb.blockSize, map: loadSnapshotMap(file, sb, snap), parent, owned: [file, ...(parent?.owned ?? [])] };
  } catch (e) {
    file.close();
    throw e;
  }
}

/** Blocks that hold serialized tables rather than data. */
export function metadataBlocksOf(sb: Superblock, snaps: SnapshotEntry[]): Set<number> {
  const out = new Set<number>();
  for (const e of [sb.map, sb.bitmap, sb.snapshots, ...snaps.map((x) => x.map)]) for (let i = 0; i < e.blocks; i++) out.add(e.start + i);
  return out;
}
