/**
 * The disk file: positioned reads and writes as synchronous system calls (page-cache hits cost
 * a few microseconds, less than a thread-pool hop), and fdatasync on the thread pool so the event
 * loop keeps collecting requests while the device flushes: that is what makes group commit work.
 */
import { closeSync, fdatasync, fstatSync, fsyncSync, ftruncateSync, openSync, readSync, writeSync, constants } from 'node:fs';
import { dirname } from 'node:path';

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
    while (done < len) done += writeSync(this.fd, data, offset + done, len - done, pos + done);
    if (pos + len > this.end) this.end = pos + len;
    this.dirty = true;
  }

  datasync(): Promise<void> {
    this.dirty = false;
    return new Promise((resolve, reject) => fdatasync(this.fd, (e) => (e ? reject(e) : resolve())));
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
