/**
 * A controller context for reconciler tests: a real in-memory store, the real operation tracker
 * and status writer, a fake clock, a hub whose agents the test plays (reports set by hand, sent
 * operations recorded) and a runtime that records what is enqueued (or asked to run now) instead of running it.
 */
import { createLogger } from '../../src/common/log.ts';
import type { AgentHub } from '../../src/controller/agents/hub.ts';
import type { Ctx } from '../../src/controller/context.ts';
import { HostLiveness } from '../../src/controller/hosts/liveness.ts';
import { createMetrics } from '../../src/controller/metrics.ts';
import { DEFAULT_ALLOCATION_POLICY } from '../../src/controller/placement/scheduler.ts';
import { FakeClock } from '../../src/controller/runtime/clock.ts';
import type { Manager } from '../../src/controller/runtime/manager.ts';
import { OpTracker, type OpResult } from '../../src/controller/runtime/op-tracker.ts';
import type { Kind } from '../../src/controller/runtime/reconciler.ts';
import { StatusWriter } from '../../src/controller/runtime/status-writer.ts';
import type { AgentOp, StorageReport, VmReport, VolumeReport } from '../../src/model/agent-protocol.ts';
import { openStore, type Store } from '../../src/store/index.ts';

/** The agents as reconcilers see them, played by the test. */
export class FakeHub {
  readonly connected = new Set<string>();
  readonly vms = new Map<string, Map<string, VmReport>>();
  readonly volumes = new Map<string, Map<string, VolumeReport>>();
  readonly sent: { hostId: string; op: AgentOp }[] = [];
  private readonly inflight = new Map<string, string>();

  isConnected(hostId: string): boolean {
    return this.connected.has(hostId);
  }
  vm(hostId: string, id: string): VmReport | undefined {
    return this.vms.get(hostId)?.get(id);
  }
  volume(hostId: string, id: string): VolumeReport | undefined {
    return this.volumes.get(hostId)?.get(id);
  }
  storage(_hostId: string): StorageReport | undefined {
    return undefined;
  }
  vmsWithDisk(hostId: string, volumeId: string): string[] {
    return [...(this.vms.get(hostId)?.values() ?? [])].filter((v) => v.disks?.includes(volumeId)).map((v) => v.instanceId);
  }
  releasedBy(): undefined {
    return undefined;
  }
  isInFlight(hostId: string, opId: string): boolean {
    return this.inflight.get(opId) === hostId;
  }
  sendOp(hostId: string, op: AgentOp): Promise<OpResult> {
    if (!this.connected.has(hostId)) return Promise.reject(new Error(`the agent of host ${hostId} is not connected`));
    this.sent.push({ hostId, op });
    this.inflight.set(op.opId, hostId);
    return new Promise(() => undefined); // answers come through the tracker (the test calls ctx.ops.onResult)
  }
  /** The host answers: no longer in flight. */
  answered(opId: string): void {
    this.inflight.delete(opId);
  }
  /** The stream dropped: nothing is in flight on it any more. */
  drop(hostId: string): void {
    this.connected.delete(hostId);
    for (const [op, h] of this.inflight) if (h === hostId) this.inflight.delete(op);
  }
}

export interface TestCtx {
  ctx: Ctx;
  store: Store;
  clock: FakeClock;
  hub: FakeHub;
  /** What was enqueued; `now` marks a reconcileNow (a service's immediate run), which the fake only records. */
  enqueued: { kind: Kind; key: string; afterMs?: number; now?: boolean }[];
  close(): Promise<void>;
}

export async function testCtx(o: { store?: Store; clock?: FakeClock } = {}): Promise<TestCtx> {
  const store = o.store ?? (await openStore({ kind: 'sqlite', path: ':memory:' }));
  const clock = o.clock ?? new FakeClock(Date.parse('2026-12-01T00:00:00Z'));
  const hub = new FakeHub();
  const log = createLogger('test', { level: 'silent' });
  const enqueued: TestCtx['enqueued'] = [];
  const runtime = {
    enqueue: (kind: Kind, key: string) => enqueued.push({ kind, key }),
    enqueueAfter: (kind: Kind, key: string, afterMs: number) => enqueued.push({ kind, key, afterMs }),
    reconcileNow: async (kind: Kind, key: string) => {
      enqueued.push({ kind, key, now: true });
    },
    enqueueRefs: (refs: Iterable<{ kind: Kind; key: string }>) => {
      for (const r of refs) enqueued.push(r);
    },
  } as unknown as Manager;
  const ops = new OpTracker({ db: store.db, transport: () => hub, clock, log, wake: (r) => enqueued.push(r) });
  let chain: Promise<unknown> = Promise.resolve();
  const ctx: Ctx = {
    store,
    hub: () => hub as unknown as AgentHub,
    ops,
    status: new StatusWriter(),
    runtime,
    liveness: new HostLiveness({ clock, lostAfterMs: 10_000, isConnected: (h) => hub.isConnected(h), wake: (h) => enqueued.push({ kind: 'host', key: h }) }),
    clock,
    log,
    metrics: createMetrics(store, { connectedAgents: () => 0, consoles: () => ({ streams: 0, bufferedBytes: 0, awaitingCredit: 0 }) }, () => 0),
    allocation: DEFAULT_ALLOCATION_POLICY,
    lostAfterMs: 10_000,
    backup: { defaultRepository: '/backups', passphrase: 'test-passphrase' },
    serialize: (fn) => {
      const run = chain.then(fn);
      chain = run.catch(() => undefined);
      return run;
    },
  };
  return {
    ctx,
    store,
    clock,
    hub,
    enqueued,
    async close() {
      ctx.liveness.close();
      await ops.close();
      await store.close();
    },
  };
}
