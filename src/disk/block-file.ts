/**
 * The disk file: positioned reads and writes as synchronous system calls (page-cache hits cost
 * a few microseconds, less than a thread-pool hop), and fdatasync on the thread pool so the event
 * loop keeps collecting requests while the device flushes: that is what makes group commit work.
 */
import { closeSync, fdatasync, fstatSync, fsyncSync, ftruncateSync, openSync, readSync, writeSync, constants } from 'node:fs';
import { dirname } from 'node:path';
import { spawnSync } from 'node:child_process';

export class BlockFile {
  private fd: number;
  /** Bytes the file spans; writes past it extend it, and the gap reads as zeros. */
  private end: number;
  /** Data written since the last completed datasync. */
  dirty = false;

  constructor(
    readonly path: string,
    readonly readOnly: boolean,
  ) {
    this.fd = openSync(path, readOnly ? constants.O_RDONLY : constants.O_RDWR);
    this.end = fstatSync(this.fd).size;
  }

  static create(path: string): void {
    closeSync(openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o600));
  }

  /**
   * A new file made durable: its contents and size (fsync), then its name (an fsync of the
   * directory), so a power cut after a create returns cannot leave no file or an empty one.
   */
  syncNew(): void {
    fsyncSync(this.fd);
    const dir = openSync(dirname(this.path), constants.O_RDONLY);
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  }

  get size(): number {
    return this.end;
  }

  /** Reads len bytes at pos; bytes past the end of the file read as zeros. */
  read(pos: number, len: number, into?: Buffer, intoOffset = 0): Buffer {
    const buf = into ?? Buffer.allocUnsafe(len);
    let done = 0;
    while (done < len) {
      const n = readSync(this.fd, buf, intoOffset + done, len - done, pos + done);
      if (n === 0) break;
      done += n;
    }
    if (done < len) buf.fill(0, intoOffset + done, intoOffset + len);
    return buf;
  }

  write(pos: number, data: Uint8Array, offset = 0, len = data.length - offset): void {
    if (this.readOnly) throw new Error('disk opened read-only');
    let done = 0;
    this.dirty = true;
    try {
      while (done < len) done += writeSync(this.fd, data, offset + done, len - done, pos + done);
    } catch (e) {
      // A write cut short (a full file system) may still have extended the file: what lies past
      // the old end is no longer a hole that reads as zeros, and fresh-space decisions must know.
      this.end = Math.max(this.end, fstatSync(this.fd).size);
      throw e;
    }
    if (pos + len > this.end) this.end = pos + len;
  }

  /**
   * Reserves file system space for [pos, pos+len) without changing the file's size, so later
   * writes there cannot fail for want of space (the journal must always be writable). Uses
   * fallocate(1) with --keep-size, as Node has no fallocate; where the file system cannot
   * preallocate, the range is left as it is (false) and writes there allocate as usual.
   */
  reserve(pos: number, len: number): boolean {
    if (len <= 0) return true;
    const r = spawnSync('fallocate', ['--keep-size', '--offset', String(pos), '--length', String(len), '--', this.path], { encoding: 'utf8' });
    if (r.status === 0) return true;
    if (/No space left|Disk quota/i.test(r.stderr ?? ''))
      throw Object.assign(new Error(`no space left on the host to reserve ${len} bytes in ${this.path}`), { code: 'ENOSPC' });
    return false;
  }

  datasync(): Promise<void> {
    this.dirty = false;
    // A failed sync is never a request's problem, whatever its code (ENOSPC included): Linux may
    // have dropped the pages it could not write, so a later sync would succeed over lost data.
    return new Promise((resolve, reject) =>
      fdatasync(this.fd, (e) =>
        e ? reject(Object.assign(new Error(`fdatasync of ${this.path} failed: ${e.message}`), { code: 'EIO', cause: e })) : resolve(),
      ),
    );
  }

  truncate(size: number): void {
    ftruncateSync(this.fd, size);
    this.end = size;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
