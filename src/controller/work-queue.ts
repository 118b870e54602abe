/**
 * A keyed work queue: each key is handled by at most one worker at a time, and keys added while
 * queued or running are coalesced into one more run. Reconcilers are level-triggered, so running
 * once more after any number of changes is exactly right.
 */
export class WorkQueue {
  private queued = new Set<string>();
  private running = new Set<string>();
  private again = new Set<string>();
  private timers = new Map<string, NodeJS.Timeout>();
  private active = 0;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  /** Callers waiting for the next completed run of a key. */
  private keyWaiters = new Map<string, (() => void)[]>();

  constructor(
    private readonly handler: (key: string) => Promise<void>,
    private readonly onError: (key: string, err: unknown) => void,
    private readonly concurrency = 4,
  ) {}

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
    return new Promise((resolve) => {
      const list = this.keyWaiters.get(key) ?? [];
      list.push(resolve);
      this.keyWaiters.set(key, list);
      // A run already under way may have read old state: the waiter is released by the one after it.
      if (this.running.has(key)) this.again.add(key);
      else this.add(key);
    });
  }

  /** Adds the key after a delay (retries, timeouts); an earlier pending delay for it is kept. */
  addAfter(key: string, ms: number): void {
    if (this.closed || this.timers.has(key)) return;
    const t = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    t.unref();
    this.timers.set(key, t);
  }

  private pump(): void {
    while (this.active < this.concurrency && !this.closed) {
      const key = [...this.queued].find((k) => !this.running.has(k));
      if (key === undefined) break;
      this.queued.delete(key);
      this.running.add(key);
      this.active++;
      const waiters = this.keyWaiters.get(key) ?? [];
      this.keyWaiters.delete(key);
      void this.handler(key)
        .catch((e) => this.onError(key, e))
        .finally(() => {
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

  /** Resolves once nothing is queued or running (timers aside). */
  idle(): Promise<void> {
    if (this.active === 0 && this.queued.size === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  close(): void {
    this.closed = true;
    for (const ws of this.keyWaiters.values()) for (const w of ws) w();
    this.keyWaiters.clear();
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.queued.clear();
  }
}
