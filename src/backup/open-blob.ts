/** A blob out of its pack's bytes: opened (authenticated), decompressed, and checked against its id. */
import { decode } from './codec.ts';
import type { Crypter } from './crypto.ts';
import type { Codec } from './pack.ts';

export interface BlobSlot {
  id: string;
  offset: number;
  length: number;
  rawLength: number;
  codec: Codec;
}

export function openBlob(crypter: Crypter, e: BlobSlot, pack: Uint8Array, packName: string): Buffer {
  const what = `blob ${e.id.slice(0, 12)} in pack ${packName.slice(0, 12)}`;
  if (e.offset + e.length > pack.length) throw new Error(`${what} lies beyond the end of its pack (truncated?)`);
  const plain = decode(e.codec, crypter.open(pack.subarray(e.offset, e.offset + e.length), what), e.rawLength, what);
  if (crypter.blobId(plain) !== e.id) throw new Error(`${what} is damaged: its content does not hash to its id`);
  return plain;
}
