/**
 * The stream the sandboxed reader writes and the writer outside reads: frames of a 4-byte
 * little-endian header length, a JSON header, and, for `data` frames, `n` raw bytes. Both ends
 * bound every length: the writer treats the stream as hostile too.
 */

export interface Meta {
  mode: number;
  uid: number;
  gid: number;
  /** Nanoseconds since the epoch, as decimal strings. */
  atime: string;
  mtime: string;
  /** Extended attributes: name and base64 value. */
  xattrs?: [string, string][];
}

export type Frame =
  | ({ t: 'dir'; p: string[] } & Meta)
  | ({ t: 'file'; p: string[]; size: number } & Meta)
  | { t: 'data'; o: number; n: number }
  | ({ t: 'symlink'; p: string[]; target: string } & Omit<Meta, 'mode'>)
  | { t: 'link'; p: string[]; to: string[] }
  | ({ t: 'special'; p: string[]; kind: 'fifo' | 'char' | 'block'; major: number; minor: number } & Meta)
  | { t: 'skip'; path: string; why: string }
  | { t: 'note'; text: string }
  | { t: 'done'; entries: number };

const MAX_HEADER = 1024 * 1024;
const MAX_DATA = 1024 * 1024;

export function encodeFrame(f: Frame, data?: Uint8Array): Buffer {
  const json = Buffer.from(JSON.stringify(f));
  const head = Buffer.alloc(4);
  head.writeUInt32LE(json.length);
  return data ? Buffer.concat([head, json, data]) : Buffer.concat([head, json]);
}

/**
 * Cuts a byte stream into frames; throws on anything out of bounds or malformed. A data frame's
 * bytes come out in the pieces they arrived in (each its own `data` frame, offset adjusted), views
 * of the incoming chunks: no copy, however large the frame.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private total = 0;
  /** The data frame whose bytes are still arriving. */
  private data: { o: number; left: number } | undefined;

  /** The first n bytes (n <= total), kept; joined only when a header spans chunks. */
  private front(n: number): Buffer {
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!.subarray(0, n);
  }

  private drop(n: number): void {
    this.total -= n;
    while (n > 0) {
      const c = this.chunks[0]!;
      if (c.length <= n) {
        this.chunks.shift();
        n -= c.length;
      } else {
        this.chunks[0] = c.subarray(n);
        n = 0;
      }
    }
  }

  /** The frames complete after `chunk`; a `data` frame's bytes are valid until the next call. */
  *push(chunk: Buffer): Generator<{ frame: Frame; data?: Buffer }> {
    this.chunks.push(chunk);
    this.total += chunk.length;
    for (;;) {
      if (this.data) {
        if (!this.total) return;
        const c = this.chunks[0]!;
        const n = Math.min(c.length, this.data.left);
        const piece = c.subarray(0, n);
        const frame: Frame = { t: 'data', o: this.data.o, n };
        this.data.o += n;
        this.data.left -= n;
        if (!this.data.left) this.data = undefined;
        this.drop(n);
        yield { frame, data: piece };
        continue;
      }
      if (this.total < 4) return;
      const len = this.front(4).readUInt32LE(0);
      if (len > MAX_HEADER) throw new Error(`the disk reader sent a ${len}-byte header`);
      if (this.total < 4 + len) return;
      let frame: Frame;
      try {
        frame = JSON.parse(
          this.front(4 + len)
            .subarray(4)
            .toString('utf8'),
        ) as Frame;
      } catch {
        throw new Error('the disk reader sent a malformed header');
      }
      if (typeof frame !== 'object' || frame === null || typeof frame.t !== 'string') throw new Error('the disk reader sent a malformed header');
      this.drop(4 + len);
      if (frame.t === 'data') {
        if (!Number.isSafeInteger(frame.n) || frame.n < 0 || frame.n > MAX_DATA || !Number.isSafeInteger(frame.o) || frame.o < 0)
          throw new Error('the disk reader sent a malformed data frame');
        if (frame.n) this.data = { o: frame.o, left: frame.n };
        continue;
      }
      yield { frame };
    }
  }

  /** Bytes of an unfinished frame left at the end of the stream. */
  get pending(): number {
    return this.total + (this.data?.left ?? 0);
  }
}
