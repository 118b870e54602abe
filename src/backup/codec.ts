/**
 * Blob compression: zstd (the WebAssembly build in @bokuweb/zstd-wasm, shipped inside the npm
 * package, so nothing is downloaded at install), kept only when it saves at least 1/32 of the
 * blob; already-compressed data is stored as it is, which also spares the decompression on restore.
 */
import { compress, decompress, init } from '@bokuweb/zstd-wasm';
import type { Codec } from './pack.ts';

let ready: Promise<void> | undefined;

export function loadCodec(): Promise<void> {
  ready ??= init();
  return ready;
}

/** Level 1: measured on /usr (bench:backup), level 3 took 1.5× the time for 3% less space. */
export const ZSTD_LEVEL = 1;

/** Compresses if it pays; `loadCodec()` must have resolved. */
export function encode(raw: Uint8Array): { codec: Codec; data: Uint8Array } {
  if (raw.length < 64) return { codec: 'none', data: raw };
  const z = compress(raw, ZSTD_LEVEL);
  return z.length <= raw.length - (raw.length >> 5) ? { codec: 'zstd', data: z } : { codec: 'none', data: raw };
}

export function decode(codec: Codec, data: Uint8Array, rawLength: number, what: string): Buffer {
  if (codec === 'none') return Buffer.from(data.buffer, data.byteOffset, data.length);
  let out: Uint8Array;
  try {
    out = decompress(data);
  } catch (e) {
    throw new Error(`${what} does not decompress: ${(e as Error).message}`, { cause: e });
  }
  if (rawLength >= 0 && out.length !== rawLength) throw new Error(`${what} decompressed to ${out.length} bytes, expected ${rawLength}`);
  return Buffer.from(out.buffer, out.byteOffset, out.length);
}
