/**
 * Per-key exponential backoff with jitter: the nth consecutive failure of a key waits about
 * base·2^(n-1), capped, and spread over [½, 1]× so keys that failed together do not retry together.
 */
export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 250, maxMs: 60_000 };

export function backoffDelay(failures: number, p: BackoffPolicy, random: () => number = Math.random): number {
  const exp = Math.min(p.maxMs, p.baseMs * 2 ** Math.min(30, Math.max(0, failures - 1)));
  return Math.round(exp / 2 + (random() * exp) / 2);
}
