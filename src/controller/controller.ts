/**
 * The controller's reconcilers: hosts (registration, liveness, phase), instances (placement and
 * the operations that make each VM match its spec), volumes and snapshots (made real by the
 * hosts' storage daemons). Level-triggered: every event only enqueues the affected resources, and
 * each run recomputes from the store and the agents' reports.
 */
import type { Logger } from 'pino';
import { admit, type Portion } from '../memory/index.ts';
import { setCondition } from '../model/conditions.ts';
import type { AgentMessage, AgentOp, StorageReport, VmDefinition } from '../model/agent-protocol.ts';
import type { Resource } from '../model/common.ts';
import type { Host, HostStorage } from '../model/host.ts';
import type { Instance, LastOp } from '../model/instance.ts';
import { DEFAULT_POOL, DEFAULT_POOL_SPEC } from '../model/memory.ts';
import type { Volume } from '../model/volume.ts';
import type { ResourceRepository, Store } from '../store/index.ts';
import type { AgentHub, OpResult } from './agents/hub.ts';
import { hostPhase, type LivePhase } from './hosts/phase.ts';
import { planInstance, type DesiredDisk } from './instances/plan.ts';
import { entitlementsIn, poolMembers, poolModel, tenantMayUse, vmsIn } from './memory/pools.ts';
import { BALLOON_OP_PREFIX, MemoryReconciler } from './memory/reconciler.ts';
import { BackupReconciler, type BackupConfig } from './backups/reconciler.ts';
import { BackupPolicies } from './backup-policies/reconciler.ts';
import { backupSettled, type BackupProgress } from '../model/backup.ts';
import type { ControllerMetrics } from './metrics.ts';
import { placementVerdict, type AllocationPolicy, type MemoryFit, type SchedulableHost, type Verdict } from './placement/scheduler.ts';
import { detachReleased, planSnapshot, planVolume } from './volumes/plan.ts';
import { WorkQueue } from './work-queue.ts';
import { NetworkReconciler } from './networks/reconciler.ts';
import { hostCapacity, newVolumeNeed } from './placement/capacity.ts';
import { DISK_PRESSURE, diskPressure, storageWorthRecording } from './placement/disk-pressure.ts';
import { chooseVolumeHost, fitsDisk, type DiskFit, type DiskNeed } from './placement/disk-space.ts';
import { mayPlace } from './host-clusters/plan.ts';
import { HostClusterReconciler } from './host-clusters/reconciler.ts';

/** An instance's volume as placement sees it: its size, and its host once it has one. */
export interface PlacedVolume {
  sizeBytes: number;
  hostId?: string;
  failed?: boolean;
}

export interface ControllerOptions {
  lostAfterMs: number;
  /** Resync period: every resource is reconciled at least this often. */
  resyncMs: number;
  allocation: AllocationPolicy;
  clock: () => Date;
  log: Logger;
  metrics: ControllerMetrics;
  backup: BackupConfig;
}

/** Operations the API sends and awaits itself (system-state restores): no resource folds their answers. */
export const DIRECT_OP_PREFIX = 'direct/';

/** lastHeartbeatAt is persisted at most this often; liveness itself is judged from memory. */
const HEARTBEAT_PERSIST_MS = 15_000;

type Hello = Extract<AgentMessage, { type: 'hello' }>;
type Kind = 'host' | 'instance' | 'volume' | 'snapshot' | 'memory' | 'backup' | 'backupPolicy' | 'network' | 'hostCluster';
type WithLastOp = { lastOp?: LastOp; phase: string };

export class Controller {
  private readonly queues: Record<Kind, WorkQueue>;
  private readonly heartbeats = new Map<string, Date>();
  private readonly opResults = new Map<string, OpResult>();
  private readonly lastPersisted = new Map<string, number>();
  /** Hosts whose storage report is being written (reports come every heartbeat; one write at a time). */
  private readonly recordingStorage = new Set<string>();
  /** When each host's latest storage report (held by the hub) arrived. */
  private readonly storageAt = new Map<string, Date>();
  /** What was last written to each host's status.storage by this process (saves a read per report). */
  private readonly recordedStorage = new Map<string, HostStorage | undefined>();
  private hub!: AgentHub;
  private timers: NodeJS.Timeout[] = [];
  /** Placement is serialised so two resources never both take the last free capacity. */
  private scheduling: Promise<unknown> = Promise.resolve();
  private readonly memory: MemoryReconciler;
  readonly backups: BackupReconciler;
  private readonly policies: BackupPolicies;
  private readonly networks: NetworkReconciler;
  private readonly clusters: HostClusterReconciler;

  constructor(
    private readonly store: Store,
    private readonly opts: ControllerOptions,
  ) {
    const q = (kind: Kind, run: (id: string) => Promise<void>) =>
      new WorkQueue(run, (key, err) => {
        opts.metrics.reconcileErrors.inc({ kind });
        opts.log.error({ err, key }, `${kind} reconcile failed`);
        this.queues[kind].addAfter(key, 1000);
      });
    this.queues = {
      host: q('host', (id) => this.reconcileHost(id)),
      instance: q('instance', (id) => this.reconcileInstance(id)),
      volume: q('volume', (id) => this.reconcileVolume(id)),
      snapshot: q('snapshot', (id) => this.reconcileSnapshot(id)),
      memory: q('memory', (id) => this.memory.reconcile(id)),
      backup: q('backup', (id) => this.backups.reconcile(id)),
      backupPolicy: q('backupPolicy', (id) => this.policies.reconcile(id)),
      network: q('network', (id) => this.networks.reconcile(id)),
      hostCluster: q('hostCluster', (id) => this.clusters.reconcile(id)),
    };
    this.clusters = new HostClusterReconciler({ store, clock: opts.clock, log: opts.log });
    this.networks = new NetworkReconciler({ store, hub: () => this.hub, clock: opts.clock, log: opts.log, enqueue: (id) => this.queues.network.add(id) });
    this.memory = new MemoryReconciler({ store, hub: () => this.hub, allocation: opts.allocation, clock: opts.clock, log: opts.log });
    this.backups = new BackupReconciler({
      store,
      hub: () => this.hub,
      config: opts.backup,
      clock: opts.clock,
      log: opts.log,
      enqueue: (id) => this.queues.backup.add(id),
      settled: (policyId) => this.queues.backupPolicy.add(policyId),
    });
    this.policies = new BackupPolicies({
      store,
      clock: opts.clock,
      log: opts.log,
      enqueueBackup: (id) => this.queues.backup.add(id),
      wakeAfter: (id, ms) => this.queues.backupPolicy.addAfter(id, ms),
    });
  }

  attachHub(hub: AgentHub): void {
    this.hub = hub;
  }

  async start(): Promise<void> {
    await this.ensureDefaultPool();
    await this.resync();
    this.timers.push(setInterval(() => void this.resync().catch((e) => this.opts.log.error({ err: e }, 'resync failed')), this.opts.resyncMs));
    this.timers.push(setInterval(() => void this.checkLiveness().catch((e) => this.opts.log.error({ err: e }, 'liveness check failed')), 1000));
    for (const t of this.timers) t.unref();
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
    for (const q of Object.values(this.queues)) q.close();
  }

  /** Reconciles a resource now and resolves once that run is done (API actions answer with the result). */
  reconcileNow(kind: Kind, id: string): Promise<void> {
    return this.queues[kind].addAndWait(id);
  }

  enqueue(kind: Kind, id: string): void {
    this.queues[kind].add(id);
  }

  private async resync(): Promise<void> {
    for (const h of await this.store.hosts.list()) this.queues.host.add(h.id);
    for (const i of await this.store.instances.list()) this.queues.instance.add(i.id);
    for (const v of await this.store.volumes.list()) this.queues.volume.add(v.id);
    for (const s of await this.store.snapshots.list()) this.queues.snapshot.add(s.id);
    for (const b of await this.store.backups.list()) if (!backupSettled(b.status.phase)) this.queues.backup.add(b.id);
    for (const p of await this.store.backupPolicies.list()) this.queues.backupPolicy.add(p.id);
    for (const n of await this.store.networks.list()) this.queues.network.add(n.id);
    for (const c of await this.store.hostClusters.list()) this.queues.hostCluster.add(c.id);
    this.enqueuePools();
  }

  /** Every host belongs to a pool: the default one takes those no other pool names. */
  private async ensureDefaultPool(): Promise<void> {
    if ((await this.store.memoryPools.count()) > 0) return;
    await this.store.memoryPools
      .create({ name: DEFAULT_POOL, spec: DEFAULT_POOL_SPEC, status: { phase: 'active', conditions: [], hosts: [], domains: [], tenants: [] } })
      .catch(() => undefined); // another replica made it
  }

  /** A tenant's entitlements or a pool changed: re-plan the pools, and retry what waits for room. */
  async memoryConfigChanged(): Promise<void> {
    this.enqueuePools();
    for (const i of await this.store.instances.list()) if (!i.status.hostId) this.queues.instance.add(i.id);
  }

  /** Memory pools are few; any change that may move memory re-plans them all. */
  enqueuePools(): void {
    void this.store.memoryPools.list().then(
      (pools) => pools.forEach((p) => this.queues.memory.add(p.id)),
      (e: Error) => this.opts.log.warn({ err: e.message }, 'could not list memory pools'),
    );
  }

  private now(): Date {
    return this.opts.clock();
  }

  /** Everything that lives on a host (and anything not placed yet) deserves a look when it changes. */
  private async enqueueHostResources(hostId: string): Promise<void> {
    for (const i of await this.store.instances.list()) if (!i.status.hostId || i.status.hostId === hostId) this.queues.instance.add(i.id);
    for (const v of await this.store.volumes.list()) if (!v.status.hostId || v.status.hostId === hostId) this.queues.volume.add(v.id);
    for (const s of await this.store.snapshots.list()) if (!s.status.hostId || s.status.hostId === hostId) this.queues.snapshot.add(s.id);
    for (const b of await this.store.backups.list()) if (!backupSettled(b.status.phase)) this.queues.backup.add(b.id);
  }

  // ---- agent events ----

  /** A host with a valid certificate opened its stream (the hub checked the certificate is this host's). */
  async onHello(msg: Hello): Promise<void> {
    const now = this.now();
    const existing = await this.store.hosts.get(msg.hostId);
    if (existing?.status.trust?.state !== 'trusted') throw new Error(`host ${msg.hostId} is not trusted`);
    const agent = { version: msg.agentVersion, connected: true, connectedAt: now.toISOString(), lastHeartbeatAt: now.toISOString() };
    this.heartbeats.set(msg.hostId, now);
    const storage = msg.storage ? storageStatus(msg.storage, now) : undefined;
    await this.store.hosts.update(msg.hostId, (cur) => ({
      // Connected with its certificate: it has collected it, no need to keep a copy. An agent that
      // does not report its disk space (an older one) leaves no stale figures behind.
      status: {
        ...cur.status,
        inventory: msg.inventory,
        agent,
        trust: cur.status.trust ? { ...cur.status.trust, certificate: undefined } : undefined,
        storage,
      },
    }));
    this.recordedStorage.set(msg.hostId, storage);
    this.queues.host.add(msg.hostId);
    await this.enqueueHostResources(msg.hostId);
    await this.resendNetworks(msg.hostId);
    await this.deliverPrincipal(msg.hostId, { onlyMember: true });
  }

  /**
   * Sends a host its instance principal certificate (or, out of every cluster, none): its
   * supplicant authenticates its dedicated switch port with it. Idempotent on the host.
   */
  async deliverPrincipal(hostId: string, o: { onlyMember?: boolean } = {}): Promise<void> {
    const p = (await this.store.hostClusters.list()).flatMap((c) => c.status.principals).find((x) => x.hostId === hostId);
    if (!p && o.onlyMember) return;
    if (!this.hub.isConnected(hostId)) return; // it gets it when it connects
    const op: AgentOp = { opId: `${DIRECT_OP_PREFIX}principal/${hostId}/${Date.now().toString(36)}`, kind: 'host.principal', certificate: p?.certificate };
    this.hub.sendOp(hostId, op).then(
      (r) => (r.ok ? undefined : this.opts.log.warn({ hostId, err: r.error }, 'host could not take its principal certificate')),
      (e: Error) => this.opts.log.warn({ hostId, err: e.message }, 'could not send the principal certificate'),
    );
  }

  /** A host (re)connected: its networks may be gone (a reboot) or its underlay changed, so every one is sent again. */
  private async resendNetworks(hostId: string): Promise<void> {
    for (const n of await this.store.networks.list()) {
      await this.store.networks.update(n.id, (cur) =>
        cur.status.hosts.some((e) => e.hostId === hostId && e.state === 'ready')
          ? { status: { ...cur.status, hosts: cur.status.hosts.map((e) => (e.hostId === hostId && e.state === 'ready' ? { ...e, state: 'sent' as const, opId: '' } : e)) } }
          : null,
      );
      this.queues.network.add(n.id);
    }
  }

  /** The networks of an instance's NICs: placed or gone, their hosts and flood lists change. */
  private enqueueNetworksOf(inst: Instance): void {
    for (const n of inst.spec.nics ?? []) this.queues.network.add(n.network);
  }

  onReport(hostId: string, changed: string[], first: boolean): void {
    const now = this.now();
    this.heartbeats.set(hostId, now);
    if (!first) void this.persistHeartbeat(hostId, now);
    if (this.hub.storage(hostId)) this.storageAt.set(hostId, now);
    if (!first) void this.recordStorage(hostId).catch((e: Error) => this.opts.log.warn({ err: e.message, hostId }, 'could not record the storage report'));
    for (const id of changed) this.routeById(id);
    if (changed.some((id) => id.startsWith('i-'))) this.enqueuePools();
  }

  /** Ids carry their kind in the prefix: i- instances, v- volumes, s- snapshots. */
  private routeById(id: string): void {
    if (id.startsWith('i-')) this.queues.instance.add(id);
    else if (id.startsWith('v-')) this.queues.volume.add(id);
    else if (id.startsWith('s-')) this.queues.snapshot.add(id);
  }

  private async persistHeartbeat(hostId: string, now: Date): Promise<void> {
    const last = this.lastPersisted.get(hostId) ?? 0;
    if (now.getTime() - last < HEARTBEAT_PERSIST_MS) return;
    this.lastPersisted.set(hostId, now.getTime());
    await this.store.hosts
      .update(hostId, (cur) => ({ status: { ...cur.status, agent: { ...cur.status.agent, lastHeartbeatAt: now.toISOString() } } }))
      .catch((e) => this.opts.log.warn({ err: e, hostId }, 'could not persist heartbeat'));
  }

  /**
   * Writes the host's latest storage report into its status when it is worth it (disk-pressure.ts:
   * it moved by 1% of the disk, the volumes changed, the pressure condition would change, or 15 s
   * passed); then the host's conditions are recomputed and whatever waits for room is looked at again.
   */
  private async recordStorage(hostId: string): Promise<void> {
    const report = this.hub.storage(hostId);
    if (!report || this.recordingStorage.has(hostId)) return;
    this.recordingStorage.add(hostId);
    try {
      const prev = this.recordedStorage.has(hostId) ? this.recordedStorage.get(hostId) : (await this.store.hosts.get(hostId))?.status.storage;
      const now = this.now();
      if (!storageWorthRecording(prev, report, now, this.opts.allocation)) return;
      const storage = storageStatus(report, now);
      await this.store.hosts.update(hostId, (cur) => ({ status: { ...cur.status, storage } }));
      this.recordedStorage.set(hostId, storage);
      this.queues.host.add(hostId);
      await this.enqueueWaitingForRoom();
    } finally {
      this.recordingStorage.delete(hostId);
    }
  }

  /** The host's disk space as placement sees it: its agent's latest report if connected, else the recorded one. */
  currentStorage(h: Host): HostStorage | undefined {
    const live = this.hub.storage(h.id);
    const at = this.storageAt.get(h.id);
    return live && at ? storageStatus(live, at) : h.status.storage;
  }

  /** Instances and volumes not placed yet: room may have been made for them. */
  private async enqueueWaitingForRoom(): Promise<void> {
    for (const i of await this.store.instances.list()) if (!i.status.hostId && i.status.phase !== 'deleting') this.queues.instance.add(i.id);
    for (const v of await this.store.volumes.list()) if (!v.status.hostId && v.status.phase !== 'deleting') this.queues.volume.add(v.id);
  }

  onOpResult(hostId: string, opId: string, result: OpResult): void {
    this.opts.metrics.agentOps.inc({ result: result.ok ? 'ok' : 'error' });
    if (opId.startsWith(BALLOON_OP_PREFIX)) return this.memory.onBalloonResult(hostId, opId, result);
    if (opId.startsWith(DIRECT_OP_PREFIX)) return;
    if (opId.startsWith('b-')) return this.backups.onOpResult(opId, result);
    if (opId.startsWith('n-')) return this.networks.onOpResult(opId, result);
    this.opResults.set(opId, result);
    const id = opId.split('/')[0];
    if (id) this.routeById(id);
  }

  /** Progress of a backup, or of a volume being rebuilt from one. */
  onOpProgress(opId: string, progress: BackupProgress): void {
    const id = opId.split('/')[0]!;
    const write = id.startsWith('b-')
      ? this.backups.onProgress(opId, progress)
      : this.store.volumes.update(id, (cur) => (cur.status.lastOp?.opId === opId && cur.status.phase === 'creating' ? { status: { ...cur.status, progress } } : null));
    void write.catch((e: Error) => this.opts.log.warn({ err: e.message, opId }, 'could not record progress'));
  }

  async onDisconnect(hostId: string): Promise<void> {
    this.queues.host.add(hostId);
    await this.enqueueHostResources(hostId);
  }

  // ---- hosts ----

  private lastHeartbeat(h: Host): Date | undefined {
    return this.heartbeats.get(h.id) ?? (h.status.agent.lastHeartbeatAt ? new Date(h.status.agent.lastHeartbeatAt) : undefined);
  }

  private phaseOf(h: Host): LivePhase {
    return hostPhase(
      { cordoned: h.spec.cordoned, connected: this.hub.isConnected(h.id), lastHeartbeatAt: this.lastHeartbeat(h)?.toISOString(), trust: h.status.trust?.state },
      this.now(),
      this.opts.lostAfterMs,
    );
  }

  private async checkLiveness(): Promise<void> {
    for (const h of await this.store.hosts.list()) {
      const connected = this.hub.isConnected(h.id);
      if (this.phaseOf(h) !== h.status.phase || connected !== h.status.agent.connected) this.queues.host.add(h.id);
    }
  }

  private async reconcileHost(id: string): Promise<void> {
    const h = await this.store.hosts.get(id);
    if (!h) return;
    const phase = this.phaseOf(h);
    const connected = this.hub.isConnected(id);
    const heartbeat = setCondition(
      h.status.conditions,
      phase === 'lost'
        ? { type: 'Heartbeat', status: 'False', reason: 'HeartbeatsStopped', message: `no heartbeat since ${this.lastHeartbeat(h)?.toISOString() ?? 'ever'}` }
        : phase === 'pending-approval' || phase === 'trusted' || phase === 'rejected' || phase === 'revoked'
        ? { type: 'Heartbeat', status: 'Unknown', reason: 'NotConnected', message: '' }
        : { type: 'Heartbeat', status: 'True', reason: 'Heartbeating', message: '' },
      this.now(),
    );
    const conditions = h.status.storage
      ? setCondition(heartbeat, diskPressure(h.status.storage, this.opts.allocation), this.now())
      : h.status.inventory
      ? setCondition(heartbeat, { type: DISK_PRESSURE, status: 'Unknown', reason: 'NotReported', message: 'the agent does not report its disk space (an agent older than the space accounting)' }, this.now())
      : heartbeat;
    if (phase === h.status.phase && connected === h.status.agent.connected && conditions === h.status.conditions) return;
    const wasPhase = h.status.phase;
    await this.store.hosts.update(id, (cur) => ({
      status: { ...cur.status, phase, conditions, agent: { ...cur.status.agent, connected, lastHeartbeatAt: this.lastHeartbeat(cur)?.toISOString() } },
    }));
    if (wasPhase !== phase) {
      this.opts.log.info({ hostId: id, from: wasPhase, to: phase }, 'host phase changed');
      // Any host change can unblock what waits for room (uncordon, back from lost).
      await this.enqueueHostResources(id);
    }
  }

  /** Hosts with their allocatable and allocated capacity, as the scheduler and the API see them. */
  capacity(o: { excludeVolume?: string } = {}): Promise<(SchedulableHost & { host: Host })[]> {
    return hostCapacity(this.store, this.opts.allocation, { live: this.hub, excludeVolume: o.excludeVolume });
  }

  /** For the API: whether a host can take `need` now (a host without a storage report can). */
  async diskFit(hostId: string, need: DiskNeed, o: { excludeVolume?: string } = {}): Promise<DiskFit> {
    const h = (await this.capacity(o)).find((x) => x.id === hostId);
    return fitsDisk(h?.name ?? hostId, h?.disk, need, this.opts.allocation.diskOvercommit);
  }

  /** For the API: whether some ready host a volume of the tenant may go to can hold `need` now, and whether any ever could. */
  async diskFitAnywhere(tenant: string, need: DiskNeed): Promise<{ ok: true } | { ok: false; never: boolean; message: string }> {
    const hosts = (await this.capacity()).filter((h) => mayPlace(tenant, h.dedicatedTo));
    const ready = hosts.filter((h) => h.phase === 'ready' && !h.cordoned);
    // With no host ready now it may wait for one; but not when every host it could ever go to reports a disk too small for it.
    const candidates = ready.length ? ready : hosts.every((h) => h.disk) ? hosts : [];
    if (!candidates.length) return { ok: true };
    const c = chooseVolumeHost(
      candidates.map((h) => ({ id: h.id, name: h.name, room: h.disk, freeMemoryMiB: h.allocatable.memoryMiB - h.allocated.memoryMiB })),
      need,
      this.opts.allocation.diskOvercommit,
    );
    if (!ready.length) return c.ok || !c.never ? { ok: true } : c;
    return c.ok ? { ok: true } : c;
  }

  get allocation(): AllocationPolicy {
    return this.opts.allocation;
  }

  /** Runs a change of memory configuration so that no placement interleaves with its checks. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.serialize(fn);
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.scheduling.then(fn);
    this.scheduling = run.catch(() => undefined);
    return run;
  }

  // ---- shared reconcile plumbing ----

  /**
   * Writes a status computed from `res`, unless the resource changed meanwhile (a user action or a
   * delete): then nothing is written and it is reconciled again.
   */
  private async writeStatus<S, St extends WithLastOp>(
    kind: Kind,
    repo: ResourceRepository<S, St>,
    res: Resource<S, St>,
    edit: (st: St) => void | St,
  ): Promise<boolean> {
    let wrote = false;
    await repo.update(res.id, (cur) => {
      if (cur.generation !== res.generation || (cur.status.phase === 'deleting') !== (res.status.phase === 'deleting')) return null;
      const st = structuredClone(cur.status);
      const next = edit(st) ?? st;
      if (JSON.stringify(next) === JSON.stringify(cur.status)) return null;
      wrote = true;
      return { status: next };
    });
    if (!wrote) {
      const cur = await repo.get(res.id);
      if (cur && cur.generation !== res.generation) this.queues[kind].add(res.id);
    }
    return wrote;
  }

  /** Folds an operation answer that arrived into the persisted lastOp; returns the fresh resource. */
  private async foldAnswer<S, St extends WithLastOp>(kind: Kind, repo: ResourceRepository<S, St>, res: Resource<S, St>): Promise<Resource<S, St> | undefined> {
    const last = res.status.lastOp;
    const answer = last?.state === 'sent' ? this.opResults.get(last.opId) : undefined;
    if (!last || !answer) return res;
    await this.writeStatus(kind, repo, res, (st) => {
      st.lastOp = { ...last, state: answer.ok ? 'succeeded' : 'failed', error: answer.error, at: this.now().toISOString() };
    });
    this.opResults.delete(last.opId);
    return repo.get(res.id);
  }

  private inFlight(hostId: string | undefined, last: LastOp | undefined): boolean {
    return !!hostId && !!last && this.hub.isInFlight(hostId, last.opId);
  }

  private hostView(h: Host | undefined, hostId: string | undefined) {
    return { exists: !!h, connected: !!hostId && this.hub.isConnected(hostId), name: h?.name };
  }

  private send(kind: Kind, hostId: string, id: string, op: AgentOp): void {
    this.hub.sendOp(hostId, op).catch(() => this.queues[kind].add(id));
  }

  // ---- instances ----

  /** Volumes the instance's VM should have: its boot volume first, then those attached to it. */
  private async desiredVolumes(inst: Instance): Promise<Volume[]> {
    const all = await this.store.volumes.list();
    const boot = inst.spec.bootVolume ? all.filter((v) => v.id === inst.spec.bootVolume) : [];
    const attached = all.filter((v) => v.spec.attachedTo === inst.id && v.id !== inst.spec.bootVolume).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    return [...boot, ...attached];
  }

  /**
   * Where an instance would go now (scheduler.ts decides, purely) given its volumes: an instance
   * goes where its volumes already are, and those not placed yet (a boot disk made from an image)
   * follow it, so its host must hold them. The caller holds the scheduling lock.
   */
  private async decide(inst: Pick<Instance, 'id' | 'spec'>, volumes: PlacedVolume[]): Promise<{ verdict: Verdict; memory: Awaited<ReturnType<Controller['memoryFit']>> }> {
    const pinned = new Set(volumes.map((v) => v.hostId).filter((h): h is string => !!h));
    const diskBytes = volumes.filter((v) => !v.hostId && !v.failed).reduce((n, v) => n + newVolumeNeed(v.sizeBytes).bytes, 0);
    let hosts = await this.capacity();
    const memory = await this.memoryFit(inst, hosts.map((h) => h.host));
    if (pinned.size > 1) return { verdict: { kind: 'wait', message: `its volumes are on different hosts (${[...pinned].join(', ')})` }, memory };
    if (pinned.size === 1) hosts = hosts.filter((h) => pinned.has(h.id));
    let verdict = placementVerdict({ vcpus: inst.spec.vcpus, memoryMiB: inst.spec.memoryMiB, tenant: inst.spec.tenant, diskBytes }, hosts, memory.fits);
    if (verdict.kind !== 'place' && pinned.size === 1) verdict = { ...verdict, message: `${verdict.message} (its volumes pin it to host ${[...pinned][0]})` };
    return { verdict, memory };
  }

  /** Where an instance not created yet would go now: the API refuses one that has no room, unless asked to wait for it. */
  placementFor(draft: Pick<Instance, 'id' | 'spec'>, volumes: PlacedVolume[]): Promise<Verdict> {
    return this.serialize(async () => (await this.decide(draft, volumes)).verdict);
  }

  private async place(inst: Instance): Promise<void> {
    await this.serialize(async () => {
      const volumes = (await this.desiredVolumes(inst)).map((v) => ({ sizeBytes: v.spec.sizeBytes, hostId: v.status.hostId, failed: v.status.phase === 'failed' }));
      const { verdict, memory } = await this.decide(inst, volumes);
      const p = verdict.kind === 'place' ? { ok: true as const, ...verdict } : { ok: false as const, message: verdict.message };
      const now = this.now();
      await this.writeStatus('instance', this.store.instances, inst, (st) => {
        if (p.ok) {
          st.hostId = p.hostId;
          st.hostName = p.hostName;
          // Recorded with the placement, in the same write: memory is never allocated without a host, nor the reverse.
          st.memory = memory.admitted.get(p.hostId);
          st.phase = 'scheduled';
          st.message = undefined;
          st.conditions = setCondition(st.conditions, { type: 'Scheduled', status: 'True', reason: 'Placed', message: `placed on ${p.hostName}` }, now);
        } else {
          st.phase = 'pending';
          st.message = p.message;
          st.conditions = setCondition(st.conditions, { type: 'Scheduled', status: 'False', reason: verdict.kind === 'no-room' ? 'NoRoom' : 'Unschedulable', message: p.message }, now);
        }
      });
      if (p.ok) {
        this.opts.log.info({ instance: inst.name, host: p.hostName, memory: memory.admitted.get(p.hostId) }, 'instance scheduled');
        this.enqueuePools();
        this.enqueueNetworksOf(inst);
        // Volumes made for this instance follow it to its host.
        for (const v of await this.store.volumes.list()) if (v.spec.ownedBy === inst.id || (v.spec.forInstance === inst.id && !v.status.hostId)) this.queues.volume.add(v.id);
      }
    });
  }

  /** The memory side of placement: on each host, whether its pool admits the instance, and with which portions. */
  private async memoryFit(inst: Pick<Instance, 'id' | 'spec'>, hosts: Host[]): Promise<{ fits: MemoryFit; admitted: Map<string, { pool: string; portions: Portion[] }> }> {
    const [pools, tenants, instances] = await Promise.all([this.store.memoryPools.list(), this.store.tenants.list(), this.store.instances.list()]);
    const members = poolMembers(pools, hosts);
    const tenant = tenants.find((t) => t.name === inst.spec.tenant);
    const others = instances.filter((i) => i.id !== inst.id);
    const admitted = new Map<string, { pool: string; portions: Portion[] }>();
    const views = new Map(
      pools.map((p) => {
        const model = poolModel(p, members.get(p.id)!, this.opts.allocation);
        return [p.id, { model, ents: entitlementsIn(p.name, tenants), vms: vmsIn(model, others) }];
      }),
    );
    const fits: MemoryFit = (h) => {
      const pool = pools.find((p) => members.get(p.id)!.some((m) => m.id === h.id));
      if (!pool) return { ok: false, why: 'in no memory pool' };
      if (!tenantMayUse(tenant, pool.name)) return { ok: false, why: `in memory pool ${pool.name}, where tenant ${inst.spec.tenant} has no entitlement` };
      const v = views.get(pool.id)!;
      const a = admit(v.model, v.ents, v.vms, { id: inst.id, tenant: inst.spec.tenant, sizeMiB: inst.spec.memoryMiB, hostId: h.id });
      if (!a.ok) return { ok: false, why: a.message };
      admitted.set(h.id, { pool: pool.name, portions: a.portions });
      return { ok: true };
    };
    return { fits, admitted };
  }

  private async reconcileInstance(id: string): Promise<void> {
    let inst = await this.store.instances.get(id);
    if (!inst) return;
    inst = await this.foldAnswer('instance', this.store.instances, inst);
    if (!inst) return;

    if (inst.status.phase !== 'deleting' && !inst.status.hostId) {
      await this.place(inst);
      inst = await this.store.instances.get(id);
      if (!inst || !inst.status.hostId) return;
    }

    const hostId = inst.status.hostId;
    const host = hostId ? await this.store.hosts.get(hostId) : undefined;
    const volumes = await this.desiredVolumes(inst);
    const waiting = volumes.find((v) => v.status.hostId !== hostId || !hostId || !this.hub.volume(hostId, v.id));
    const desiredDisks: DesiredDisk[] = volumes.map((v) => ({ volumeId: v.id, boot: v.id === inst!.spec.bootVolume, tag: `g${v.generation}` }));
    const plan = planInstance(inst, {
      hostExists: !!host,
      hostName: host?.name,
      hostConnected: !!hostId && this.hub.isConnected(hostId),
      vm: hostId ? this.hub.vm(hostId, id) : undefined,
      lastOpInFlight: this.inFlight(hostId, inst.status.lastOp),
      now: this.now(),
      desiredDisks,
      disksWaiting: waiting ? `waiting for volume ${waiting.name} to be ready on the instance's host` : undefined,
    });

    if (plan.remove) {
      // The VM is gone: release the volumes it used, and delete the ones made for it.
      for (const v of await this.store.volumes.list()) {
        if (v.spec.ownedBy === id) await this.store.volumes.update(v.id, (cur) => ({ status: { ...cur.status, phase: 'deleting' } }));
        else if (v.spec.attachedTo === id) await this.store.volumes.update(v.id, (cur) => ({ spec: { ...cur.spec, attachedTo: undefined } }));
        else continue;
        this.queues.volume.add(v.id);
      }
      // Its addresses are free again only now that its VM (and taps) are gone; released before the
      // record goes, so no claim ever outlives its instance.
      await this.store.claims.releaseInstance(id);
      await this.store.instances.delete(id);
      this.enqueueNetworksOf(inst);
      this.opts.log.info({ instance: inst.name }, 'instance deleted');
      this.enqueuePools();
      return;
    }
    // The balloon controller writes the memory part meanwhile; keep its latest.
    const wrote = await this.writeStatus('instance', this.store.instances, inst, (st) => ({ ...plan.status, memory: st.memory }));
    const startOp = inst.status.lastOp;
    if (wrote && plan.status.phase === 'running' && inst.status.phase !== 'running' && startOp && (startOp.kind === 'vm.start' || startOp.kind === 'vm.restart')) {
      this.opts.metrics.instanceStart.observe((this.now().getTime() - Date.parse(startOp.at)) / 1000);
    }
    if (!plan.send || !hostId) return;
    if (!wrote && JSON.stringify(plan.status) !== JSON.stringify(inst.status)) return; // superseded
    const op = await this.buildInstanceOp(inst, plan.send.opId, plan.send.kind, desiredDisks, plan.send.volumeId, plan.send.force);
    if ('error' in op) {
      await this.writeStatus('instance', this.store.instances, inst, (st) => {
        st.phase = 'failed';
        st.message = op.error;
        st.lastOp = { opId: plan.send!.opId, kind: plan.send!.kind, state: 'failed', error: op.error, at: this.now().toISOString() };
      });
      return;
    }
    this.send('instance', hostId, id, op);
  }

  private async buildInstanceOp(inst: Instance, opId: string, kind: AgentOp['kind'], disks: DesiredDisk[], volumeId?: string, force?: boolean): Promise<AgentOp | { error: string }> {
    switch (kind) {
      case 'vm.stop':
        return { opId, kind, instanceId: inst.id, generation: inst.generation, force: force || undefined };
      case 'vm.delete':
        return { opId, kind, instanceId: inst.id };
      case 'vm.attach':
        return { opId, kind, instanceId: inst.id, volumeId: volumeId!, tag: disks.find((d) => d.volumeId === volumeId)?.tag };
      case 'vm.detach':
        return { opId, kind, instanceId: inst.id, volumeId: volumeId! };
      case 'vm.start':
      case 'vm.restart': {
        const vm: VmDefinition = {
          name: inst.name,
          vcpus: inst.spec.vcpus,
          memoryMiB: inst.spec.memoryMiB,
          memory: await this.memoryPortions(inst),
          kernelArgs: inst.spec.kernelArgs,
          disks: disks.map((d) => ({ volumeId: d.volumeId, boot: d.boot, tag: d.tag })),
          forwardPorts: inst.spec.forwardPorts,
          nics: await this.vmNics(inst),
          generation: inst.generation,
          restartSeq: inst.spec.restartSeq,
        };
        if (inst.spec.image) {
          const image = await this.store.images.find(inst.spec.image);
          if (!image || image.status.phase !== 'ready') return { error: `image '${inst.spec.image}' is not available` };
          vm.readyMarker = image.spec.readyMarker;
          if (image.spec.kind === 'kernel') {
            vm.image = { id: image.id, name: image.name, cmdline: image.spec.cmdline, readyMarker: image.spec.readyMarker, files: image.spec.files };
          }
        }
        vm.readyMarker = inst.spec.readyMarker ?? vm.readyMarker;
        if (!vm.image && !disks.some((d) => d.boot)) return { error: 'the instance has neither a kernel image nor a boot volume' };
        return kind === 'vm.restart' ? { opId, kind, instanceId: inst.id, vm, force: force || undefined } : { opId, kind, instanceId: inst.id, vm };
      }
      default:
        return { error: `operation ${kind} is not an instance operation` };
    }
  }

  private async vmNics(inst: Instance): Promise<VmDefinition['nics']> {
    if (!inst.spec.nics?.length) return undefined;
    const out: NonNullable<VmDefinition['nics']> = [];
    for (const n of inst.spec.nics) {
      const net = await this.store.networks.get(n.network);
      if (!net) throw new Error(`network ${n.networkName} of instance ${inst.name} is gone`);
      out.push({ networkId: n.network, segment: net.spec.segment, mac: n.mac, address: n.address, prefix: n.prefix, gateway: n.gateway, dhcpServer: net.spec.dhcp?.server });
    }
    return out;
  }

  /** The VM's memory per tier, with the host NUMA node each tier sits on where the host has one. */
  private async memoryPortions(inst: Instance): Promise<VmDefinition['memory']> {
    const m = inst.status.memory;
    if (!m) return undefined;
    const [pools, hosts] = await Promise.all([this.store.memoryPools.list(), this.store.hosts.list()]);
    const pool = pools.find((p) => p.name === m.pool);
    const tiers = pool ? poolModel(pool, poolMembers(pools, hosts).get(pool.id)!, this.opts.allocation).tiers : [];
    return m.portions.map((p) => ({ ...p, hostNode: tiers.find((t) => t.name === p.tier)?.hostNode }));
  }

  // ---- volumes ----

  /**
   * Chooses the host for a volume that has none: its owner's, its source's, the one it asks for, or
   * the one with the most disk room (disk-space.ts). A host it must go to that cannot hold it now
   * keeps it pending (room may be made there); one that never could fails it.
   */
  private async placeVolume(v: Volume): Promise<{ hostId?: string; wait?: string; error?: string; overcommitted?: string }> {
    const need = newVolumeNeed(v.spec.sizeBytes);
    const overcommit = this.opts.allocation.diskOvercommit;
    const hosts = await this.capacity({ excludeVolume: v.id });
    const pinnedTo = (hostId: string, why: string) => {
      const h = hosts.find((x) => x.id === hostId);
      const f = fitsDisk(h?.name ?? hostId, h?.disk, need, overcommit);
      if (f.ok) return { hostId, overcommitted: f.overcommitted };
      return f.never ? { error: `${f.message} (${why})` } : { wait: `${f.message}; waiting for room there (${why})` };
    };
    if (v.spec.host) {
      const h = await this.store.hosts.find(v.spec.host);
      return h ? pinnedTo(h.id, 'the volume asks for that host') : { error: `host '${v.spec.host}' does not exist` };
    }
    if (v.spec.forInstance && !v.spec.attachedTo && !v.spec.ownedBy) {
      const inst = await this.store.instances.get(v.spec.forInstance);
      if (!inst) return { error: `instance ${v.spec.forInstance}, which it was made for, is gone` };
      return inst.status.hostId ? pinnedTo(inst.status.hostId, `it is made for instance ${inst.name}, which is there`) : { wait: `waiting for instance ${inst.name} to be placed` };
    }
    if (v.spec.ownedBy || v.spec.attachedTo) {
      const owner = await this.store.instances.get((v.spec.ownedBy ?? v.spec.attachedTo)!);
      if (owner?.status.hostId) return pinnedTo(owner.status.hostId, `its instance ${owner.name} is there`);
      if (v.spec.ownedBy) return { wait: 'waiting for its instance to be placed' };
    }
    if (v.spec.source && 'snapshot' in v.spec.source) {
      const snap = await this.store.snapshots.get(v.spec.source.snapshot);
      const src = snap ? await this.store.volumes.get(snap.spec.volume) : undefined;
      if (!src) return { error: `source snapshot ${v.spec.source.snapshot} is gone` };
      return src.status.hostId ? pinnedTo(src.status.hostId, `a clone lives with its source volume ${src.name}`) : { wait: `waiting for volume ${src.name} to be placed` };
    }
    if (v.spec.source && 'backup' in v.spec.source) {
      // The host that made the backup sees its repository; another host would need the same path.
      const b = await this.store.backups.get(v.spec.source.backup);
      if (!b) return { error: `backup ${v.spec.source.backup} is gone` };
      const h = b.status.hostId ? hosts.find((x) => x.id === b.status.hostId) : undefined;
      if (h && h.phase === 'ready') {
        const f = fitsDisk(h.name, h.disk, need, overcommit);
        if (f.ok) return { hostId: h.id, overcommitted: f.overcommitted };
      }
    }
    const candidates = hosts.filter((h) => h.phase === 'ready' && !h.cordoned && mayPlace(v.spec.tenant, h.dedicatedTo));
    if (!candidates.length) return { wait: 'no ready host to create it on' };
    const c = chooseVolumeHost(
      candidates.map((h) => ({ id: h.id, name: h.name, room: h.disk, freeMemoryMiB: h.allocatable.memoryMiB - h.allocated.memoryMiB })),
      need,
      overcommit,
    );
    if (c.ok) return { hostId: c.hostId, overcommitted: c.overcommitted };
    return c.never ? { error: c.message } : { wait: c.message };
  }

  private async reconcileVolume(id: string): Promise<void> {
    let v = await this.store.volumes.get(id);
    if (!v) return;
    v = await this.foldAnswer('volume', this.store.volumes, v);
    if (!v) return;
    if (!v.status.hostId && v.status.phase !== 'deleting') {
      const placed = await this.serialize(() => this.placeVolume(v!));
      const hostName = placed.hostId ? (await this.store.hosts.get(placed.hostId))?.name : undefined;
      await this.writeStatus('volume', this.store.volumes, v, (st) => {
        if (placed.hostId) {
          st.hostId = placed.hostId;
          st.hostName = hostName;
          st.phase = 'creating';
          st.message = undefined;
          if (placed.overcommitted) st.conditions = setCondition(st.conditions, { type: 'Overcommitted', status: 'True', reason: 'DiskOvercommitted', message: placed.overcommitted }, this.now());
        } else {
          st.phase = placed.error ? 'failed' : 'pending';
          st.message = placed.error ?? placed.wait;
        }
      });
      v = await this.store.volumes.get(id);
      if (!v || !v.status.hostId) return;
      // Instances waiting to know where their volumes are can be placed now.
      for (const i of await this.store.instances.list()) if (i.spec.bootVolume === id || v.spec.attachedTo === i.id) this.queues.instance.add(i.id);
    }
    const hostId = v.status.hostId;
    const released = hostId ? this.hub.releasedBy(hostId, id) : undefined;
    if (released && detachReleased(v, released, this.now())) {
      v = await this.store.volumes.update(id, (cur) => detachReleased(cur, released, this.now()) ?? null);
      this.opts.log.warn({ volume: v.name, instance: released.instanceId }, 'volume detached: its guest unplugged it');
      this.queues.instance.add(released.instanceId);
    }
    const host = hostId ? await this.store.hosts.get(hostId) : undefined;
    const pluggedInto = hostId ? this.hub.vmsWithDisk(hostId, id)[0] : undefined;
    const plan = planVolume(v, {
      host: this.hostView(host, hostId),
      observed: hostId ? this.hub.volume(hostId, id) : undefined,
      pluggedInto,
      lastOpInFlight: this.inFlight(hostId, v.status.lastOp),
      now: this.now(),
    });
    if (plan.remove) {
      await this.store.volumes.delete(id);
      this.opts.log.info({ volume: v.name }, 'volume deleted');
      return;
    }
    const wrote = await this.writeStatus('volume', this.store.volumes, v, () => plan.status);
    if (plan.status.phase !== v.status.phase) {
      // Instances waiting for this volume to be ready (or to be gone) can move on.
      for (const i of await this.store.instances.list()) if (i.spec.bootVolume === id || v.spec.attachedTo === i.id) this.queues.instance.add(i.id);
    }
    if (!plan.send || !hostId) return;
    if (!wrote && JSON.stringify(plan.status) !== JSON.stringify(v.status)) return;
    const op = await this.buildVolumeOp(v, plan.send.opId, plan.send.kind);
    if ('error' in op) {
      await this.writeStatus('volume', this.store.volumes, v, (st) => {
        st.phase = 'failed';
        st.message = op.error;
        st.lastOp = { opId: plan.send!.opId, kind: plan.send!.kind, state: 'failed', error: op.error, at: this.now().toISOString() };
      });
      return;
    }
    this.send('volume', hostId, id, op);
  }

  private async buildVolumeOp(v: Volume, opId: string, kind: AgentOp['kind']): Promise<AgentOp | { error: string }> {
    switch (kind) {
      case 'volume.delete':
        return { opId, kind, volumeId: v.id };
      case 'volume.resize':
        return { opId, kind, volumeId: v.id, sizeBytes: v.spec.sizeBytes };
      case 'volume.ensure': {
        const op: Extract<AgentOp, { kind: 'volume.ensure' }> = { opId, kind, volumeId: v.id, sizeBytes: v.spec.sizeBytes, blockSize: v.spec.blockSize };
        const src = v.spec.source;
        if (src && 'snapshot' in src) {
          const snap = await this.store.snapshots.get(src.snapshot);
          if (!snap || snap.status.phase !== 'ready') return { error: `snapshot ${src.snapshot} is not ready` };
          op.source = { volumeId: snap.spec.volume, snapshotId: snap.id };
        } else if (src && 'image' in src) {
          const img = await this.store.images.get(src.image);
          if (!img || img.status.phase !== 'ready' || img.spec.kind !== 'disk') return { error: `disk image ${src.image} is not available` };
          op.source = { image: { id: img.id, name: img.name, file: img.spec.files.disk } };
        } else if (src && 'backup' in src) {
          const b = await this.store.backups.get(src.backup);
          if (!b?.status.result || b.status.phase !== 'completed') return { error: `backup ${src.backup} is not completed` };
          op.source = { backup: { repository: this.backups.repoOf(b), snapshotId: b.status.result.snapshotId } };
        }
        return op;
      }
      default:
        return { error: `operation ${kind} is not a volume operation` };
    }
  }

  // ---- snapshots ----

  private async reconcileSnapshot(id: string): Promise<void> {
    let s = await this.store.snapshots.get(id);
    if (!s) return;
    s = await this.foldAnswer('snapshot', this.store.snapshots, s);
    if (!s) return;
    const volume = await this.store.volumes.get(s.spec.volume);
    const hostId = volume?.status.hostId;
    const host = hostId ? await this.store.hosts.get(hostId) : undefined;
    const plan = planSnapshot(s, {
      volume,
      host: this.hostView(host, hostId),
      observedVolume: hostId ? this.hub.volume(hostId, s.spec.volume) : undefined,
      lastOpInFlight: this.inFlight(hostId, s.status.lastOp),
      now: this.now(),
    });
    if (plan.remove) {
      await this.store.snapshots.delete(id);
      this.opts.log.info({ snapshot: s.name }, 'snapshot deleted');
      return;
    }
    const wrote = await this.writeStatus('snapshot', this.store.snapshots, s, () => plan.status);
    if (plan.status.phase === 'ready' && s.status.phase !== 'ready') {
      // Clones waiting for this snapshot can go ahead.
      for (const v of await this.store.volumes.list()) if (v.spec.source && 'snapshot' in v.spec.source && v.spec.source.snapshot === id) this.queues.volume.add(v.id);
    }
    if (!plan.send || !hostId) return;
    if (!wrote && JSON.stringify(plan.status) !== JSON.stringify(s.status)) return;
    this.send('snapshot', hostId, id, { opId: plan.send.opId, kind: plan.send.kind, volumeId: s.spec.volume, snapshotId: s.id });
  }

  /** For the API: names of the clones of a snapshot, to refuse deletes that would orphan them. */
  async clonesOf(snapshotId: string): Promise<string[]> {
    return (await this.store.volumes.list()).filter((v) => v.spec.source && 'snapshot' in v.spec.source && v.spec.source.snapshot === snapshotId).map((v) => v.name);
  }
}

/** A storage report as the host's status keeps it: the four figures only (a report may carry more, unvalidated), and when. */
function storageStatus(r: StorageReport, now: Date): HostStorage {
  return { totalBytes: r.totalBytes, freeBytes: r.freeBytes, provisionedBytes: r.provisionedBytes, mayAllocateBytes: r.mayAllocateBytes, reportedAt: now.toISOString() };
}
