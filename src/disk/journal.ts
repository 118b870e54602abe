/**
 * The metadata journal: a circular redo log inside the disk file. Each physical transaction is one
 * record (header + logical operations), numbered by lsn and checksummed, padded to 512 bytes.
 * Replay starts at the checkpoint's head and applies records while each is whole and carries the
 * next lsn; the first that is not (torn, stale, never written) ends the log.
 */
import type { BlockFile } from './block-file.ts';
import {
  decodeOps,
  decodeRecordHeader,
  encodeRecord,
  paddedRecordSize,
  RECORD_HEADER,
  RECORD_MAGIC,
  RECORD_PAD,
  RECORD_TXN,
  SECTOR,
  type LogicalOp,
} from './format.ts';
import { crc32 } from './crc.ts';

export interface ReplayResult {
  /** Where the next record goes. */
  pos: number;
  nextLsn: number;
  records: number;
  /** Bytes from the head to pos. */
  used: number;
  /** Why replay stopped before the end of the journal space, when it saw something there. */
  stoppedBecause?: string;
}

export class Journal {
  constructor(
    private readonly file: BlockFile,
    readonly offset: number,
    readonly size: number,
    private head: number,
    private pos: number,
    private lsn: number,
    private usedBytes: number,
    private readonly seed: number,
  ) {}

  /** Largest payload one record may carry. */
  get maxPayload(): number {
    return Math.min(4 << 20, Math.floor(this.size / 4)) - RECORD_HEADER;
  }

  get used(): number {
    return this.usedBytes;
  }

  get lastLsn(): number {
    return this.lsn - 1;
  }

  get position(): number {
    return this.pos;
  }

  /** Bytes appending records of these payload sizes would take, wrap padding included. */
  spaceFor(payloadBytes: number[]): number {
    let pos = this.pos;
    let total = 0;
    for (const p of payloadBytes) {
      const r = paddedRecordSize(p);
      if (pos + r > this.size) {
        total += this.size - pos;
        pos = 0;
      }
      total += r;
      pos = (pos + r) % this.size;
    }
    return total;
  }

  /** Free space, keeping one sector so a full journal is never confused with an empty one. */
  get free(): number {
    return this.size - this.usedBytes - SECTOR;
  }

  /** Writes records for each payload; the caller syncs. Returns the lsn of the last one. */
  append(payloads: Buffer[]): number {
    const at = { pos: this.pos, used: this.usedBytes };
    try {
      this.appendRecords(payloads);
    } catch (e) {
      // Nothing was synced, so nothing was appended; but the numbers stay used, so no record this
      // session writes can share one with what may have landed, and a checkpoint must come first.
      this.pos = at.pos;
      this.usedBytes = at.used;
      this.tornAppend = true;
      throw e;
    }
    return this.lsn - 1;
  }

  /**
   * An append failed part-way: records numbered past the last checkpoint may lie at the current
   * position, so the next append would follow them. A checkpoint (which moves the numbering past
   * them) must come first.
   */
  tornAppend = false;

  private appendRecords(payloads: Buffer[]): void {
    for (const payload of payloads) {
      const r = paddedRecordSize(payload.length);
      if (this.pos + r > this.size) {
        const gap = this.size - this.pos;
        // A pad record tells replay to continue at the start; it takes an lsn like any record.
        this.file.write(this.offset + this.pos, encodeRecord(RECORD_PAD, this.lsn++, Buffer.alloc(0), this.seed, gap));
        this.usedBytes += gap;
        this.pos = 0;
      }
      this.file.write(this.offset + this.pos, encodeRecord(RECORD_TXN, this.lsn++, payload, this.seed, r));
      this.usedBytes += r;
      this.pos = (this.pos + r) % this.size;
    }
  }

  /** After a checkpoint: everything before the current position is obsolete. */
  resetHead(): { head: number; lsn: number } {
    this.head = this.pos;
    this.usedBytes = 0;
    this.tornAppend = false;
    return { head: this.head, lsn: this.lsn - 1 };
  }

  /**
   * Journal offsets of records numbered at or past the replay's next lsn: written after the last completed sync
   * by a session that crashed (a torn record stops replay; the ones after it may have landed
   * whole). None was acknowledged, and each must go before this session writes: its own records
   * reuse those numbers, and one of the same size at the same place would make a stale record
   * behind it the valid next one (issue 17, finding 1). Records numbered below the next lsn are
   * harmless: replay only ever expects higher numbers.
   */
  static unreplayedRecords(file: BlockFile, offset: number, size: number, seed: number, head: number, replayed: ReplayResult): number[] {
    const out: number[] = [];
    // In pieces: a journal is up to 64 MiB, and a disk's memory is budgeted (docs/disk-format.md).
    const CHUNK = 256 << 10;
    const buf = Buffer.allocUnsafe(CHUNK);
    for (let start = 0; start < size; start += CHUNK) {
      const piece = file.read(offset + start, Math.min(CHUNK, size - start), buf).subarray(0, Math.min(CHUNK, size - start));
      for (let at = 0; at + RECORD_HEADER <= piece.length; at += SECTOR) {
        const off = start + at;
        // Inside the replayed log only its own payload bytes lie between records: never touched.
        if ((off - head + size) % size < replayed.used) continue;
        // The magic first: a view per sector would cost more memory than the scan is worth.
        if (piece.readUInt32LE(at) !== RECORD_MAGIC) continue;
        const h = decodeRecordHeader(piece.subarray(at, at + RECORD_HEADER), seed);
        if (h && h.lsn >= replayed.nextLsn) out.push(off);
      }
    }
    return out;
  }

  /** Reads and applies the records after a checkpoint. */
  static replay(
    file: BlockFile,
    offset: number,
    size: number,
    head: number,
    checkpointLsn: number,
    seed: number,
    apply: (ops: LogicalOp[], lsn: number) => void,
  ): ReplayResult {
    let pos = head;
    let lsn = checkpointLsn + 1;
    let used = 0;
    let records = 0;
    let stoppedBecause: string | undefined;
    while (used < size) {
      if (pos >= size) pos = 0;
      const h = decodeRecordHeader(file.read(offset + pos, RECORD_HEADER), seed);
      if (!h) {
        break;
      }
      if (h.lsn !== lsn) {
        if (h.lsn > lsn) stoppedBecause = `record at journal offset ${pos} has lsn ${h.lsn}, expected ${lsn}`;
        break;
      }
      if (h.type === RECORD_PAD) {
        used += size - pos;
        pos = 0;
        lsn++;
        continue;
      }
      const total = paddedRecordSize(h.payloadLength);
      if (h.type !== RECORD_TXN || pos + total > size || used + total > size) {
        stoppedBecause = `record ${lsn} at journal offset ${pos} has an invalid type or length`;
        break;
      }
      const payload = file.read(offset + pos + RECORD_HEADER, h.payloadLength);
      if (crc32(payload) !== h.payloadCrc) {
        stoppedBecause = `record ${lsn} at journal offset ${pos} is torn (payload checksum mismatch)`;
        break;
      }
      let ops: LogicalOp[];
      try {
        ops = decodeOps(payload);
      } catch (e) {
        stoppedBecause = `record ${lsn} at journal offset ${pos}: ${(e as Error).message}`;
        break;
      }
      apply(ops, lsn);
      records++;
      used += total;
      pos = (pos + total) % size;
      lsn++;
    }
    return { pos, nextLsn: lsn, records, used, stoppedBecause };
  }
}
