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
import { Allocator } from './allocator.ts';
import { BlockFile } from './block-file.ts';
import type { BlockMap } from './block-map.ts';
import {
  encodeOps,
  encodeSuperblock,
  FormatError,
  journalSeed,
  Op,
  SECTOR,
  SUPERBLOCK_SLOTS,
  ZERO_BLOCK,
  type Backing,
  type LogicalOp,
  type SnapshotEntry,
  type Superblock,
} from './format.ts';
import { BacklogBudget } from './backlog.ts';
import { writeCheckpointTables } from './checkpoint-tables.ts';
import { createDisk, type CreateOptions } from './create.ts';
import { Journal, type ReplayResult } from './journal.ts';
import {
  loadSnapshotMap,
  loadTables,
  metadataBlocksOf,
  openBackingLayer,
  readLayer,
  readSuperblocks,
  statusOfLayer,
  type Layer,
  type ReadSegment,
  type StatusExtent,
} from './layer.ts';
import { WritePath, type Kind, type Request, type Uncommitted } from './write-path.ts';
import { releaseLock, takeLock } from './lock.ts';
import { asDiskError, DiskError, EIO, EINVAL, ENOSPC, EPERM, isOutOfSpace } from './errors.ts';
import { mapTableBytes, writeMapTable } from './map-table.ts';
import { validateMaps, type Finding, type MapSource } from './validate.ts';

export type { CreateOptions } from './create.ts';

export type CacheMode = 'writeback' | 'writethrough';

interface OpenOptions {
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

export interface SnapshotInfo {
  id: number;
  name: string;
  createdAt: string;
  blocks: number;
}

export { DiskError, EIO, EINVAL, ENOSPC, EPERM } from './errors.ts';

export interface EngineInfo {
  path: string;
  uuid: string;
  virtualSize: number;
  blockSize: number;
  mappedBlocks: number;
  allocatedBlocks: number;
  dataAreaBlocks: number;
  fileSize: number;
  journal: { size: number; used: number; lastLsn: number; reserved: boolean };
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
  /** What rounds changed in memory that the next commit makes durable. */
  private readonly pending: Uncommitted = { ops: [], pendingFree: [], dataBeforeRecord: false };
  private readonly writes: WritePath;
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
    this.writes = new WritePath({
      head: this.head,
      alloc: this.alloc,
      file,
      blockSize: sb.blockSize,
      dataOffset: sb.dataOffset,
      pending: this.pending,
      zeroBlock: this.zeroBlock,
    });

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

  private physical(p: number): number {
    return this.sb.dataOffset + p * this.sb.blockSize;
  }

  /** Disks made before journals were reserved at creation get theirs now, if there is room. */
  private reserveJournal(): void {
    try {
      this.journalReserved = this.file.reserve(this.sb.journalOffset, this.sb.journalSize);
    } catch (e) {
      if (!isOutOfSpace(e)) throw e;
    }
  }

  /** The journal's space is allocated in the file system (space accounting need not count it). */
  private journalReserved = false;

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

  /** Creates a new, empty disk file (or a clone of a snapshot of another): see create.ts. */
  static create(path: string, opts: CreateOptions): Superblock {
    return createDisk(path, opts);
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
        this.writes.apply(batch);
        const durable = this.cache === 'writethrough' || flushes.length > 0 || batch.some((r) => r.fua);
        if (!durable) {
          let bytes = 0;
          for (const r of batch) if (r.kind === 'write' && !r.failed) bytes += r.length;
          this.backlogBytes += bytes;
          this.backlog.take(bytes);
        }
        if (durable || this.pending.ops.length > MAX_UNCOMMITTED_OPS || this.backlog.over) await this.commit();
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
    if (this.pending.ops.length === 0) {
      if (this.file.dirty) await this.file.datasync();
      return;
    }
    if (this.pending.dataBeforeRecord && this.file.dirty) await this.file.datasync();
    const ops = this.pending.ops;
    const payloads = splitPayloads(ops, this.journal.maxPayload);
    if (this.journal.tornAppend || this.journal.spaceFor(payloads.map((p) => p.length)) > this.journal.free) {
      // No room in the journal (or a failed append left records that must be numbered past): a
      // checkpoint records the whole state instead.
      await this.checkpoint();
      return;
    }
    this.journal.append(payloads);
    await this.file.datasync();
    this.pending.dataBeforeRecord = false;
    this.pending.ops = [];
    for (const p of this.pending.pendingFree) this.alloc.setFree(p);
    this.pending.pendingFree = [];
    if (this.journal.used > this.journal.size / 2) await this.checkpoint();
  }

  /**
   * Writes the whole state (head map, bitmap, snapshot table) to new extents, then flips the
   * superblock to them. Call only with data synced. Until the flip the old checkpoint stays valid
   * and untouched, so a crash at any point leaves one good checkpoint plus its journal.
   */
  private async checkpoint(snapshots: SnapshotEntry[] = this.snaps, alsoFree: number[] = []): Promise<void> {
    if (this.file.dirty) await this.file.datasync();
    const { next, freed } = writeCheckpointTables({
      file: this.file,
      alloc: this.alloc,
      sb: this.sb,
      map: this.head.map,
      snapshots,
      freeing: [...this.pending.pendingFree, ...alsoFree],
    });
    await this.file.datasync();
    const { head, lsn } = this.journal.resetHead();
    next.journalHead = head;
    next.checkpointLsn = lsn;
    const slot = 1 - this.slot;
    this.file.write(SUPERBLOCK_SLOTS[slot]!, encodeSuperblock(next));
    await this.file.datasync();
    this.sb = next;
    this.slot = slot;
    this.snaps = snapshots;
    this.pending.ops = [];
    this.pending.dataBeforeRecord = false;
    for (const p of freed) this.alloc.setFree(p);
    this.pending.pendingFree = [];
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
      await this.checkpoint(
        this.snaps.filter((x) => x !== s),
        freed,
      );
    });
  }

  /** A read-only view of a snapshot, for serving it as an export. */
  snapshotLayer(ref: string): Layer {
    const s = this.findSnapshot(ref);
    return {
      file: this.file,
      dataOffset: this.sb.dataOffset,
      blockSize: this.sb.blockSize,
      map: loadSnapshotMap(this.file, this.sb, s),
      parent: this.head.parent,
      owned: [],
    };
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
      for (const v of drop) this.writes.remap(v, this.head.map.get(v), -1);
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
      journal: { size: this.sb.journalSize, used: this.journal.used, lastLsn: this.journal.lastLsn, reserved: this.journalReserved },
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
        if (this.journal.used > 0)
          await this.checkpoint().catch((e: unknown) => {
            if (!isOutOfSpace(e)) throw e;
          });
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
