/**
 * What the controller knows of each host between store writes: its heartbeats (judged in memory,
 * persisted at most every 5 minutes), its latest storage report, and a deadline timer per host that
 * wakes the host's reconciler only when its heartbeats stop (no polling of the host table).
 *
 * A controller that has just started has heard from no agent yet: a host that was not lost is given
 * lostAfterMs from the start to reconnect before it is judged lost (a restart of the controller must
 * not make every host lost, and what lives on them with it). A host recorded lost stays lost.
 */
import type { HostStorage } from '../../model/host.ts';
import type { StorageReport } from '../../model/agent-protocol.ts';
import type { Host } from '../../model/host.ts';
import type { Clock, Timer } from '../runtime/clock.ts';
import { hostPhase, type LivePhase } from './phase.ts';

/**
 * lastHeartbeatAt is persisted at most this often, as a record of when a host was last heard should
 * the controller stop; liveness is judged from memory, the API shows the live value, and a host's
 * phase change records it at once. 500 hosts cost under 2 writes a second, not one per heartbeat.
 */
const HEARTBEAT_PERSIST_MS = 300_000;

export class HostLiveness {
  private readonly heartbeats = new Map<string, Date>();
  private readonly persisted = new Map<string, number>();
  private readonly deadlines = new Map<string, Timer>();
  /** When each host's latest storage report (held by the hub) arrived. */
  readonly storageAt = new Map<string, Date>();
  /** What was last written to each host's status.storage by this process (saves a read per report). */
  readonly recordedStorage = new Map<string, HostStorage | undefined>();
  private readonly startedAt: number;

  constructor(
    private readonly o: {
      clock: Clock;
      lostAfterMs: number;
      isConnected: (hostId: string) => boolean;
      /** The host's heartbeats stopped: its phase must be looked at. */
      wake: (hostId: string) => void;
    },
  ) {
    this.startedAt = o.clock.now().getTime();
  }

  heartbeat(hostId: string, at: Date): void {
    this.heartbeats.set(hostId, at);
    this.expect(hostId, at.getTime() + this.o.lostAfterMs);
  }

  /** Whether the heartbeat at `at` is worth persisting (at most every HEARTBEAT_PERSIST_MS per host). */
  shouldPersist(hostId: string, at: Date): boolean {
    if (at.getTime() - (this.persisted.get(hostId) ?? 0) < HEARTBEAT_PERSIST_MS) return false;
    this.persisted.set(hostId, at.getTime());
    return true;
  }

  /** A heartbeat written with other news (the hello): the next periodic write is HEARTBEAT_PERSIST_MS after it. */
  persistedAt(hostId: string, at: Date): void {
    this.persisted.set(hostId, at.getTime());
  }

  lastHeartbeat(h: Host): Date | undefined {
    return this.heartbeats.get(h.id) ?? (h.status.agent.lastHeartbeatAt ? new Date(h.status.agent.lastHeartbeatAt) : undefined);
  }

  /**
   * The heartbeat liveness is judged by: the last one heard, or, for a host not heard since this
   * controller started and not recorded lost, the start (its grace to reconnect).
   */
  judgedHeartbeat(h: Host): Date | undefined {
    const heard = this.heartbeats.get(h.id);
    if (heard) return heard;
    const recorded = h.status.agent.lastHeartbeatAt ? Date.parse(h.status.agent.lastHeartbeatAt) : undefined;
    if (recorded === undefined || h.status.phase === 'lost') return recorded === undefined ? undefined : new Date(recorded);
    return new Date(Math.max(recorded, this.startedAt));
  }

  phaseOf(h: Host): LivePhase {
    return hostPhase(
      { cordoned: h.spec.cordoned, connected: this.o.isConnected(h.id), lastHeartbeatAt: this.judgedHeartbeat(h)?.toISOString(), trust: h.status.trust?.state },
      this.o.clock.now(),
      this.o.lostAfterMs,
    );
  }

  /** The host's heartbeats are due by `byMs` (epoch ms): if none came by then, its reconciler is woken. */
  expect(hostId: string, byMs: number): void {
    if (this.deadlines.has(hostId)) return; // the running timer looks at the latest heartbeat when it fires
    const arm = (at: number) => {
      this.deadlines.set(
        hostId,
        this.o.clock.after(Math.max(0, at - this.o.clock.now().getTime()) + 1, () => {
          this.deadlines.delete(hostId);
          const last = this.heartbeats.get(hostId)?.getTime();
          const due = last === undefined ? at : last + this.o.lostAfterMs;
          if (due > this.o.clock.now().getTime()) arm(due);
          else this.o.wake(hostId);
        }),
      );
    };
    arm(byMs);
  }

  /** The host's disk space as placement sees it: the live report if connected, else the recorded one. */
  currentStorage(h: Host, live: StorageReport | undefined): HostStorage | undefined {
    const at = this.storageAt.get(h.id);
    return live && at ? storageStatus(live, at) : h.status.storage;
  }

  close(): void {
    for (const t of this.deadlines.values()) t.cancel();
    this.deadlines.clear();
  }
}

/** A storage report as the host's status keeps it: the four figures only (a report may carry more, unvalidated), and when. */
export function storageStatus(r: StorageReport, now: Date): HostStorage {
  return {
    totalBytes: r.totalBytes,
    freeBytes: r.freeBytes,
    provisionedBytes: r.provisionedBytes,
    mayAllocateBytes: r.mayAllocateBytes,
    reportedAt: now.toISOString(),
  };
}
