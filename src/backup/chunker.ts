/**
 * Content-defined chunking, FastCDC style (Xia et al., USENIX ATC'16): a Gear rolling hash, cut
 * points where the hash's top bits are zero, no cut before the minimum size, a harder condition
 * before the average size and an easier one after it ("normalized chunking", level 2), so sizes
 * cluster around the average. Inserting or deleting bytes moves only the chunks around the edit:
 * that is what makes an edited file cost a chunk or two, not a whole new copy.
 *
 * The gear table comes from the repository's secret seed, so chunk boundaries (and so chunk
 * sizes) do not reveal which well-known files a repository holds.
 */
import { createHash } from 'node:crypto';

export interface ChunkerParams {
  minSize: number;
  avgSize: number;
  maxSize: number;
}

/** restic's sizes: 512 KiB to 8 MiB, about 1 MiB on average. */
export const DEFAULT_CHUNKER: ChunkerParams = { minSize: 512 * 1024, avgSize: 1024 * 1024, maxSize: 8 * 1024 * 1024 };

/** 256 pseudo-random 32-bit values from a seed (SHA-256 in counter mode). */
export function gearTable(seed: Uint8Array): Uint32Array {
  const out = new Uint32Array(256);
  for (let block = 0; block < 32; block++) {
    const h = createHash('sha256')
      .update(seed)
      .update(Buffer.from([block]))
      .digest();
    for (let i = 0; i < 8; i++) out[block * 8 + i] = h.readUInt32LE(i * 4);
  }
  return out;
}

function topBits(n: number): number {
  return n >= 32 ? 0xffffffff : (((1 << n) - 1) << (32 - n)) >>> 0;
}

export class Chunker {
  private readonly maskS: number;
  private readonly maskL: number;
  /** Scanning state of the chunk being found, kept between calls so no byte is hashed twice. */
  private fp = 0;
  private scanned = 0;

  constructor(
    private readonly p: ChunkerParams,
    private readonly gear: Uint32Array,
  ) {
    if (!(p.minSize > 0 && p.minSize <= p.avgSize && p.avgSize <= p.maxSize)) throw new Error(`bad chunker sizes ${JSON.stringify(p)}`);
    const bits = Math.round(Math.log2(p.avgSize));
    this.maskS = topBits(bits + 2) | 0;
    this.maskL = topBits(Math.max(1, bits - 2)) | 0;
  }

  /**
   * Where the chunk that starts at data[0] ends: its length, or -1 when `data` ends before a cut
   * and more is to come. Call again with the same chunk's bytes (and more) until it answers; then
   * the next call starts a new chunk at the answer's offset.
   */
  cut(data: Uint8Array, final: boolean): number {
    const { minSize, avgSize, maxSize } = this.p;
    const len = data.length;
    if (len <= minSize) return final ? len : -1;
    let i = Math.max(this.scanned, minSize);
    let fp = this.fp;
    const g = this.gear;
    const normal = Math.min(avgSize, len);
    const maskS = this.maskS;
    for (; i < normal; i++) {
      fp = ((fp << 1) + g[data[i]!]!) | 0;
      if ((fp & maskS) === 0) return this.done(i + 1);
    }
    const end = Math.min(maxSize, len);
    const maskL = this.maskL;
    for (; i < end; i++) {
      fp = ((fp << 1) + g[data[i]!]!) | 0;
      if ((fp & maskL) === 0) return this.done(i + 1);
    }
    if (end === maxSize) return this.done(maxSize);
    if (final) return this.done(len);
    this.fp = fp;
    this.scanned = i;
    return -1;
  }

  private done(n: number): number {
    this.fp = 0;
    this.scanned = 0;
    return n;
  }
}

/** Splits a whole buffer into chunk lengths (tests and small inputs). */
export function chunkLengths(data: Uint8Array, chunker: Chunker): number[] {
  const out: number[] = [];
  let off = 0;
  while (off < data.length) {
    const n = chunker.cut(data.subarray(off), true);
    out.push(n);
    off += n;
  }
  return out;
}
