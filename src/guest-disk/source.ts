/**
 * Bytes of a disk, bounded: every read a parser makes is checked against the region it may read,
 * so a hostile structure pointing anywhere gets an error, never someone else's bytes.
 */

/** A structure on the disk is impossible (out of range, wrong magic, a loop): the disk is corrupt or hostile. */
export class CorruptError extends Error {}

export interface Source {
  readonly size: number;
  /** Exactly `length` bytes at `offset`, or CorruptError. */
  read(offset: number, length: number): Buffer;
}

/** A region of a larger source (a partition of a disk). */
export function slice(src: Source, offset: number, size: number): Source {
  if (offset < 0 || size < 0 || offset + size > src.size)
    throw new CorruptError(`the region at ${offset} (${size} bytes) is outside the disk (${src.size} bytes)`);
  return {
    size,
    read(o, n) {
      if (!Number.isSafeInteger(o) || !Number.isSafeInteger(n) || o < 0 || n < 0 || o + n > size)
        throw new CorruptError(`a read at ${o} (${n} bytes) is outside the region (${size} bytes)`);
      return src.read(offset + o, n);
    },
  };
}

/** A source over a buffer (tests). */
export function bufferSource(b: Buffer): Source {
  return {
    size: b.length,
    read(o, n) {
      if (o < 0 || n < 0 || o + n > b.length) throw new CorruptError(`a read at ${o} (${n} bytes) is outside the data (${b.length} bytes)`);
      return b.subarray(o, o + n);
    },
  };
}
