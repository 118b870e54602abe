/**
 * Stretches of a disk kept block by block (a disk with no partition table and no filesystem
 * Outrig reads file by file, as vzdump keeps every disk): read in order, whole MiB blocks of
 * zeroes left out, the rest cut into content-defined chunks and stored deduplicated like files'
 * content. A blank disk costs nothing, and a rebuild writes only the stretches into an image that
 * starts as zeroes (a sparse file), so it stays sparse.
 */
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { Chunker } from './chunker.ts';
import type { Repository } from './repository.ts';

export interface RawArea {
  offset: number;
  length: number;
  /** Blob ids whose contents, in order, are the stretch's bytes. */
  content: string[];
}

const BLOCK = 1024 * 1024;
const READ = 4 * 1024 * 1024;
const ZERO = Buffer.alloc(BLOCK);

function readFully(fd: number, buf: Buffer, length: number, position: number): number {
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

/** The data stretches of `length` bytes at `offset` of `image`, saved; `onRead` hears the bytes read so far. */
export async function saveRawAreas(
  repo: Repository,
  image: string,
  offset: number,
  length: number,
  onRead?: (bytes: number) => void,
  signal?: AbortSignal,
): Promise<RawArea[]> {
  const fd = openSync(image, 'r');
  const buf = Buffer.allocUnsafe(READ);
  const chunker = new Chunker(repo.chunker, repo.gear);
  const areas: RawArea[] = [];
  let cur: RawArea | undefined;
  // The current chunk's bytes and those after it (less than one largest chunk, plus a read).
  let pending = Buffer.alloc(0);
  const cut = async (final: boolean) => {
    while (pending.length) {
      const n = chunker.cut(pending, final);
      if (n < 0) return;
      cur!.content.push(await repo.saveBlob('data', pending.subarray(0, n)));
      pending = pending.subarray(n);
    }
  };
  const endArea = async () => {
    if (!cur) return;
    await cut(true);
    areas.push(cur);
    cur = undefined;
  };
  try {
    // A file with no block allocated (a new volume's sparse scratch copy, a truncated image) is all zeroes: nothing to read.
    const st = fstatSync(fd);
    if (st.isFile() && st.blocks === 0) {
      onRead?.(length);
      return [];
    }
    for (let at = 0; at < length;) {
      signal?.throwIfAborted();
      const want = Math.min(READ, length - at);
      if (readFully(fd, buf, want, offset + at) < want) throw new Error(`the disk ends before its stated size (${offset + length} bytes)`);
      const append = async (from: number, to: number) => {
        cur ??= { offset: offset + at + from, length: 0, content: [] };
        cur.length += to - from;
        pending = Buffer.concat([pending, buf.subarray(from, to)]);
        await cut(false);
      };
      let run = -1;
      for (let b = 0; b < want; b += BLOCK) {
        const piece = buf.subarray(b, Math.min(b + BLOCK, want));
        if (!piece.equals(ZERO.subarray(0, piece.length))) {
          if (run < 0) run = b;
          continue;
        }
        if (run >= 0) await append(run, b);
        run = -1;
        await endArea();
      }
      if (run >= 0) await append(run, want);
      at += want;
      onRead?.(at);
    }
    await endArea();
    return areas;
  } finally {
    closeSync(fd);
  }
}

/** Writes the stretches into `image` (which reads as zeroes elsewhere); each must end by `limit` and be as long as it says. */
export async function writeRawAreas(repo: Repository, image: string, areas: RawArea[], limit: number): Promise<void> {
  const fd = openSync(image, 'r+');
  try {
    for (const a of areas) {
      if (a.offset + a.length > limit) throw new Error(`a raw stretch of the backup (at ${a.offset}, ${a.length} bytes) runs past the end of the disk`);
      let at = a.offset;
      for (const id of a.content) {
        const data = await repo.loadBlob(id);
        if (at + data.length > a.offset + a.length) throw new Error(`the raw stretch at ${a.offset} holds more than its ${a.length} bytes`);
        writeSync(fd, data, 0, data.length, at);
        at += data.length;
      }
      if (at !== a.offset + a.length) throw new Error(`the raw stretch at ${a.offset} holds ${at - a.offset} of its ${a.length} bytes`);
    }
  } finally {
    closeSync(fd);
  }
}
