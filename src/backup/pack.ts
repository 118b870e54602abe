/**
 * Pack files: many sealed blobs in one file, so a repository has thousands of files, not millions.
 *
 *   [sealed blob]...[sealed header][u32 LE header length][magic "OUTRIGP1"]
 *
 * The header lists each blob in order: kind (1 byte), codec (1 byte), stored length (u32 LE),
 * raw length (u32 LE), id (32 bytes). A pack's name is the SHA-256 of its bytes, so `verify` can
 * check a pack without the key, and a damaged pack is told from a damaged blob.
 */
import { createHash } from 'node:crypto';
import type { Crypter } from './crypto.ts';

const PACK_MAGIC = Buffer.from('OUTRIGP1');
const ENTRY = 1 + 1 + 4 + 4 + 32;

export type BlobKind = 'data' | 'tree';
export type Codec = 'none' | 'zstd';

export interface PackedBlob {
  id: string;
  kind: BlobKind;
  codec: Codec;
  offset: number;
  length: number;
  rawLength: number;
}

const KINDS: BlobKind[] = ['data', 'tree'];
const CODECS: Codec[] = ['none', 'zstd'];

/** Collects sealed blobs until the pack is big enough, then gives the file and its index entries. */
export class PackBuilder {
  private readonly parts: Buffer[] = [];
  private readonly blobs: PackedBlob[] = [];
  private size = 0;

  get bytes(): number {
    return this.size;
  }
  get count(): number {
    return this.blobs.length;
  }

  add(b: Omit<PackedBlob, 'offset' | 'length'>, sealed: Buffer): void {
    this.blobs.push({ ...b, offset: this.size, length: sealed.length });
    this.parts.push(sealed);
    this.size += sealed.length;
  }

  finish(crypter: Crypter): { id: string; data: Buffer; blobs: PackedBlob[] } {
    const header = Buffer.alloc(this.blobs.length * ENTRY);
    this.blobs.forEach((b, i) => {
      const o = i * ENTRY;
      header[o] = KINDS.indexOf(b.kind);
      header[o + 1] = CODECS.indexOf(b.codec);
      header.writeUInt32LE(b.length, o + 2);
      header.writeUInt32LE(b.rawLength, o + 6);
      Buffer.from(b.id, 'hex').copy(header, o + 10);
    });
    const sealed = crypter.seal(header);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(sealed.length);
    const data = Buffer.concat([...this.parts, sealed, len, PACK_MAGIC]);
    return { id: packId(data), data, blobs: this.blobs };
  }
}

/** Reads a pack's own list of blobs from its end (rebuilding an index, checking a pack). */
export function readPackHeader(data: Buffer, crypter: Crypter, name: string): PackedBlob[] {
  if (data.length < 12 || !data.subarray(data.length - 8).equals(PACK_MAGIC)) throw new Error(`pack ${name} has no pack trailer (truncated or not a pack)`);
  const hlen = data.readUInt32LE(data.length - 12);
  const start = data.length - 12 - hlen;
  if (start < 0) throw new Error(`pack ${name}: header length ${hlen} is beyond the file`);
  const header = crypter.open(data.subarray(start, data.length - 12), `the header of pack ${name}`);
  if (header.length % ENTRY) throw new Error(`pack ${name}: header of ${header.length} bytes is not whole entries`);
  const out: PackedBlob[] = [];
  let offset = 0;
  for (let o = 0; o < header.length; o += ENTRY) {
    const kind = KINDS[header[o]!];
    const codec = CODECS[header[o + 1]!];
    if (!kind || !codec) throw new Error(`pack ${name}: unknown blob kind or codec in entry ${o / ENTRY}`);
    const length = header.readUInt32LE(o + 2);
    out.push({ id: header.subarray(o + 10, o + ENTRY).toString('hex'), kind, codec, offset, length, rawLength: header.readUInt32LE(o + 6) });
    offset += length;
  }
  if (offset !== start) throw new Error(`pack ${name}: its blobs end at ${offset}, its header starts at ${start}`);
  return out;
}

export function packId(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
