/**
 * A keyed, rate-limited work queue: each key is handled by at most one worker at a time; keys added
 * while queued or running coalesce into one more run (reconcilers are level-triggered, so one more
 * run after any number of changes is exactly right). A failed run is retried after the key's
 * backoff; a TerminalError is not retried; a run that asks to be requeued is, after its delay.
 */
import { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from './backoff.ts';
import { realClock, type Clock, type Timer } from './clock.ts';
import { TerminalError, type ReconcileResult } from './reconciler.ts';

interface QueueOptions {
  clock?: Clock;
  concurrency?: number;
  backoff?: BackoffPolicy;
  random?: () => number;
  /** A run failed; `retryInMs` is undefined for a TerminalError (no retry). */
  onError?: (key: string, err: unknown, retryInMs: number | undefined) => void;
  /** A run finished (for metrics: runs and their duration). */
  onRun?: (key: string, ms: number) => void;
}

export class RateLimitedQueue {
  private readonly queued = new Set<string>();
  private readonly running = new Set<string>();
  private readonly again = new Set<string>();
  private readonly timers = new Map<string, { at: number; timer: Timer }>();
  private readonly failures = new Map<string, number>();
  private readonly keyWaiters = new Map<string, (() => void)[]>();
  private idleWaiters: (() => void)[] = [];
  private active = 0;
  private closed = false;
  private readonly clock: Clock;

  constructor(
    private readonly handler: (key: string) => Promise<ReconcileResult | void>,
    private readonly o: QueueOptions = {},
  ) {
    this.clock = o.clock ?? realClock;
  }

  add(key: string): void {
    if (this.closed) return;
    if (this.running.has(key)) {
      this.again.add(key);
      return;
    }
    this.queued.add(key);
    this.pump();
  }

  /** Adds the key and resolves after a run of it that started after this call has finished. */
  addAndWait(key: string): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const list = this.keyWaiters.get(key) ?? [];
      list.push(resolve);
      this.keyWaiters.set(key, list);
      // A run already under way may have read old state: the waiter is released by the one after it.
      if (this.running.has(key)) this.again.add(key);
      else this.add(key);
    });
  }

  /** Adds the key after a delay; of two pending delays for a key the sooner wins. */
  addAfter(key: string, ms: number): void {
    if (this.closed) return;
    const at = this.clock.now().getTime() + ms;
    const pending = this.timers.get(key);
    if (pending && pending.at <= at) return;
    pending?.timer.cancel();
    const timer = this.clock.after(ms, () => {
      this.timers.delete(key);
      this.add(key);
    });
    this.timers.set(key, { at, timer });
  }

  /** Consecutive failures of a key (0 once a run succeeds). */
  failuresOf(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Keys waiting for a delayed run, and in how many ms. */
  delayed(): Map<string, number> {
    const now = this.clock.now().getTime();
    return new Map([...this.timers].map(([k, v]) => [k, v.at - now]));
  }

  private pump(): void {
    while (this.active < (this.o.concurrency ?? 4) && !this.closed) {
      const key = this.next();
      if (key === undefined) break;
      this.queued.delete(key);
      this.running.add(key);
      this.active++;
      const waiters = this.keyWaiters.get(key) ?? [];
      this.keyWaiters.delete(key);
      const started = performance.now();
      void this.handler(key)
        .then(
          (r) => this.succeeded(key, r ?? undefined),
          (e: unknown) => this.failed(key, e),
        )
        .finally(() => {
          this.o.onRun?.(key, performance.now() - started);
          for (const w of waiters) w();
          this.running.delete(key);
          this.active--;
          if (this.again.delete(key)) this.queued.add(key);
          // Next runs start from the event loop, not the microtask queue: handlers that keep
          // enqueueing each other can then never starve I/O (the API, the agent streams).
          setImmediate(() => this.pump());
          if (this.active === 0 && this.queued.size === 0) for (const w of this.idleWaiters.splice(0)) w();
        });
    }
  }

  private next(): string | undefined {
    for (const k of this.queued) if (!this.running.has(k)) return k;
    return undefined;
  }

  private succeeded(key: string, r: ReconcileResult | undefined): void {
    this.failures.delete(key);
    if (r?.requeueAfter !== undefined) this.addAfter(key, Math.max(0, r.requeueAfter));
  }

  private failed(key: string, e: unknown): void {
    if (e instanceof TerminalError) {
      this.failures.delete(key);
      this.o.onError?.(key, e, undefined);
      return;
    }
    const n = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, n);
    const delay = backoffDelay(n, this.o.backoff ?? DEFAULT_BACKOFF, this.o.random);
    this.o.onError?.(key, e, delay);
    this.addAfter(key, delay);
  }

  isIdle(): boolean {
    return this.active === 0 && this.queued.size === 0;
  }

  /** Resolves once nothing is queued or running (delayed keys aside). */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  close(): void {
    this.closed = true;
    for (const ws of this.keyWaiters.values()) for (const w of ws) w();
    this.keyWaiters.clear();
    for (const t of this.timers.values()) t.timer.cancel();
    this.timers.clear();
    this.queued.clear();
    for (const w of this.idleWaiters.splice(0)) w();
  }
}
