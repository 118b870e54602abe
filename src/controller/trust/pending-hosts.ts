/**
 * Hosts waiting for an operator, indexed in memory (pure). Anyone may ask to enroll, so the
 * number waiting is capped and each request expires; the index is bounded by the cap, which makes
 * both checks cheap on the unauthenticated path, where scanning the hosts table would not be.
 * Loaded from the store at start; the store stays the truth.
 */
export interface PendingLimits {
  /** At most this many hosts wait at once; more requests are refused (429) until some leave. */
  max: number;
  /** A request older than this is forgotten (its host record deleted). */
  ttlMs: number;
}

export const DEFAULT_PENDING_LIMITS: PendingLimits = { max: 200, ttlMs: 3_600_000 };

export class PendingHosts {
  private readonly requested = new Map<string, number>();

  constructor(readonly limits: PendingLimits) {}

  get size(): number {
    return this.requested.size;
  }

  has(hostId: string): boolean {
    return this.requested.has(hostId);
  }

  /** Whether a new request would go beyond the cap. */
  full(): boolean {
    return this.requested.size >= this.limits.max;
  }

  add(hostId: string, requestedAt: number): void {
    this.requested.set(hostId, requestedAt);
  }

  remove(hostId: string): void {
    this.requested.delete(hostId);
  }

  /** The hosts whose request has expired at `now`. */
  expired(now: number): string[] {
    return [...this.requested].filter(([, at]) => now - at >= this.limits.ttlMs).map(([id]) => id);
  }
}
