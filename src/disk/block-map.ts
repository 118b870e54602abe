/**
 * Virtual block -> physical block map in typed arrays: open addressing with linear probing and
 * backward-shift deletion. About 10 bytes per mapped block at the highest load, and no per-entry
 * objects, so a terabyte-sized thin disk fits in a few tens of MiB.
 */
const EMPTY = 0xffffffff;
// Linear probing stays quick up to here (about 3 probes for a hit, 13 for a miss at the limit).
const MAX_LOAD = 0.8;

export class BlockMap {
  private keys: Uint32Array;
  private vals: Uint32Array;
  private mask: number;
  private count = 0;

  constructor(capacityHint = 1024) {
    let cap = 1024;
    while (cap * MAX_LOAD < capacityHint) cap *= 2;
    this.keys = new Uint32Array(cap).fill(EMPTY);
    this.vals = new Uint32Array(cap);
    this.mask = cap - 1;
  }

  get size(): number {
    return this.count;
  }

  /** Bytes held by the table (for memory accounting). */
  get byteSize(): number {
    return this.keys.byteLength + this.vals.byteLength;
  }

  private slot(k: number): number {
    return (Math.imul(k, 0x9e3779b1) >>> 0) & this.mask;
  }

  /** The physical block for v, or -1 when v is not mapped. */
  get(v: number): number {
    let i = this.slot(v);
    for (;;) {
      const k = this.keys[i]!;
      if (k === v) return this.vals[i]!;
      if (k === EMPTY) return -1;
      i = (i + 1) & this.mask;
    }
  }

  has(v: number): boolean {
    return this.get(v) !== -1;
  }

  set(v: number, p: number): void {
    if (v === EMPTY) throw new RangeError('block number out of range');
    if (this.count + 1 > this.keys.length * MAX_LOAD) this.grow();
    let i = this.slot(v);
    for (;;) {
      const k = this.keys[i]!;
      if (k === v) {
        this.vals[i] = p;
        return;
      }
      if (k === EMPTY) {
        this.keys[i] = v;
        this.vals[i] = p;
        this.count++;
        return;
      }
      i = (i + 1) & this.mask;
    }
  }

  delete(v: number): boolean {
    let i = this.slot(v);
    for (;;) {
      const k = this.keys[i]!;
      if (k === EMPTY) return false;
      if (k === v) break;
      i = (i + 1) & this.mask;
    }
    // Backward-shift: move later entries of the probe run into the hole so lookups stay correct.
    let j = i;
    for (;;) {
      j = (j + 1) & this.mask;
      const k = this.keys[j]!;
      if (k === EMPTY) break;
      const home = this.slot(k);
      const between = i <= j ? home > i && home <= j : home > i || home <= j;
      if (between) continue;
      this.keys[i] = k;
      this.vals[i] = this.vals[j]!;
      i = j;
    }
    this.keys[i] = EMPTY;
    this.count--;
    return true;
  }

  private grow(): void {
    const oldK = this.keys;
    const oldV = this.vals;
    this.keys = new Uint32Array(oldK.length * 2).fill(EMPTY);
    this.vals = new Uint32Array(oldK.length * 2);
    this.mask = this.keys.length - 1;
    this.count = 0;
    for (let i = 0; i < oldK.length; i++) if (oldK[i] !== EMPTY) this.set(oldK[i]!, oldV[i]!);
  }

  forEach(fn: (v: number, p: number) => void): void {
    for (let i = 0; i < this.keys.length; i++) if (this.keys[i] !== EMPTY) fn(this.keys[i]!, this.vals[i]!);
  }

  /** The mapped virtual blocks in ascending order (the values are looked up with get). */
  sortedKeys(): Uint32Array {
    const v = new Uint32Array(this.count);
    let n = 0;
    for (let i = 0; i < this.keys.length; i++) if (this.keys[i] !== EMPTY) v[n++] = this.keys[i]!;
    return v.sort();
  }

  /** Entries sorted by virtual block, as the on-disk table stores them. */
  sorted(): { v: Uint32Array; p: Uint32Array; count: number } {
    const v = this.sortedKeys();
    const p = new Uint32Array(v.length);
    for (let i = 0; i < v.length; i++) p[i] = this.get(v[i]!);
    return { v, p, count: v.length };
  }

  static from(t: { v: Uint32Array; p: Uint32Array; count: number }): BlockMap {
    const m = new BlockMap(t.count);
    for (let i = 0; i < t.count; i++) m.set(t.v[i]!, t.p[i]!);
    return m;
  }
}
