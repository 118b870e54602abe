/**
 * A map for state that strangers create (discovery nonces, replay keys, rate-limit buckets): its
 * entries expire after a fixed time, and its memory is bounded in bytes, not entries, because one
 * stranger's entry can be a hundred times another's. When full, the oldest entries go first.
 */

/** What V8 spends on a string or a slot beyond its characters (header, hash, map or property slot). */
const PER_VALUE_BYTES = 48;

/**
 * An estimate, on the high side, of the memory a plain JSON-like value holds: two bytes a character
 * (V8 keeps non-Latin-1 strings that way) and a fixed cost per string, number, key and object.
 */
export function approxBytes(v: unknown): number {
  if (typeof v === 'string') return PER_VALUE_BYTES + 2 * v.length;
  if (Array.isArray(v)) return PER_VALUE_BYTES + v.reduce((n: number, x) => n + approxBytes(x), 0);
  if (v && typeof v === 'object') {
    let n = PER_VALUE_BYTES;
    for (const [k, x] of Object.entries(v)) n += approxBytes(k) + approxBytes(x);
    return n;
  }
  return PER_VALUE_BYTES;
}

interface Entry<V> {
  value: V;
  expires: number;
  bytes: number;
}

export class BoundedExpiringMap<V> {
  // A Map iterates in insertion order, and every entry lives equally long: the front is always the
  // next to expire, so pruning never scans live entries.
  private readonly entries = new Map<string, Entry<V>>();
  private used = 0;

  constructor(private readonly o: { ttlMs: number; maxBytes: number }) {
    if (!(o.maxBytes > 0) || !(o.ttlMs > 0)) throw new Error('a bounded map needs a positive size and lifetime');
  }

  /** Estimated bytes held now (never more than maxBytes). */
  get bytes(): number {
    return this.used;
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * Adds (or renews: it moves to the back) an entry, first dropping expired ones and then the
   * oldest until it fits. An entry larger than the whole budget is not kept; returns whether it was.
   */
  set(key: string, value: V, now: number): boolean {
    this.delete(key);
    this.prune(now);
    const bytes = approxBytes(key) + approxBytes(value) + PER_VALUE_BYTES;
    if (bytes > this.o.maxBytes) return false;
    for (const k of this.entries.keys()) {
      if (this.used + bytes <= this.o.maxBytes) break;
      this.delete(k);
    }
    this.entries.set(key, { value, expires: now + this.o.ttlMs, bytes });
    this.used += bytes;
    return true;
  }

  /** The value, unless it expired or was evicted. */
  get(key: string, now: number): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expires <= now) {
      this.delete(key);
      return undefined;
    }
    return e.value;
  }

  delete(key: string): boolean {
    const e = this.entries.get(key);
    if (!e) return false;
    this.entries.delete(key);
    this.used -= e.bytes;
    return true;
  }

  private prune(now: number): void {
    for (const [k, e] of this.entries) {
      if (e.expires > now) break;
      this.delete(k);
    }
  }
}
