/**
 * Reading a file once and cutting it into content-defined chunks as it goes. Shared by the seal
 * workers (where backups read files) and the single-threaded path.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { Chunker, type ChunkerParams } from './chunker.ts';

const READ_SIZE = 8 * 1024 * 1024;

/** A buffer big enough for readChunks: one largest chunk plus one read. */
export function chunkBuffer(p: ChunkerParams): Buffer {
  return Buffer.allocUnsafe(p.maxSize + READ_SIZE);
}

/**
 * The file's chunks in order: each a view into `buf`, valid until the next one is asked for.
 * Returns the bytes read. The file is closed when the iteration ends, however it ends.
 */
export function* chunksOf(path: string, p: ChunkerParams, gear: Uint32Array, buf: Buffer): Generator<Buffer, number, undefined> {
  const fd = openSync(path, 'r');
  const chunker = new Chunker(p, gear);
  let total = 0;
  let start = 0;
  let end = 0;
  let eof = false;
  try {
    while (!eof || start < end) {
      if (!eof && end - start < p.maxSize) {
        if (start > 0) {
          buf.copy(buf, 0, start, end);
          end -= start;
          start = 0;
        }
        const n = readSync(fd, buf, end, buf.length - end, null);
        if (n === 0) eof = true;
        end += n;
        total += n;
        if (!eof) continue;
      }
      if (start >= end) break;
      const n = chunker.cut(buf.subarray(start, end), eof);
      if (n < 0) continue;
      yield buf.subarray(start, start + n);
      start += n;
    }
  } finally {
    closeSync(fd);
  }
  return total;
}
