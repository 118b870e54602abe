/**
 * The manager: one rate-limited queue per resource kind, each running that kind's reconciler;
 * watches that turn events (store changes, agent reports, operation answers) into keys; a slow
 * resync that enqueues every key now and then as a safety net (missed events), not as the way work
 * gets done. The resync is spread over its period in slices, so 10,000 instances cost a steady
 * trickle of reconciles rather than a burst every half hour.
 */
import type { Logger } from 'pino';
import { realClock, type Clock, type Timer } from './clock.ts';
import { RateLimitedQueue } from './queue.ts';
import type { BackoffPolicy } from './backoff.ts';
import type { Kind, ObjectRef, Reconciler } from './reconciler.ts';

interface ManagerOptions {
  log: Logger;
  clock?: Clock;
  backoff?: BackoffPolicy;
  random?: () => number;
  /** Every key of every kind is enqueued this often (default 30 minutes). */
  resyncMs?: number;
  concurrency?: number;
  onError?: (kind: Kind, key: string, err: unknown) => void;
  onRun?: (kind: Kind, ms: number) => void;
}

/**
 * A safety net, so rare: 10,000 instances every 10 minutes were 17 reconciles a second forever, a
 * sixth of an idle controller's CPU (bench:controller). controller-runtime's default is 10 hours.
 */
const DEFAULT_RESYNC_MS = 1_800_000;

/** A resync pass is spread over this many slices of its period. */
const RESYNC_SLICES = 60;

interface Registered {
  reconciler: Reconciler;
  queue: RateLimitedQueue;
  /** Every key of the kind, for the first pass and the resync. */
  keys: () => Promise<string[]>;
}

export class Manager {
  private readonly kinds = new Map<Kind, Registered>();
  private readonly clock: Clock;
  private resync?: Timer;
  private stopped = false;
  /** The keys of the running resync pass, and the slice it is at. */
  private pass: { keys: [Kind, string][]; slice: number } = { keys: [], slice: RESYNC_SLICES };

  constructor(private readonly o: ManagerOptions) {
    this.clock = o.clock ?? realClock;
  }

  register(reconciler: Reconciler, keys: () => Promise<string[]>): void {
    const { kind } = reconciler;
    if (this.kinds.has(kind)) throw new Error(`a reconciler for ${kind} is already registered`);
    const queue = new RateLimitedQueue((key) => reconciler.reconcile(key), {
      clock: this.clock,
      backoff: this.o.backoff,
      random: this.o.random,
      concurrency: this.o.concurrency,
      onRun: (_key, ms) => this.o.onRun?.(kind, ms),
      onError: (key, err, retryInMs) => {
        this.o.onError?.(kind, key, err);
        const e = err instanceof Error ? err : new Error(String(err));
        if (retryInMs === undefined) this.o.log.error({ err: e, key }, `${kind} reconcile failed for good`);
        else this.o.log.error({ err: e, key, retryInMs }, `${kind} reconcile failed`);
      },
    });
    this.kinds.set(kind, { reconciler, queue, keys });
  }

  private get(kind: Kind): Registered {
    const r = this.kinds.get(kind);
    if (!r) throw new Error(`no reconciler for ${kind}`);
    return r;
  }

  enqueue(kind: Kind, key: string): void {
    this.get(kind).queue.add(key);
  }

  enqueueRefs(refs: Iterable<ObjectRef>): void {
    for (const r of refs) this.enqueue(r.kind, r.key);
  }

  enqueueAfter(kind: Kind, key: string, ms: number): void {
    this.get(kind).queue.addAfter(key, ms);
  }

  /** Reconciles a key now and resolves once that run is done (API actions answer with the result). */
  reconcileNow(kind: Kind, key: string): Promise<void> {
    return this.get(kind).queue.addAndWait(key);
  }

  queue(kind: Kind): RateLimitedQueue {
    return this.get(kind).queue;
  }

  /** Enqueues every key of every kind, then again over every resyncMs, a slice at a time. */
  async start(): Promise<void> {
    await this.enqueueAll();
    const sliceMs = (this.o.resyncMs ?? DEFAULT_RESYNC_MS) / RESYNC_SLICES;
    const tick = () => {
      if (this.stopped) return;
      this.resync = this.clock.after(sliceMs, () => {
        this.resyncSlice().then(tick, (e: Error) => {
          this.o.log.error({ err: e }, 'resync failed');
          tick();
        });
      });
    };
    tick();
  }

  private async resyncSlice(): Promise<void> {
    if (this.pass.slice === RESYNC_SLICES) {
      const keys: [Kind, string][] = [];
      for (const [kind, r] of this.kinds) for (const key of await r.keys()) keys.push([kind, key]);
      this.pass = { keys, slice: 0 };
    }
    const { keys, slice } = this.pass;
    const n = keys.length;
    // A key deleted since the pass began is enqueued anyway: its reconcile finds nothing and returns.
    for (const [kind, key] of keys.slice(Math.floor((slice * n) / RESYNC_SLICES), Math.floor(((slice + 1) * n) / RESYNC_SLICES)))
      if (!this.stopped) this.enqueue(kind, key);
    this.pass.slice++;
  }

  async enqueueAll(): Promise<void> {
    for (const [kind, r] of this.kinds) for (const key of await r.keys()) this.enqueue(kind, key);
  }

  /** Resolves once no queue has work queued or running (delayed keys aside). */
  async idle(): Promise<void> {
    for (;;) {
      await Promise.all([...this.kinds.values()].map((r) => r.queue.idle()));
      // A run of one kind may have enqueued another that was already idle: look again.
      await new Promise((r) => setImmediate(r));
      if ([...this.kinds.values()].every((r) => r.queue.isIdle())) return;
    }
  }

  stop(): void {
    this.stopped = true;
    this.resync?.cancel();
    for (const r of this.kinds.values()) r.queue.close();
  }
}
