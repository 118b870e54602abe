/** Where a restored blob's bytes go, and the writing of them (on a worker thread or inline). */
import { closeSync, constants, openSync, writeSync } from 'node:fs';

export interface BlobWrite {
  path: string;
  offset: number;
  /** The file is sparse: a blob of zeroes stays a hole. */
  sparse: boolean;
  /** Permission bits to create the file with (the umask applies). */
  mode: number;
}

function isZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

export function writeBlob(plain: Uint8Array, writes: BlobWrite[]): void {
  let zero: boolean | undefined;
  for (const w of writes) {
    if (w.sparse && (zero ??= isZero(plain))) continue;
    // Created here if it is the file's first blob to arrive; the restorer finishes it when whole.
    const fd = openSync(w.path, constants.O_WRONLY | constants.O_CREAT, w.mode);
    try {
      writeSync(fd, plain, 0, plain.length, w.offset);
    } finally {
      closeSync(fd);
    }
  }
}
