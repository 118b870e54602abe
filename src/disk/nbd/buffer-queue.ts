/** Bytes received but not yet parsed, kept as a list of chunks so large payloads are copied once. */
export class BufferQueue {
  private chunks: Buffer[] = [];
  private total = 0;

  get length(): number {
    return this.total;
  }

  push(b: Buffer): void {
    if (b.length) {
      this.chunks.push(b);
      this.total += b.length;
    }
  }

  /** The first n bytes as one buffer, without consuming them (n <= length). */
  peek(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    const merged = Buffer.concat(this.chunks, this.total);
    this.chunks = [merged];
    return merged.subarray(0, n);
  }

  /** Removes and returns the first n bytes (n <= length). */
  take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0]!;
    if (first.length === n) {
      this.chunks.shift();
      this.total -= n;
      return first;
    }
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      this.total -= n;
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const c = this.chunks[0]!;
      const want = Math.min(c.length, n - got);
      c.copy(out, got, 0, want);
      got += want;
      if (want === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(want);
    }
    this.total -= n;
    return out;
  }

  /** Drops up to n bytes; returns how many were dropped. */
  skip(n: number): number {
    let dropped = 0;
    while (dropped < n && this.chunks.length) {
      const c = this.chunks[0]!;
      const want = Math.min(c.length, n - dropped);
      if (want === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(want);
      dropped += want;
    }
    this.total -= dropped;
    return dropped;
  }
}
