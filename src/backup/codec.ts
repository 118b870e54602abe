/**
 * Blob compression: zstd (the WebAssembly build in @bokuweb/zstd-wasm, shipped inside the npm
 * package, so nothing is downloaded at install), kept only when it saves at least 1/32 of the
 * blob; already-compressed data is stored as it is, which also spares the decompression on restore.
 *
 * The package's one-shot functions make a zstd context and two heap buffers per call and copy the
 * result out; here one compression and one decompression context and one pair of buffers are
 * made once per thread and reused (measured on /usr: decompression 17% faster).
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { decompress, init } from '@bokuweb/zstd-wasm';
import type { Codec } from './pack.ts';

interface ZstdModule {
  HEAPU8: Uint8Array;
  _malloc(n: number): number;
  _free(p: number): void;
  _ZSTD_createCCtx(): number;
  _ZSTD_createDCtx(): number;
  _ZSTD_compressBound(n: number): number;
  _ZSTD_isError(code: number): number;
  _ZSTD_compress_usingDict(cctx: number, dst: number, cap: number, src: number, n: number, dict: number, dictSize: number, level: number): number;
  _ZSTD_decompress_usingDict(dctx: number, dst: number, cap: number, src: number, n: number, dict: number, dictSize: number): number;
}

/** Blobs up to this size use the buffers made once; bigger ones (large trees) get their own. */
const REUSED = 9 * 1024 * 1024;

let ready: Promise<void> | undefined;
let z: { m: ZstdModule; cctx: number; dctx: number; src: number; dst: number; cap: number } | undefined;

export function loadCodec(): Promise<void> {
  ready ??= init().then(() => {
    // The contexts are not exported by the package's entry point, only by its module file.
    const require = createRequire(import.meta.url);
    const m = (require(join(dirname(require.resolve('@bokuweb/zstd-wasm')), 'module.js')) as { Module: ZstdModule }).Module;
    const cap = m._ZSTD_compressBound(REUSED);
    z = { m, cctx: m._ZSTD_createCCtx(), dctx: m._ZSTD_createDCtx(), src: m._malloc(cap), dst: m._malloc(cap), cap };
  });
  return ready;
}

/** Level 1: measured on /usr (bench:backup), level 3 took 1.5× the time for 3% less space. */
const ZSTD_LEVEL = 1;

/** Runs `fn` with `input` in the wasm heap and an output area of `outCap` bytes; the buffers are reused when they fit. */
function withHeap<T>(input: Uint8Array, outCap: number, fn: (src: number, dst: number, cap: number) => T): T {
  const { m } = z!;
  if (input.length <= z!.cap && outCap <= z!.cap) {
    m.HEAPU8.set(input, z!.src);
    return fn(z!.src, z!.dst, z!.cap);
  }
  const src = m._malloc(input.length);
  const dst = m._malloc(outCap);
  try {
    m.HEAPU8.set(input, src);
    return fn(src, dst, outCap);
  } finally {
    m._free(src);
    m._free(dst);
  }
}

/**
 * Formats that are compressed already (gzip, xz, bzip2, zstd, zip, 7z, lz4, PNG, JPEG, GIF, WOFF,
 * WOFF2): a file that starts with one of these is stored as it is without trying, which spares
 * the time zstd would spend finding out (a tenth of /usr/share, mostly gzipped manuals).
 */
const COMPRESSED_MAGIC: number[][] = [
  [0x1f, 0x8b],
  [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00],
  [0x42, 0x5a, 0x68],
  [0x28, 0xb5, 0x2f, 0xfd],
  [0x50, 0x4b, 0x03, 0x04],
  [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c],
  [0x04, 0x22, 0x4d, 0x18],
  [0x89, 0x50, 0x4e, 0x47],
  [0xff, 0xd8, 0xff],
  [0x47, 0x49, 0x46, 0x38],
  [0x77, 0x4f, 0x46, 0x46],
  [0x77, 0x4f, 0x46, 0x32],
];

export function looksCompressed(head: Uint8Array): boolean {
  return COMPRESSED_MAGIC.some((m) => m.length <= head.length && m.every((b, i) => head[i] === b));
}

/** Compresses if it pays (unless told the data is compressed already); `loadCodec()` must have resolved. */
export function encode(raw: Uint8Array, compressed = false): { codec: Codec; data: Uint8Array } {
  if (raw.length < 64 || compressed) return { codec: 'none', data: raw };
  const { m, cctx } = z!;
  const z1 = withHeap(raw, m._ZSTD_compressBound(raw.length), (src, dst, cap) => {
    const n = m._ZSTD_compress_usingDict(cctx, dst, cap, src, raw.length, 0, 0, ZSTD_LEVEL);
    if (m._ZSTD_isError(n)) throw new Error(`zstd compression failed (code ${n})`);
    return n <= raw.length - (raw.length >> 5) ? m.HEAPU8.slice(dst, dst + n) : undefined;
  });
  return z1 ? { codec: 'zstd', data: z1 } : { codec: 'none', data: raw };
}

function inflate(data: Uint8Array, rawLength: number, what: string): Buffer {
  const { m, dctx } = z!;
  if (rawLength < 0) {
    // Index and snapshot files do not record their size; the frame does, and the package reads it.
    try {
      const d = decompress(data);
      return Buffer.from(d.buffer, d.byteOffset, d.length);
    } catch (e) {
      throw new Error(`${what} does not decompress: ${(e as Error).message}`, { cause: e });
    }
  }
  const out = withHeap(data, rawLength, (src, dst, c) => {
    const n = m._ZSTD_decompress_usingDict(dctx, dst, c, src, data.length, 0, 0);
    if (m._ZSTD_isError(n)) throw new Error(`${what} does not decompress (zstd error ${n})`);
    if (n !== rawLength) throw new Error(`${what} decompressed to ${n} bytes, expected ${rawLength}`);
    return m.HEAPU8.slice(dst, dst + n);
  });
  return Buffer.from(out.buffer, out.byteOffset, out.length);
}

export function decode(codec: Codec, data: Uint8Array, rawLength: number, what: string): Buffer {
  if (codec === 'none') return Buffer.from(data.buffer, data.byteOffset, data.length);
  return inflate(data, rawLength, what);
}
