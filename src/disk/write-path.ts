/**
 * The write path's planning half: a round of requests (the scatter-gather array of everything in
 * flight) split into per-block elements, sorted by virtual block and grouped; each group written in
 * place (a block this disk alone owns) or into a newly allocated block, producing the logical
 * operations (Alloc, Map, Free) that the engine's next commit turns into one journal record. Data
 * goes out at the end of the round, merged where it lands contiguously; a block whose data cannot
 * be written (a full file system) fails its requests and has its remap undone.
 */
import type { Allocator } from './allocator.ts';
import type { BlockFile } from './block-file.ts';
import { asDiskError, type DiskError } from './errors.ts';
import { Op, ZERO_BLOCK, type LogicalOp } from './format.ts';
import { resolveBlock, type Layer } from './layer.ts';

/** What rounds have changed in memory and the next commit must make durable. */
export interface Uncommitted {
  /** Logical operations applied in memory but not yet in a durable journal record. */
  ops: LogicalOp[];
  /** Blocks freed by those operations: not reusable until their record is durable. */
  pendingFree: number[];
  /**
   * Some uncommitted allocation must have its data durable before its record: a reused block (it
   * may hold another block's old data) or a copy-on-write (the bytes outside the write are old
   * content that must not turn into zeros).
   */
  dataBeforeRecord: boolean;
}

export type Kind = 'write' | 'zero' | 'trim';

export interface Request {
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

/** What a remap did: enough to put it back. */
interface Move {
  v: number;
  cur: number;
  p: number;
  /** The operations it logged. */
  ops: LogicalOp[];
  /** Whether it released cur (queued as a pending free). */
  freedCur: boolean;
}

/** The data a round writes to one block: undone as a whole if it cannot be written. */
interface BlockWrite {
  elems: Element[];
  /** The remap to undo, when the write moved the block to a new one. */
  moved?: Move;
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

export class WritePath {
  private readonly head: Layer;
  private readonly alloc: Allocator;
  private readonly file: BlockFile;
  private readonly blockSize: number;
  private readonly dataOffset: number;
  private readonly pending: Uncommitted;
  /** A zero-filled block, shared by every read-merge-write that starts from zeros. */
  private readonly zeroBlock: Buffer;
  private seq = 0;

  constructor(d: { head: Layer; alloc: Allocator; file: BlockFile; blockSize: number; dataOffset: number; pending: Uncommitted; zeroBlock: Buffer }) {
    this.head = d.head;
    this.alloc = d.alloc;
    this.file = d.file;
    this.blockSize = d.blockSize;
    this.dataOffset = d.dataOffset;
    this.pending = d.pending;
    this.zeroBlock = d.zeroBlock;
  }

  /** Splits, sorts, groups and applies a round of requests: data I/O now, logical ops queued. */
  apply(batch: Request[]): void {
    const B = this.blockSize;
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
    for (let i = 0; i < elems.length;) {
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
    if (w.moved) this.undo(w.moved);
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
    return this.dataOffset + p * this.blockSize >= Math.max(this.file.size, this.queuedEnd);
  }

  physical(p: number): number {
    return this.dataOffset + p * this.blockSize;
  }

  /** Data writes to one block, in arrival order; `owners` are the elements whose requests it serves. */
  private writeGroup(v: number, group: Element[], owners: Element[] = group): void {
    const B = this.blockSize;
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
    if (!(oldZero && this.isFresh(p))) this.pending.dataBeforeRecord = true;
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
    block.moved = this.remap(v, cur, p);
  }

  /**
   * Points v at p (a new block, or ZERO_BLOCK, or -1 for unmapped) and logs it; releases the old
   * block. Returns what it did, for `undo`.
   */
  remap(v: number, cur: number, p: number): Move {
    const ops: LogicalOp[] = [];
    const log = (o: LogicalOp) => {
      this.pending.ops.push(o);
      ops.push(o);
    };
    if (p >= 0 && p !== ZERO_BLOCK) {
      this.alloc.incRef(p);
      log({ op: Op.Alloc, p });
    }
    if (p === -1) {
      this.head.map.delete(v);
      log({ op: Op.Unmap, v });
    } else {
      this.head.map.set(v, p);
      log({ op: Op.Map, v, p });
    }
    let freedCur = false;
    if (cur >= 0 && cur !== ZERO_BLOCK && this.alloc.decRef(cur) === 0) {
      log({ op: Op.Free, p: cur });
      this.pending.pendingFree.push(cur);
      freedCur = true;
    }
    return { v, cur, p, ops, freedCur };
  }

  /** Puts back everything a remap did, for a new block whose data could not be written. */
  private undo(m: Move): void {
    if (m.cur === -1) this.head.map.delete(m.v);
    else this.head.map.set(m.v, m.cur);
    if (m.p >= 0 && m.p !== ZERO_BLOCK) {
      this.alloc.decRef(m.p);
      this.alloc.setFree(m.p);
    }
    if (m.cur >= 0 && m.cur !== ZERO_BLOCK) {
      this.alloc.incRef(m.cur);
      if (m.freedCur) this.pending.pendingFree.splice(this.pending.pendingFree.lastIndexOf(m.cur), 1);
    }
    this.pending.ops = this.pending.ops.filter((o) => !m.ops.includes(o));
  }

  /** One element of a group that mixes zeroes or trims with writes. */
  private applyElement(e: Element): void {
    const B = this.blockSize;
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
