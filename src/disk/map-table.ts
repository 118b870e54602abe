/**
 * Block map tables streamed between disk and memory in bounded chunks, so loading or writing the
 * map of a huge disk never holds the whole serialized table (or sorted copies of it) at once.
 */
import type { BlockFile } from './block-file.ts';
import { BlockMap } from './block-map.ts';
import { crc32 } from './crc.ts';
import { FormatError, type Extent } from './format.ts';

const MAP_MAGIC = 0x50414d4f; // "OMAP", as in format.ts's encodeMapTable
const CHUNK_ENTRIES = 65536;

/** Reads a map table at `at` (an extent's file offset), verifying magic, length and checksum. */
export function readMapTable(file: BlockFile, at: number, e: Extent, what: string): BlockMap {
  if (e.bytes < 8) throw new FormatError(`${what} is too short`, at);
  const head = file.read(at, 8);
  if (head.readUInt32LE(0) !== MAP_MAGIC) throw new FormatError(`bad ${what} magic`, at);
  const count = head.readUInt32LE(4);
  if (8 + count * 8 !== e.bytes) throw new FormatError(`${what} claims ${count} entries but is ${e.bytes} bytes`, at + 4);
  let crc = crc32(head);
  const map = new BlockMap(count);
  // One buffer for every chunk: a huge map would otherwise leave megabytes of garbage at the
  // moment the process's memory peaks.
  const buf = Buffer.allocUnsafe(Math.min(CHUNK_ENTRIES, Math.max(1, count)) * 8);
  for (let i = 0; i < count; i += CHUNK_ENTRIES) {
    const n = Math.min(CHUNK_ENTRIES, count - i);
    const b = file.read(at + 8 + i * 8, n * 8, buf).subarray(0, n * 8);
    crc = crc32(b, crc);
    for (let k = 0; k < n; k++) map.set(b.readUInt32LE(k * 8), b.readUInt32LE(k * 8 + 4));
  }
  if (crc !== e.crc) throw new FormatError(`${what} checksum mismatch (stored ${e.crc.toString(16)}, computed ${crc.toString(16)})`, at);
  return map;
}

export function mapTableBytes(map: BlockMap): number {
  return 8 + map.size * 8;
}

/** Writes the map's table at `at`; returns its checksum. */
export function writeMapTable(file: BlockFile, at: number, map: BlockMap): number {
  const keys = map.sortedKeys();
  const head = Buffer.alloc(8);
  head.writeUInt32LE(MAP_MAGIC, 0);
  head.writeUInt32LE(keys.length, 4);
  file.write(at, head);
  let crc = crc32(head);
  const buf = Buffer.allocUnsafe(Math.min(CHUNK_ENTRIES, Math.max(1, keys.length)) * 8);
  for (let i = 0; i < keys.length; i += CHUNK_ENTRIES) {
    const n = Math.min(CHUNK_ENTRIES, keys.length - i);
    for (let k = 0; k < n; k++) {
      buf.writeUInt32LE(keys[i + k]!, k * 8);
      buf.writeUInt32LE(map.get(keys[i + k]!), k * 8 + 4);
    }
    const chunk = buf.subarray(0, n * 8);
    file.write(at + 8 + i * 8, chunk);
    crc = crc32(chunk, crc);
  }
  return crc;
}
