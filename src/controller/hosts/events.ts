/**
 * The agents' events as the controller takes them: a hello registers the host, a report is its
 * heartbeat and wakes what changed on it, an answer goes to the operation tracker (which wakes the
 * operation's owner), a disconnect wakes the host and what it carried.
 */
import type { AgentMessage, AgentOp } from '../../model/agent-protocol.ts';
import type { BackupProgress } from '../../model/backup.ts';
import type { Ctx } from '../context.ts';
import type { ObjectRef } from '../runtime/reconciler.ts';
import type { OpResult } from '../runtime/op-tracker.ts';
import { storageWorthRecording } from '../placement/disk-pressure.ts';
import { storageStatus } from './liveness.ts';
import { enqueueHostResources, enqueuePools, enqueueWaitingForRoom } from './wake.ts';

type Hello = Extract<AgentMessage, { type: 'hello' }>;

export class AgentEvents {
  /** Hosts whose storage report is being written (reports come every heartbeat; one write at a time). */
  private readonly recordingStorage = new Set<string>();

  constructor(private readonly ctx: Ctx) {}

  /** A host with a valid certificate opened its stream (the hub checked the certificate is this host's). */
  async onHello(msg: Hello): Promise<void> {
    const { ctx } = this;
    const now = ctx.clock.now();
    const existing = await ctx.store.hosts.get(msg.hostId);
    if (existing?.status.trust?.state !== 'trusted') throw new Error(`host ${msg.hostId} is not trusted`);
    const agent = { version: msg.agentVersion, connected: true, connectedAt: now.toISOString(), lastHeartbeatAt: now.toISOString() };
    ctx.liveness.heartbeat(msg.hostId, now);
    const storage = msg.storage ? storageStatus(msg.storage, now) : undefined;
    // Connected with its certificate: it has collected it, no need to keep a copy. An agent that
    // does not report its disk space (an older one) leaves no stale figures behind.
    await ctx.status.edit(ctx.store.hosts, msg.hostId, (st) => ({
      ...st,
      inventory: msg.inventory,
      agent,
      trust: st.trust ? { ...st.trust, certificate: undefined } : undefined,
      storage,
    }));
    ctx.liveness.persistedAt(msg.hostId, now);
    ctx.liveness.recordedStorage.set(msg.hostId, storage);
    ctx.runtime.enqueue('host', msg.hostId);
    await enqueueHostResources(ctx, msg.hostId);
    await this.resendNetworks(msg.hostId);
    await this.deliverPrincipal(msg.hostId, { onlyMember: true });
  }

  /**
   * Sends a host its instance principal certificate (or, out of every cluster, none): its
   * supplicant authenticates its dedicated switch port with it. Idempotent on the host.
   */
  async deliverPrincipal(hostId: string, o: { onlyMember?: boolean } = {}): Promise<void> {
    const { ctx } = this;
    const p = (await ctx.store.hostClusters.list()).flatMap((c) => c.status.principals).find((x) => x.hostId === hostId);
    if (!p && o.onlyMember) return;
    if (!ctx.hub().isConnected(hostId)) return; // it gets it when it connects
    const op: AgentOp = { opId: `principal/${hostId}/${ctx.clock.now().getTime().toString(36)}`, kind: 'host.principal', certificate: p?.certificate };
    ctx.ops.send({ kind: 'direct', key: hostId }, hostId, op).then(
      (r) => (r.ok ? undefined : ctx.log.warn({ hostId, err: r.error }, 'host could not take its principal certificate')),
      (e: Error) => ctx.log.warn({ hostId, err: e.message }, 'could not send the principal certificate'),
    );
  }

  /** A host (re)connected: its networks may be gone (a reboot) or its underlay changed, so every one is sent again. */
  private async resendNetworks(hostId: string): Promise<void> {
    const { ctx } = this;
    for (const n of await ctx.store.networks.list()) {
      await ctx.status.edit(ctx.store.networks, n.id, (st) =>
        st.hosts.some((e) => e.hostId === hostId && e.state === 'ready')
          ? { ...st, hosts: st.hosts.map((e) => (e.hostId === hostId && e.state === 'ready' ? { ...e, state: 'sent' as const, opId: '' } : e)) }
          : null,
      );
      ctx.runtime.enqueue('network', n.id);
    }
  }

  onReport(hostId: string, changed: ObjectRef[], first: boolean): void {
    const { ctx } = this;
    const now = ctx.clock.now();
    ctx.liveness.heartbeat(hostId, now);
    if (!first && ctx.liveness.shouldPersist(hostId, now)) {
      void ctx.status
        .edit(ctx.store.hosts, hostId, (st) => ({ ...st, agent: { ...st.agent, lastHeartbeatAt: now.toISOString() } }))
        .catch((e: Error) => ctx.log.warn({ err: e.message, hostId }, 'could not persist heartbeat'));
    }
    if (ctx.hub().storage(hostId)) ctx.liveness.storageAt.set(hostId, now);
    if (!first) void this.recordStorage(hostId).catch((e: Error) => ctx.log.warn({ err: e.message, hostId }, 'could not record the storage report'));
    // The first report comes once the hub holds the session: only now is the host connected as the reconciler sees it.
    if (first) ctx.runtime.enqueue('host', hostId);
    ctx.runtime.enqueueRefs(changed);
    if (changed.some((r) => r.kind === 'instance')) enqueuePools(ctx);
  }

  /**
   * Writes the host's latest storage report into its status when it is worth it (disk-pressure.ts:
   * it moved by 1% of the disk, the volumes changed, the pressure condition would change, or 15 s
   * passed); then the host's conditions are recomputed and whatever waits for room is looked at again.
   */
  private async recordStorage(hostId: string): Promise<void> {
    const { ctx } = this;
    const report = ctx.hub().storage(hostId);
    if (!report || this.recordingStorage.has(hostId)) return;
    this.recordingStorage.add(hostId);
    try {
      const recorded = ctx.liveness.recordedStorage;
      const prev = recorded.has(hostId) ? recorded.get(hostId) : (await ctx.store.hosts.get(hostId))?.status.storage;
      const now = ctx.clock.now();
      if (!storageWorthRecording(prev, report, now, ctx.allocation)) return;
      const storage = storageStatus(report, now);
      await ctx.status.edit(ctx.store.hosts, hostId, (st) => ({ ...st, storage }));
      recorded.set(hostId, storage);
      ctx.runtime.enqueue('host', hostId);
      await enqueueWaitingForRoom(ctx);
    } finally {
      this.recordingStorage.delete(hostId);
    }
  }

  onOpResult(hostId: string, opId: string, result: OpResult): void {
    this.ctx.metrics.agentOps.inc({ result: result.ok ? 'ok' : 'error' });
    this.ctx.ops.onResult(hostId, opId, result);
  }

  /** Progress of a backup, or of a volume being rebuilt from one. */
  onOpProgress(hostId: string, opId: string, progress: BackupProgress): void {
    const { ctx } = this;
    const t = ctx.ops.onProgress(hostId, opId);
    if (!t) return;
    const write =
      t.owner.kind === 'backup'
        ? ctx.status.edit(ctx.store.backups, t.owner.key, (st) => (st.phase === 'running' ? { ...st, progress } : null))
        : t.owner.kind === 'volume'
          ? ctx.status.edit(ctx.store.volumes, t.owner.key, (st) => (st.lastOp?.opId === opId && st.phase === 'creating' ? { ...st, progress } : null))
          : undefined;
    void write?.catch((e: Error) => ctx.log.warn({ err: e.message, opId }, 'could not record progress'));
  }

  async onDisconnect(hostId: string): Promise<void> {
    this.ctx.runtime.enqueue('host', hostId);
    this.ctx.ops.onDisconnect(hostId);
    await enqueueHostResources(this.ctx, hostId);
  }
}
