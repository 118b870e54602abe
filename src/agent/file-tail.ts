/** Follows a growing file (a serial console log) from an offset: inotify for promptness, polling as a backstop. */
import { watch, type FSWatcher } from 'node:fs';
import { open, stat } from 'node:fs/promises';

export class FileTail {
  private pos: number;
  private watcher?: FSWatcher;
  private timer?: NodeJS.Timeout;
  private pending: Promise<void> = Promise.resolve();
  private queued = false;
  private stopped = false;

  constructor(
    private readonly path: string,
    offset: number,
    private readonly onData: (chunk: Buffer) => void,
    private readonly onGone?: () => void,
    pollMs = 250,
  ) {
    this.pos = offset;
    try {
      this.watcher = watch(path, () => void this.kick());
      this.watcher.on('error', () => undefined);
    } catch {
      // No inotify: polling alone still works.
    }
    this.timer = setInterval(() => void this.kick(), pollMs);
    this.timer.unref();
    void this.kick();
  }

  /**
   * Reads what was appended since the last read. Passes run one after another; calls made while a
   * pass is waiting to start share it, so no byte is read twice.
   */
  kick(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.queued) return this.pending;
    this.queued = true;
    this.pending = this.pending
      .then(() => {
        this.queued = false;
        return this.readNew();
      })
      .catch(() => undefined);
    return this.pending;
  }

  /** Resolves once everything in the file now has been delivered. */
  drain(): Promise<void> {
    return this.kick();
  }

  private async readNew(): Promise<void> {
    let size: number;
    try {
      size = (await stat(this.path)).size;
    } catch {
      if (!this.stopped) this.onGone?.();
      return;
    }
    if (size < this.pos) this.pos = 0; // truncated: start over
    if (size === this.pos) return;
    const fh = await open(this.path, 'r');
    try {
      while (this.pos < size && !this.stopped) {
        const len = Math.min(65536, size - this.pos);
        const buf = Buffer.alloc(len);
        const { bytesRead } = await fh.read(buf, 0, len, this.pos);
        if (bytesRead === 0) break;
        this.pos += bytesRead;
        this.onData(buf.subarray(0, bytesRead));
      }
    } finally {
      await fh.close();
    }
  }

  stop(): void {
    this.stopped = true;
    this.watcher?.close();
    if (this.timer) clearInterval(this.timer);
  }
}

/**
 * Finds a marker in a byte stream fed in chunks. Between chunks it keeps only the last
 * marker-length-minus-one bytes (a marker split across writes), whatever the guest writes.
 */
export class MarkerScanner {
  /** The marker's UTF-8 bytes, as latin1 text: chunks are compared byte for byte. */
  private readonly needle: string;
  private carry = '';

  constructor(marker: string) {
    if (!marker) throw new Error('an empty ready marker matches anything');
    this.needle = Buffer.from(marker, 'utf8').toString('latin1');
  }

  /** True if the marker ends in this chunk (or began in an earlier one). */
  feed(chunk: Buffer): boolean {
    const text = this.carry + chunk.toString('latin1');
    if (text.includes(this.needle)) return true;
    // slice(-0) would keep everything: a one-byte marker carries nothing over.
    this.carry = this.needle.length > 1 ? text.slice(-(this.needle.length - 1)) : '';
    return false;
  }

  /** Bytes kept between chunks. */
  get carried(): number {
    return this.carry.length;
  }
}

/** Watches for `marker` in a file after `offset`; calls onFound once. */
export function watchForMarker(path: string, offset: number, marker: string, onFound: () => void): FileTail {
  const scanner = new MarkerScanner(marker);
  let found = false;
  const tail: FileTail = new FileTail(path, offset, (chunk) => {
    if (found || !scanner.feed(chunk)) return;
    found = true;
    tail.stop();
    onFound();
  });
  return tail;
}
