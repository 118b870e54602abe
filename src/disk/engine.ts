/**
 * The disk engine: an Outrig disk file opened for I/O.
 *
 * Write path. Writes, zeroes and trims queue up while the previous round is being made durable.
 * A round takes everything queued (the scatter-gather array of every request in flight), splits it
 * into per-block elements, sorts them by virtual block and groups those that touch the same block.
 * A group whose block is mapped and owned by this disk alone is plain data I/O in place. Any other
 * group needs a new block: it is allocated and written, and produces logical operations (Alloc,
 * Map, and Free of what it replaces). All the round's logical operations become one journal
 * record. When the round must be durable (write-through, FUA, FLUSH), the data is synced first,
 * then the record is written and synced: data is always durable before the record that maps it.
 * A block freed by a round is reused only once that round's record is durable, so a crash can
 * never leave a map entry pointing at someone else's data.
 */
import { existsSync, rmSync } from 'node:fs';
import { dirname, isAbsolute, resolve as resolvePath } from 'node:path';
import { Allocator } from './allocator.ts';
import { BlockFile } from './block-file.ts';
import { BlockMap } from './block-map.ts';
import { crc32 } from './crc.ts';
import {
  decodeBitmapTable,
  decodeSnapshotTable,
  decodeSuperblock,
  defaultJournalSize,
  DEFAULT_BLOCK_SIZE,
  encodeBitmapTable,
  encodeOps,
  encodeSnapshotTable,
  encodeSuperblock,
  FormatError,
  isPowerOfTwo,
  journalSeed,
  newSuperblock,
  Op,
  SECTOR,
  SUPERBLOCK_SLOTS,
  ZERO_BLOCK,
  type Backing,
  type Extent,
  type LogicalOp,
  type SnapshotEntry,
  type Superblock,
} from './format.ts';
import { BacklogBudget } from './backlog.ts';
import { Journal, type ReplayResult } from './journal.ts';
import { releaseLock, takeLock } from './lock.ts';
import { asDiskError, DiskError, EIO, EINVAL, ENOSPC, EPERM, isOutOfSpace } from './errors.ts';
import { mapTableBytes, readMapTable, writeMapTable } from './map-table.ts';
import { validateMaps, type Finding, type MapSource } from './validate.ts';

export type CacheMode = 'writeback' | 'writethrough';

export interface OpenOptions {
  readOnly?: boolean;
  /** Fix what validation finds (drop impossible map entries, rebuild the bitmap) instead of refusing. */
  repair?: boolean;
  /** writethrough: every write is durable before it completes; writeback: durable at flush (default). */
  cache?: CacheMode;
  /** Write-back bytes not yet durable that this disk shares a limit on with others (its own, with the default limit, when absent). */
  backlog?: BacklogBudget;
}

/** Uncommitted logical operations a write-back disk holds at most (their memory, and the size of the commit that follows). */
const MAX_UNCOMMITTED_OPS = 65536;

export interface CreateOptions {
  size: number;
  blockSize?: number;
  journalSize?: number;
  /** Makes the new disk a clone: unwritten blocks read from this snapshot of another disk. */
  backing?: { path: string; snapshot: string };
}

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

export interface SnapshotInfo {
  id: number;
  name: string;
  createdAt: string;
  blocks: number;
}

export { DiskError, EIO, EINVAL, ENOSPC, EPERM } from './errors.ts';

type Kind = 'write' | 'zero' | 'trim';

interface Request {
  offset: number;
  length: number;
  kind: Kind;
  /** For zeroes: keep the range allocated (write zeros) instead of punching a hole. */
  noHole?: boolean;
  data?: Buffer;
  fua: boolean;
  failed?: DiskError;
  resolve: () => void;
  reject: (e: Error) => void;
}

/** The data a round writes to one block: undone as a whole if it cannot be written. */
interface BlockWrite {
  elems: Element[];
  /** Puts the block's mapping back, when the write moved it to a new block. */
  undo?: () => void;
  failed?: boolean;
}

/** One request's share of one block. */
interface Element {
  v: number;
  off: number; // within the block
  len: number;
  req: Request;
  /** Offset of this piece inside req.data. */
  dataOff: number;
  seq: number; // arrival order, for a stable sort
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

function resolveBlock(layer: Layer, v: number): Resolved {
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

function readSuperblocks(file: BlockFile): { sb: Superblock; slot: number; problems: string[] } {
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
  const snapshots = sb.snapshots.bytes ? decodeSnapshotTable(readExtent(file, sb, sb.snapshots, 'snapshot table'), sb.dataOffset + sb.snapshots.start * sb.blockSize) : [];
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

export interface EngineInfo {
  path: string;
  uuid: string;
  virtualSize: number;
  blockSize: number;
  mappedBlocks: number;
  allocatedBlocks: number;
  dataAreaBlocks: number;
  fileSize: number;
  journal: { size: number; used: number; lastLsn: number };
  generation: number;
  snapshots: SnapshotInfo[];
  backing?: Backing;
  cache: CacheMode;
  readOnly: boolean;
}

export class DiskEngine {
  readonly head: Layer;
  private sb: Superblock;
  private slot: number;
  private alloc: Allocator;
  private journal: Journal;
  private snaps: SnapshotEntry[];
  private queue: Request[] = [];
  private flushWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private running = false;
  private seq = 0;
  /** Logical operations applied in memory but not yet in a durable journal record. */
  private uncommitted: LogicalOp[] = [];
  /** Blocks freed by uncommitted operations: not reusable until their record is durable. */
  private pendingFree: number[] = [];
  /**
   * Some uncommitted allocation must have its data durable before its record: a reused block (it
   * may hold another block's old data) or a copy-on-write (the bytes outside the write are old
   * content that must not turn into zeros).
   */
  private dataBeforeRecord = false;
  private closed = false;
  readonly replay: ReplayResult;
  /** A zero-filled block, shared by every read-merge-write that starts from zeros. */
  private readonly zeroBlock: Buffer;
  private readonly backlog: BacklogBudget;
  /** Write-back bytes acknowledged since the last commit (counted in the budget). */
  private backlogBytes = 0;
  /** A write error makes the disk fail every later request instead of guessing at its state. */
  private fatal?: Error;

  private constructor(
    readonly path: string,
    private readonly file: BlockFile,
    loaded: { sb: Superblock; slot: number },
    readonly cache: CacheMode,
    readonly readOnly: boolean,
    repair: boolean,
    backlog: BacklogBudget | undefined,
  ) {
    this.backlog = backlog ?? new BacklogBudget();
    this.sb = loaded.sb;
    this.slot = loaded.slot;
    const sb = this.sb;
    const { map, bits, snapshots } = loadTables(file, sb);
    this.snaps = snapshots;
    this.alloc = new Allocator(bits.bits, Math.max(bits.count, sb.blockCount));
    this.zeroBlock = Buffer.alloc(sb.blockSize);
    // Redo the journal after the checkpoint. Alloc/Free rebuild the bitmap, Map/Unmap the head map.
    const seed = journalSeed(sb.uuid);
    this.replay = Journal.replay(file, sb.journalOffset, sb.journalSize, sb.journalHead, sb.checkpointLsn, seed, (ops) => {
      for (const o of ops) {
        switch (o.op) {
          case Op.Map:
            map.set(o.v, o.p);
            break;
          case Op.Unmap:
            map.delete(o.v);
            break;
          case Op.Alloc:
            this.alloc.setAllocated(o.p);
            break;
          case Op.Free:
            this.alloc.setFree(o.p);
            break;
        }
      }
    });
    this.journal = new Journal(file, sb.journalOffset, sb.journalSize, sb.journalHead, this.replay.pos, this.replay.nextLsn, this.replay.used, seed);
    const parent = sb.backing ? openBackingLayer(path, sb.backing) : undefined;
    this.head = { file, dataOffset: sb.dataOffset, blockSize: sb.blockSize, map, parent, owned: parent?.owned ?? [] };

    const sources: MapSource[] = [
      { name: 'head', map, tableOffset: sb.map.bytes ? sb.dataOffset + sb.map.start * sb.blockSize : undefined },
      ...this.snaps.map((s) => ({ name: `snapshot ${s.name}`, map: loadSnapshotMap(file, sb, s), tableOffset: sb.dataOffset + s.map.start * sb.blockSize })),
    ];
    const v = validateMaps(sources, this.alloc, metadataBlocksOf(sb, this.snaps), Math.ceil(sb.virtualSize / sb.blockSize), !!sb.backing);
    this.findings = v.findings;
    const errors = v.findings.filter((f) => f.severity === 'error');
    if (errors.length && !repair && !readOnly) {
      for (const f of this.head.owned) f.close();
      throw new FormatError(`${path} is inconsistent (${errors[0]!.message}); run 'outrig disk check --repair ${path}'`);
    }
    if (repair) {
      for (const b of v.badEntries) {
        b.source.map.delete(b.v);
        if (b.source.name !== 'head') this.repairedSnapshots.set(b.source.name.slice('snapshot '.length), b.source.map);
      }
      for (const p of v.inUseButFree) this.alloc.setAllocated(p);
      for (const p of v.leaked) this.alloc.setFree(p);
    }
    // Reference counts are derived: one per map (head and each snapshot) that points at a block.
    for (const src of sources) {
      src.map.forEach((_v, p) => {
        if (p !== ZERO_BLOCK && p < this.alloc.blockCount) this.alloc.incRef(p);
      });
    }
  }

  /**
   * Before this session writes a record: the header sector of every record past the end of the
   * replayed log that carries a number this session will use is zeroed, and that is made durable.
   * Replay then can never continue into a crashed session's leftovers (Journal.unreplayedRecords).
   */
  private async eraseUnreplayedRecords(): Promise<void> {
    const sb = this.sb;
    const stale = Journal.unreplayedRecords(this.file, sb.journalOffset, sb.journalSize, journalSeed(sb.uuid), sb.journalHead, this.replay);
    if (!stale.length) return;
    const zero = Buffer.alloc(SECTOR);
    for (const off of stale) this.file.write(sb.journalOffset + off, zero);
    await this.file.datasync();
  }

  /** Disks made before journals were reserved at creation get theirs now, if there is room. */
  private reserveJournal(): void {
    try {
      this.file.reserve(this.sb.journalOffset, this.sb.journalSize);
    } catch (e) {
      if (!isOutOfSpace(e)) throw e;
    }
  }

  /** What validation found when the disk was opened. */
  readonly findings: Finding[];
  private readonly repairedSnapshots = new Map<string, BlockMap>();

  /** After an open with repair: writes the repaired state as a new checkpoint. */
  async commitRepair(): Promise<void> {
    await this.exclusive(async () => {
      const snaps: SnapshotEntry[] = [];
      const freed: number[] = [];
      for (const s of this.snaps) {
        const fixed = this.repairedSnapshots.get(s.name);
        if (!fixed) {
          snaps.push(s);
          continue;
        }
        const bytes = mapTableBytes(fixed);
        const blocks = Math.ceil(bytes / this.sb.blockSize);
        const start = this.alloc.allocateRunAtEnd(blocks);
        const crc = writeMapTable(this.file, this.physical(start), fixed);
        for (let i = 0; i < s.map.blocks; i++) freed.push(s.map.start + i);
        snaps.push({ ...s, blocks: fixed.size, map: { start, blocks, bytes, crc } });
      }
      await this.file.datasync();
      await this.checkpoint(snaps, freed);
    });
  }

  static create(path: string, opts: CreateOptions): Superblock {
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
        if (psb.blockSize !== blockSize && opts.blockSize !== undefined) throw new DiskError(`a clone must use its backing disk's block size (${psb.blockSize})`, EINVAL);
        backing = { path: parentPath, uuid: psb.uuid, snapshotId: snap.id };
        return DiskEngine.writeNew(path, { size: Math.max(size, psb.virtualSize), blockSize: psb.blockSize, journalSize: opts.journalSize, backing });
      } finally {
        pf.close();
      }
    }
    return DiskEngine.writeNew(path, { size, blockSize, journalSize: opts.journalSize });
  }

  private static writeNew(path: string, o: { size: number; blockSize: number; journalSize?: number; backing?: Backing }): Superblock {
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

  static async open(path: string, opts: OpenOptions = {}): Promise<DiskEngine> {
    const readOnly = !!opts.readOnly;
    const file = new BlockFile(path, readOnly);
    try {
      const loaded = readSuperblocks(file);
      if (!readOnly) takeLock(path);
      try {
        const engine = new DiskEngine(path, file, loaded, opts.cache ?? 'writeback', readOnly, !!opts.repair && !readOnly, opts.backlog);
        if (!readOnly) {
          await engine.eraseUnreplayedRecords();
          engine.reserveJournal();
        }
        return engine;
      } catch (e) {
        if (!readOnly) releaseLock(path);
        throw e;
      }
    } catch (e) {
      file.close();
      throw e;
    }
  }

  get virtualSize(): number {
    return this.sb.virtualSize;
  }

  get blockSize(): number {
    return this.sb.blockSize;
  }

  get uuid(): string {
    return this.sb.uuid;
  }

  // ---------------------------------------------------------------- reads

  read(offset: number, length: number): ReadSegment[] {
    this.checkRange(offset, length);
    return readLayer(this.head, offset, length);
  }

  /** Reads into one buffer (holes as zeros). */
  readBuffer(offset: number, length: number): Buffer {
    const out = Buffer.alloc(length);
    for (const s of this.read(offset, length)) if (s.data) s.data.copy(out, s.offset - offset);
    return out;
  }

  status(offset: number, length: number, maxExtents?: number): StatusExtent[] {
    this.checkRange(offset, length);
    return statusOfLayer(this.head, offset, length, maxExtents);
  }

  private checkRange(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.sb.virtualSize) {
      throw new DiskError(`range ${offset}+${length} is outside the disk (${this.sb.virtualSize} bytes)`, EINVAL);
    }
  }

  // ---------------------------------------------------------------- writes

  write(offset: number, data: Buffer, fua = false): Promise<void> {
    return this.submit('write', offset, data.length, data, fua);
  }

  writeZeroes(offset: number, length: number, fua = false, noHole = false): Promise<void> {
    return this.submit('zero', offset, length, undefined, fua, noHole);
  }

  trim(offset: number, length: number, fua = false): Promise<void> {
    return this.submit('trim', offset, length, undefined, fua);
  }

  /** Resolves once everything completed before the call is durable. */
  flush(): Promise<void> {
    if (this.fatal) return Promise.reject(this.fatal);
    if (this.readOnly) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.flushWaiters.push({ resolve, reject });
      this.kick();
    });
  }

  private submit(kind: Kind, offset: number, length: number, data: Buffer | undefined, fua: boolean, noHole = false): Promise<void> {
    if (this.closed) return Promise.reject(new DiskError('disk is closed', EIO));
    if (this.fatal) return Promise.reject(this.fatal);
    if (this.readOnly) return Promise.reject(new DiskError('disk is read-only', EPERM));
    try {
      this.checkRange(offset, length);
    } catch (e) {
      return Promise.reject(kind === 'write' ? new DiskError((e as Error).message, ENOSPC) : e);
    }
    if (length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.queue.push({ offset, length, kind, data, fua, noHole, resolve, reject });
      this.kick();
    });
  }

  private kick(): void {
    if (this.running) return;
    this.running = true;
    setImmediate(() => void this.runRounds());
  }

  private async runRounds(): Promise<void> {
    while (this.queue.length || this.flushWaiters.length) {
      const batch = this.queue.splice(0);
      const flushes = this.flushWaiters.splice(0);
      let error: Error | undefined;
      try {
        this.applyRound(batch);
        const durable = this.cache === 'writethrough' || flushes.length > 0 || batch.some((r) => r.fua);
        if (!durable) {
          let bytes = 0;
          for (const r of batch) if (r.kind === 'write' && !r.failed) bytes += r.length;
          this.backlogBytes += bytes;
          this.backlog.take(bytes);
        }
        if (durable || this.uncommitted.length > MAX_UNCOMMITTED_OPS || this.backlog.over) await this.commit();
        // Write-back: complete now, durable at the next flush (or once the backlog is over its limit, above).
        else {
          for (const r of batch) this.settle(r);
          batch.length = 0;
        }
      } catch (e) {
        if (isOutOfSpace(e)) {
          // The journal or a checkpoint found no room. What the round did stays in memory,
          // consistent, and goes out with a later commit once there is space; its requests fail.
          error = asDiskError(e);
        } else {
          error = e as Error;
          this.fatal = new DiskError(`disk failed and stopped accepting writes: ${error.message}`, EIO);
        }
      }
      for (const r of batch) {
        if (error) r.reject(error instanceof DiskError ? error : new DiskError(error.message, EIO));
        else this.settle(r);
      }
      for (const f of flushes) {
        if (error) f.reject(error);
        else f.resolve();
      }
    }
    this.running = false;
  }

  private settle(r: Request): void {
    if (r.failed) r.reject(r.failed);
    else r.resolve();
  }

  /** Splits, sorts, groups and applies a round of requests: data I/O now, logical ops queued. */
  private applyRound(batch: Request[]): void {
    const B = this.sb.blockSize;
    const elems: Element[] = [];
    for (const req of batch) {
      let pos = req.offset;
      const end = req.offset + req.length;
      while (pos < end) {
        const v = Math.floor(pos / B);
        const off = pos - v * B;
        const len = Math.min(B - off, end - pos);
        elems.push({ v, off, len, req, dataOff: pos - req.offset, seq: this.seq++ });
        pos += len;
      }
    }
    elems.sort((a, b) => a.v - b.v || a.seq - b.seq);
    this.queuedEnd = this.file.size;
    for (let i = 0; i < elems.length; ) {
      let j = i + 1;
      while (j < elems.length && elems[j]!.v === elems[i]!.v) j++;
      const group = elems.slice(i, j);
      if (group.length === 1 || group.every((e) => e.req.kind === 'write')) this.planBlock(group, () => this.writeGroupOrElement(group));
      else {
        // Zeroes or trims mixed with writes on one block: each piece's data goes out before the
        // next piece remaps the block, so a piece that fails can be undone alone.
        for (const e of group) {
          this.planBlock([e], () => this.applyElement(e));
          this.flushWrites();
        }
      }
      i = j;
    }
    this.flushWrites();
  }

  private writeGroupOrElement(group: Element[]): void {
    if (group.every((e) => e.req.kind === 'write')) this.writeGroup(group[0]!.v, group);
    else this.applyElement(group[0]!);
  }

  /** Plans one block's share of the round; a failure there fails the requests it carries. */
  private planBlock(elems: Element[], plan: () => void): void {
    try {
      plan();
    } catch (e) {
      const err = asDiskError(e);
      for (const g of elems) g.req.failed ??= err;
    }
  }

  /** Fails the requests of a block whose data could not be written, and undoes its remap. */
  private failBlock(w: BlockWrite, err: DiskError): void {
    if (w.failed) return;
    w.failed = true;
    for (const e of w.elems) e.req.failed ??= err;
    w.undo?.();
  }

  /** Data writes of the current round, merged where a request's bytes land contiguously on disk. */
  private pendingIO: { pos: number; buf: Buffer; off: number; len: number; blocks: BlockWrite[] }[] = [];
  /** The block write that queued I/O belongs to. */
  private current?: BlockWrite;
  /** The file's end once the queued writes are done: fresh-space decisions must see it. */
  private queuedEnd = 0;

  private queueWrite(pos: number, buf: Buffer, off: number, len: number): void {
    const last = this.pendingIO[this.pendingIO.length - 1];
    const block = this.current!;
    // Only the previous write is a merge candidate, so writes keep their order where they overlap.
    if (last && last.buf === buf && last.pos + last.len === pos && last.off + last.len === off) {
      last.len += len;
      if (last.blocks[last.blocks.length - 1] !== block) last.blocks.push(block);
    } else this.pendingIO.push({ pos, buf, off, len, blocks: [block] });
    this.queuedEnd = Math.max(this.queuedEnd, pos + len);
  }

  private flushWrites(): void {
    const io = this.pendingIO;
    this.pendingIO = [];
    for (const w of io) {
      try {
        this.file.write(w.pos, w.buf, w.off, w.len);
      } catch (e) {
        // Out of space (or an I/O error) for these blocks only: their requests fail and their
        // maps go back to what they were, so nothing points at data that never landed.
        const err = asDiskError(e);
        for (const b of w.blocks) this.failBlock(b, err);
      }
    }
  }

  private isFresh(p: number): boolean {
    return this.sb.dataOffset + p * this.sb.blockSize >= Math.max(this.file.size, this.queuedEnd);
  }

  private physical(p: number): number {
    return this.sb.dataOffset + p * this.sb.blockSize;
  }

  /** Data writes to one block, in arrival order; `owners` are the elements whose requests it serves. */
  private writeGroup(v: number, group: Element[], owners: Element[] = group): void {
    const B = this.sb.blockSize;
    const cur = this.head.map.get(v);
    const block: BlockWrite = { elems: owners };
    this.current = block;
    if (cur >= 0 && cur !== ZERO_BLOCK && this.alloc.refCount(cur) === 1) {
      for (const e of group) this.queueWrite(this.physical(cur) + e.off, e.req.data!, e.dataOff, e.len);
      return;
    }
    // Transaction-dependent: the block needs a new physical home.
    const p = this.alloc.allocate();
    const oldZero = cur === ZERO_BLOCK || (cur === -1 && !this.head.parent);
    if (!(oldZero && this.isFresh(p))) this.dataBeforeRecord = true;
    try {
      const covered = coversBlock(group, B);
      let baseZero = true;
      let base: Buffer | undefined;
      if (!covered) {
        const src = cur === ZERO_BLOCK ? null : cur >= 0 ? { layer: this.head, p: cur } : this.head.parent ? resolveBlock(this.head.parent, v) : null;
        if (src) {
          base = src.layer.file.read(src.layer.dataOffset + src.p * B, B);
          baseZero = false;
        }
      }
      if (covered || (baseZero && this.isFresh(p))) {
        // Every byte of the block is written, or the rest is a hole past the file's end: no merge.
        for (const e of group) this.queueWrite(this.physical(p) + e.off, e.req.data!, e.dataOff, e.len);
      } else {
        const buf = base ?? Buffer.from(this.zeroBlock);
        for (const e of group) e.req.data!.copy(buf, e.off, e.dataOff, e.dataOff + e.len);
        this.queueWrite(this.physical(p), buf, 0, buf.length);
      }
    } catch (e) {
      this.alloc.setFree(p);
      throw e;
    }
    block.undo = this.remap(v, cur, p);
  }

  /**
   * Points v at p (a new block, or ZERO_BLOCK, or -1 for unmapped) and logs it; releases the old
   * block. Returns what puts everything back, for a new block whose data could not be written.
   */
  private remap(v: number, cur: number, p: number): () => void {
    const mark = this.uncommitted.length;
    const pendingMark = this.pendingFree.length;
    if (p >= 0 && p !== ZERO_BLOCK) {
      this.alloc.incRef(p);
      this.uncommitted.push({ op: Op.Alloc, p });
    }
    if (p === -1) {
      this.head.map.delete(v);
      this.uncommitted.push({ op: Op.Unmap, v });
    } else {
      this.head.map.set(v, p);
      this.uncommitted.push({ op: Op.Map, v, p });
    }
    if (cur >= 0 && cur !== ZERO_BLOCK && this.alloc.decRef(cur) === 0) {
      this.uncommitted.push({ op: Op.Free, p: cur });
      this.pendingFree.push(cur);
    }
    const ops = new Set(this.uncommitted.slice(mark));
    const freedCur = this.pendingFree.length > pendingMark;
    return () => {
      if (cur === -1) this.head.map.delete(v);
      else this.head.map.set(v, cur);
      if (p >= 0 && p !== ZERO_BLOCK) {
        this.alloc.decRef(p);
        this.alloc.setFree(p);
      }
      if (cur >= 0 && cur !== ZERO_BLOCK) {
        this.alloc.incRef(cur);
        if (freedCur) this.pendingFree.splice(this.pendingFree.lastIndexOf(cur), 1);
      }
      this.uncommitted = this.uncommitted.filter((o) => !ops.has(o));
    };
  }

  /** One element of a group that mixes zeroes or trims with writes. */
  private applyElement(e: Element): void {
    const B = this.sb.blockSize;
    const cur = this.head.map.get(e.v);
    if (e.req.kind === 'write') return this.writeGroup(e.v, [e]);
    const whole = e.off === 0 && e.len === B;
    if (whole && !e.req.noHole) {
      // The block reads as zeros from now on and holds no space.
      const zeroValue = this.head.parent ? ZERO_BLOCK : -1;
      if (cur === zeroValue) return;
      this.remap(e.v, cur, zeroValue);
      return;
    }
    // A partial trim is only a hint and is ignored; a partial zero write is a write of zeros.
    if (e.req.kind === 'trim') return;
    if (resolveBlock(this.head, e.v) === null && !e.req.noHole) return; // already reads as zeros
    const zeros: Element = { ...e, req: { ...e.req, data: this.zeroBlock }, dataOff: 0 };
    this.writeGroup(e.v, [zeros], [e]);
  }

  /**
   * Makes everything done so far durable: data, then the journal record that maps it.
   * When every new block in the record is fresh file space (past the file's end when allocated)
   * for a virtual block that read as zeros, data and record share one sync: a crash between them
   * can only leave such a block reading as zeros (the filesystem never exposes old contents of
   * newly allocated space), which is what it held before the unacknowledged write. Any other
   * allocation gets the data synced first.
   */
  private async commit(): Promise<void> {
    await this.commitAll();
    this.backlog.give(this.backlogBytes);
    this.backlogBytes = 0;
  }

  private async commitAll(): Promise<void> {
    if (this.uncommitted.length === 0) {
      if (this.file.dirty) await this.file.datasync();
      return;
    }
    if (this.dataBeforeRecord && this.file.dirty) await this.file.datasync();
    const ops = this.uncommitted;
    const payloads = splitPayloads(ops, this.journal.maxPayload);
    if (this.journal.tornAppend || this.journal.spaceFor(payloads.map((p) => p.length)) > this.journal.free) {
      // No room in the journal (or a failed append left records that must be numbered past): a
      // checkpoint records the whole state instead.
      await this.checkpoint();
      return;
    }
    this.journal.append(payloads);
    await this.file.datasync();
    this.dataBeforeRecord = false;
    this.uncommitted = [];
    for (const p of this.pendingFree) this.alloc.setFree(p);
    this.pendingFree = [];
    if (this.journal.used > this.journal.size / 2) await this.checkpoint();
  }

  /**
   * Writes the whole state (head map, bitmap, snapshot table) to new extents, then flips the
   * superblock to them. Call only with data synced. Until the flip the old checkpoint stays valid
   * and untouched, so a crash at any point leaves one good checkpoint plus its journal.
   */
  private async checkpoint(snapshots: SnapshotEntry[] = this.snaps, alsoFree: number[] = []): Promise<void> {
    if (this.file.dirty) await this.file.datasync();
    const sb = this.sb;
    const B = sb.blockSize;
    const old = [sb.map, sb.bitmap, sb.snapshots];
    const mapBytes = mapTableBytes(this.head.map);
    const snapBytes = encodeSnapshotTable(snapshots);
    const freed: number[] = [];
    const blocksFor = (n: number) => Math.ceil(n / B);
    // Until the superblock flips nothing refers to the new tables: if they cannot be written (a
    // full file system), their blocks go back and the old checkpoint and journal stay in force.
    const runs: [number, number][] = [];
    const run = (n: number, atEnd: boolean): number => {
      let start = atEnd ? -1 : this.alloc.allocateRunInside(n);
      if (start < 0) start = this.alloc.allocateRunAtEnd(n);
      runs.push([start, n]);
      return start;
    };
    let next: Superblock;
    try {
      const mapStart = run(blocksFor(mapBytes), false);
      const snapStart = run(blocksFor(snapBytes.length), false);
      // The bitmap covers its own blocks: inside the area its size is known; at the end, grow
      // until its size settles.
      let bitmapBlocks = blocksFor(8 + Math.ceil(this.alloc.blockCount / 8));
      let bitmapStart = this.alloc.allocateRunInside(bitmapBlocks);
      if (bitmapStart >= 0) runs.push([bitmapStart, bitmapBlocks]);
      else {
        while (blocksFor(8 + Math.ceil((this.alloc.blockCount + bitmapBlocks) / 8)) > bitmapBlocks) bitmapBlocks++;
        bitmapStart = run(bitmapBlocks, true);
      }
      const oldBlocks: number[] = [];
      for (const e of old) for (let i = 0; i < e.blocks; i++) oldBlocks.push(e.start + i);
      freed.push(...this.pendingFree, ...oldBlocks, ...alsoFree);
      const bitmapBytes = encodeBitmapTable(this.alloc.snapshotBits(freed), this.alloc.blockCount);
      const extent = (start: number, bytes: Buffer): Extent => ({ start, blocks: blocksFor(bytes.length), bytes: bytes.length, crc: crc32(bytes) });
      const mapCrc = writeMapTable(this.file, this.physical(mapStart), this.head.map);
      next = {
        ...sb,
        generation: sb.generation + 1,
        blockCount: this.alloc.blockCount,
        map: { start: mapStart, blocks: blocksFor(mapBytes), bytes: mapBytes, crc: mapCrc },
        snapshots: extent(snapStart, snapBytes),
        bitmap: extent(bitmapStart, bitmapBytes),
      };
      this.file.write(this.physical(snapStart), snapBytes);
      this.file.write(this.physical(bitmapStart), bitmapBytes);
      await this.file.datasync();
    } catch (e) {
      for (const [start, n] of runs) for (let i = 0; i < n; i++) this.alloc.setFree(start + i);
      throw e;
    }
    const { head, lsn } = this.journal.resetHead();
    next.journalHead = head;
    next.checkpointLsn = lsn;
    const slot = 1 - this.slot;
    this.file.write(SUPERBLOCK_SLOTS[slot]!, encodeSuperblock(next));
    await this.file.datasync();
    this.sb = next;
    this.slot = slot;
    this.snaps = snapshots;
    this.uncommitted = [];
    this.dataBeforeRecord = false;
    for (const p of freed) this.alloc.setFree(p);
    this.pendingFree = [];
  }

  /** Makes everything durable and writes a checkpoint now (the next open replays nothing). */
  checkpointNow(): Promise<void> {
    if (this.readOnly) return Promise.reject(new DiskError('disk is read-only', EPERM));
    return this.exclusive(async () => {
      try {
        await this.commit();
        await this.checkpoint();
      } catch (e) {
        throw isOutOfSpace(e) ? asDiskError(e) : e;
      }
    });
  }

  /** Runs fn with the write pipeline drained and held, so it sees (and may change) a quiet state. */
  private async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    await this.flush();
    while (this.running) await new Promise((r) => setImmediate(r));
    this.running = true;
    try {
      return await fn();
    } finally {
      this.running = false;
      if (this.queue.length || this.flushWaiters.length) this.kick();
    }
  }

  // ---------------------------------------------------------------- snapshots

  snapshots(): SnapshotInfo[] {
    return this.snaps.map((s) => ({ id: s.id, name: s.name, createdAt: new Date(s.createdAt).toISOString(), blocks: s.blocks }));
  }

  private findSnapshot(ref: string): SnapshotEntry {
    const s = this.snaps.find((x) => x.name === ref || String(x.id) === ref);
    if (!s) throw new DiskError(`no snapshot '${ref}'`, EINVAL);
    return s;
  }

  /** A copy-on-write snapshot of the disk as it is now (everything written so far, made durable). */
  createSnapshot(name: string): Promise<SnapshotInfo> {
    if (this.readOnly) return Promise.reject(new DiskError('disk is read-only', EPERM));
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) return Promise.reject(new DiskError(`invalid snapshot name '${name}'`, EINVAL));
    return this.exclusive(async () => {
      if (this.snaps.some((s) => s.name === name)) throw new DiskError(`snapshot '${name}' already exists`, EINVAL);
      const bytes = mapTableBytes(this.head.map);
      const blocks = Math.ceil(bytes / this.sb.blockSize);
      const start = this.alloc.allocateRunAtEnd(blocks);
      const crc = writeMapTable(this.file, this.physical(start), this.head.map);
      await this.file.datasync();
      const entry: SnapshotEntry = {
        id: Math.max(0, ...this.snaps.map((s) => s.id)) + 1,
        name,
        createdAt: Date.now(),
        map: { start, blocks, bytes, crc },
        blocks: this.head.map.size,
      };
      await this.checkpoint([...this.snaps, entry]);
      this.head.map.forEach((_v, p) => {
        if (p !== ZERO_BLOCK) this.alloc.incRef(p);
      });
      return this.snapshots().find((s) => s.id === entry.id)!;
    });
  }

  /** Deletes a snapshot; blocks only it held become free. Clones of it must be gone first. */
  deleteSnapshot(ref: string): Promise<void> {
    if (this.readOnly) return Promise.reject(new DiskError('disk is read-only', EPERM));
    return this.exclusive(async () => {
      const s = this.findSnapshot(ref);
      const freed: number[] = [];
      loadSnapshotMap(this.file, this.sb, s).forEach((_v, p) => {
        if (p !== ZERO_BLOCK && this.alloc.decRef(p) === 0) freed.push(p);
      });
      for (let i = 0; i < s.map.blocks; i++) freed.push(s.map.start + i);
      await this.checkpoint(this.snaps.filter((x) => x !== s), freed);
    });
  }

  /** A read-only view of a snapshot, for serving it as an export. */
  snapshotLayer(ref: string): Layer {
    const s = this.findSnapshot(ref);
    return { file: this.file, dataOffset: this.sb.dataOffset, blockSize: this.sb.blockSize, map: loadSnapshotMap(this.file, this.sb, s), parent: this.head.parent, owned: [] };
  }

  /** Grows or shrinks the virtual size; shrinking discards the blocks past the new end. */
  resize(newSize: number): Promise<void> {
    if (this.readOnly) return Promise.reject(new DiskError('disk is read-only', EPERM));
    const size = Math.ceil(newSize / SECTOR) * SECTOR;
    if (size <= 0) return Promise.reject(new DiskError('size must be positive', EINVAL));
    return this.exclusive(async () => {
      const B = this.sb.blockSize;
      const lastBlock = Math.ceil(size / B);
      const drop: number[] = [];
      this.head.map.forEach((v) => {
        if (v >= lastBlock) drop.push(v);
      });
      for (const v of drop) this.remap(v, this.head.map.get(v), -1);
      // A shrink that ends inside a block leaves stale bytes past the end; zero them so a later grow reads zeros.
      const tail = size % B;
      const lastV = lastBlock - 1;
      const lp = this.head.map.get(lastV);
      if (tail && lp >= 0 && lp !== ZERO_BLOCK && size < this.sb.virtualSize) {
        if (this.alloc.refCount(lp) === 1) this.file.write(this.physical(lp) + tail, this.zeroBlock, 0, B - tail);
      }
      this.sb = { ...this.sb, virtualSize: size };
      await this.file.datasync();
      await this.checkpoint();
    });
  }

  info(): EngineInfo {
    let allocated = 0;
    for (let p = 0; p < this.alloc.blockCount; p++) if (this.alloc.isAllocated(p)) allocated++;
    return {
      path: this.path,
      uuid: this.sb.uuid,
      virtualSize: this.sb.virtualSize,
      blockSize: this.sb.blockSize,
      mappedBlocks: this.head.map.size,
      allocatedBlocks: allocated,
      dataAreaBlocks: this.alloc.blockCount,
      fileSize: this.file.size,
      journal: { size: this.sb.journalSize, used: this.journal.used, lastLsn: this.journal.lastLsn },
      generation: this.sb.generation,
      snapshots: this.snapshots(),
      backing: this.sb.backing,
      cache: this.cache,
      readOnly: this.readOnly,
    };
  }

  /** Makes everything durable, writes a checkpoint (so the next open replays nothing) and closes. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (!this.readOnly && !this.fatal) {
      await this.exclusive(async () => {
        await this.commit();
        // On a full file system the journal holds it all: the next open replays it.
        if (this.journal.used > 0) await this.checkpoint().catch((e: unknown) => { if (!isOutOfSpace(e)) throw e; });
      });
    }
    this.closed = true;
    this.backlog.give(this.backlogBytes);
    this.backlogBytes = 0;
    this.file.close();
    for (const f of this.head.owned) f.close();
    if (!this.readOnly) releaseLock(this.path);
  }
}

function coversBlock(group: Element[], B: number): boolean {
  const spans = group.map((e) => [e.off, e.off + e.len] as const).sort((a, b) => a[0] - b[0]);
  let reach = 0;
  for (const [s, e] of spans) {
    if (s > reach) return false;
    reach = Math.max(reach, e);
  }
  return reach >= B;
}

/** Splits ops into record payloads, never separating the Alloc/Map/Free of one block. */
function splitPayloads(ops: LogicalOp[], max: number): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  let size = 0;
  for (let i = 0; i < ops.length; i++) {
    const o = ops[i]!;
    const s = o.op === Op.Map ? 9 : 5;
    // Alloc and Free ride with the Map/Unmap next to them: split only before an Alloc or a lone Map.
    const boundary = o.op === Op.Alloc || ((o.op === Op.Map || o.op === Op.Unmap) && ops[i - 1]?.op !== Op.Alloc);
    if (boundary && size + s > max && i > start) {
      out.push(encodeOps(ops.slice(start, i)));
      start = i;
      size = 0;
    }
    size += s;
  }
  if (start < ops.length) out.push(encodeOps(ops.slice(start)));
  return out;
}
