/**
 * Physical block allocation: a bitmap of blocks in use (what the format persists) plus
 * per-block reference counts (derived at open from the head map and the snapshots' maps).
 */
export class Allocator {
  private bits: Uint8Array;
  private refs: Uint16Array;
  private count: number;
  private free: number;
  private cursor = 0;

  constructor(bits: Uint8Array, count: number) {
    this.count = count;
    this.bits = new Uint8Array(Math.max(64, Math.ceil(count / 8) * 2));
    this.bits.set(bits.subarray(0, Math.ceil(count / 8)));
    // Bits past `count` in the last byte are not blocks: keep them clear.
    for (let p = count; p < Math.ceil(count / 8) * 8; p++) this.bits[p >> 3]! &= ~(1 << (p & 7));
    this.refs = new Uint16Array(count + (count >> 3) + 64);
    let used = 0;
    for (let i = 0; i < Math.ceil(count / 8); i++) used += popcount8(this.bits[i]!);
    this.free = count - used;
  }

  /** Physical blocks the data area spans. */
  get blockCount(): number {
    return this.count;
  }

  get freeBlocks(): number {
    return this.free;
  }

  isAllocated(p: number): boolean {
    return p < this.count && (this.bits[p >> 3]! & (1 << (p & 7))) !== 0;
  }

  refCount(p: number): number {
    return p < this.count ? this.refs[p]! : 0;
  }

  private ensure(n: number): void {
    if (n <= this.count) return;
    if (Math.ceil(n / 8) > this.bits.length) {
      const b = new Uint8Array(Math.max(Math.ceil(n / 8), this.bits.length * 2));
      b.set(this.bits);
      this.bits = b;
    }
    if (n > this.refs.length) {
      const r = new Uint16Array(Math.max(n, this.refs.length + (this.refs.length >> 2)));
      r.set(this.refs);
      this.refs = r;
    }
    this.free += n - this.count;
    this.count = n;
  }

  /** Marks p in use (growing the data area if p is past its end). */
  setAllocated(p: number): void {
    this.ensure(p + 1);
    const m = 1 << (p & 7);
    if ((this.bits[p >> 3]! & m) === 0) {
      this.bits[p >> 3]! |= m;
      this.free--;
    }
  }

  setFree(p: number): void {
    if (p >= this.count) return;
    const m = 1 << (p & 7);
    if ((this.bits[p >> 3]! & m) !== 0) {
      this.bits[p >> 3]! &= ~m;
      this.free++;
      if (p < this.cursor) this.cursor = p;
    }
  }

  /** A free block: the lowest one at or after the search cursor, else a new one at the end. */
  allocate(): number {
    if (this.free > 0) {
      const bytes = Math.ceil(this.count / 8);
      for (let pass = 0; pass < 2; pass++) {
        const from = pass === 0 ? this.cursor >> 3 : 0;
        const to = pass === 0 ? bytes : Math.min(bytes, (this.cursor >> 3) + 1);
        for (let i = from; i < to; i++) {
          const b = this.bits[i]!;
          if (b === 0xff) continue;
          for (let k = 0; k < 8; k++) {
            const p = i * 8 + k;
            if (p >= this.count) break;
            if ((b & (1 << k)) === 0) {
              this.setAllocated(p);
              this.cursor = p + 1;
              return p;
            }
          }
        }
      }
    }
    const p = this.count;
    this.setAllocated(p);
    return p;
  }

  /**
   * n consecutive free blocks inside the data area, lowest first, or -1 when there is no such
   * run. Serialized tables go there before growing the file, so a checkpoint still fits on a
   * full file system once blocks have been freed.
   */
  allocateRunInside(n: number): number {
    if (n <= 0 || this.free < n) return -1;
    let run = 0;
    for (let p = 0; p < this.count; p++) {
      if ((p & 7) === 0 && this.bits[p >> 3] === 0xff) {
        run = 0;
        p += 7;
        continue;
      }
      run = this.isAllocated(p) ? 0 : run + 1;
      if (run === n) {
        const start = p - n + 1;
        for (let i = start; i <= p; i++) this.setAllocated(i);
        return start;
      }
    }
    return -1;
  }

  /** n consecutive new blocks at the end of the data area (for serialized tables). */
  allocateRunAtEnd(n: number): number {
    const start = this.count;
    for (let i = 0; i < n; i++) this.setAllocated(start + i);
    return start;
  }

  incRef(p: number): void {
    this.ensure(p + 1);
    if (this.refs[p] === 0xffff) throw new Error(`block ${p} has too many references`);
    this.refs[p]!++;
  }

  /** Drops one reference; returns the references left. */
  decRef(p: number): number {
    if (p >= this.count || this.refs[p] === 0) return 0;
    return --this.refs[p]!;
  }

  resetRefs(): void {
    this.refs.fill(0);
  }

  /** A copy of the bitmap bytes, optionally with some blocks shown as free. */
  snapshotBits(alsoFree: Iterable<number> = []): Uint8Array {
    const out = this.bits.slice(0, Math.ceil(this.count / 8));
    for (const p of alsoFree) if (p < this.count) out[p >> 3]! &= ~(1 << (p & 7));
    return out;
  }
}

function popcount8(b: number): number {
  b = b - ((b >> 1) & 0x55);
  b = (b & 0x33) + ((b >> 2) & 0x33);
  return (b + (b >> 4)) & 0x0f;
}
