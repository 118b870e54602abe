/**
 * The controller: the runtime (one queue per kind), a reconciler per resource kind, the operation
 * tracker and the status writer, the agents' events, and the services the API calls. Level-
 * triggered: every event only enqueues the affected resources, and each run recomputes from the
 * store and the agents' reports.
 */
import type { Host, HostStorage } from '../model/host.ts';
import { backupSettled } from '../model/backup.ts';
import { DEFAULT_POOL, DEFAULT_POOL_SPEC } from '../model/memory.ts';
import type { ResourceRepository, Store } from '../store/index.ts';
import type { AgentHub, AgentHubEvents } from './agents/hub.ts';
import { BackupPolicyReconciler } from './backup-policies/reconciler.ts';
import { BackupReconciler } from './backups/reconciler.ts';
import type { ControllerOptions, Ctx } from './context.ts';
import { HostClusterReconciler } from './host-clusters/reconciler.ts';
import { AgentEvents } from './hosts/events.ts';
import { HostLiveness } from './hosts/liveness.ts';
import { HostReconciler } from './hosts/reconciler.ts';
import { InstanceReconciler } from './instances/reconciler.ts';
import { MemoryReconciler } from './memory/reconciler.ts';
import { NetworkReconciler } from './networks/reconciler.ts';
import type { SchedulableHost } from './placement/scheduler.ts';
import { Manager } from './runtime/manager.ts';
import { OpTracker } from './runtime/op-tracker.ts';
import type { Kind } from './runtime/reconciler.ts';
import { StatusWriter } from './runtime/status-writer.ts';
import { BackupService } from './services/backups.ts';
import { BackupPolicyService } from './services/backup-policies.ts';
import { HostService } from './services/hosts.ts';
import { ImageService } from './services/images.ts';
import { HostClusterService } from './services/host-clusters.ts';
import { InstanceService } from './services/instances.ts';
import { MemoryService } from './services/memory.ts';
import { NetworkService } from './services/networks.ts';
import { PlacementService } from './services/placement.ts';
import { TenantService } from './services/tenants.ts';
import { VolumeService } from './services/volumes.ts';
import { SnapshotReconciler } from './snapshots/reconciler.ts';
import { VolumeReconciler } from './volumes/reconciler.ts';

export class Controller {
  readonly runtime: Manager;
  readonly ops: OpTracker;
  readonly backups: BackupService;
  readonly backupPolicies: BackupPolicyService;
  readonly images: ImageService;
  readonly hosts: HostService;
  readonly instances: InstanceService;
  readonly volumes: VolumeService;
  readonly networks: NetworkService;
  readonly memory: MemoryService;
  readonly tenants: TenantService;
  readonly hostClusters: HostClusterService;
  private readonly placement: PlacementService;
  private readonly events: AgentEvents;
  private readonly ctx: Ctx;
  private hub?: AgentHub;
  private scheduling: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: Store,
    private readonly opts: ControllerOptions,
  ) {
    const hub = () => {
      if (!this.hub) throw new Error('the controller has no agent hub yet');
      return this.hub;
    };
    this.runtime = new Manager({
      log: opts.log,
      clock: opts.clock,
      resyncMs: opts.resyncMs,
      onError: (kind) => opts.metrics.reconcileErrors.inc({ kind }),
      onRun: (kind, ms) => {
        opts.metrics.reconciles.inc({ kind });
        opts.metrics.reconcileSeconds.inc({ kind }, ms / 1000);
      },
    });
    this.ops = new OpTracker({ db: store.db, transport: hub, clock: opts.clock, log: opts.log, wake: (r) => this.runtime.enqueue(r.kind, r.key) });
    const liveness = new HostLiveness({
      clock: opts.clock,
      lostAfterMs: opts.lostAfterMs,
      isConnected: (id) => !!this.hub?.isConnected(id),
      wake: (id) => this.runtime.enqueue('host', id),
    });
    this.ctx = {
      store,
      hub,
      ops: this.ops,
      status: new StatusWriter(),
      runtime: this.runtime,
      liveness,
      clock: opts.clock,
      log: opts.log,
      metrics: opts.metrics,
      allocation: opts.allocation,
      lostAfterMs: opts.lostAfterMs,
      backup: opts.backup,
      serialize: (fn) => this.serialize(fn),
    };
    const all = async (repo: ResourceRepository<unknown, unknown>) => (await repo.list()).map((r) => r.id);
    const unsettledBackups = async () => (await store.backups.list()).filter((b) => !backupSettled(b.status.phase)).map((b) => b.id);
    const kinds: [Kind, ResourceRepository<unknown, unknown>, { reconcile(key: string): Promise<unknown> } & { kind: Kind }][] = [
      ['host', store.hosts as ResourceRepository<unknown, unknown>, new HostReconciler(this.ctx)],
      ['instance', store.instances as ResourceRepository<unknown, unknown>, new InstanceReconciler(this.ctx)],
      ['volume', store.volumes as ResourceRepository<unknown, unknown>, new VolumeReconciler(this.ctx)],
      ['snapshot', store.snapshots as ResourceRepository<unknown, unknown>, new SnapshotReconciler(this.ctx)],
      ['memory', store.memoryPools as ResourceRepository<unknown, unknown>, new MemoryReconciler(this.ctx)],
      ['backup', store.backups as ResourceRepository<unknown, unknown>, new BackupReconciler(this.ctx)],
      ['backupPolicy', store.backupPolicies as ResourceRepository<unknown, unknown>, new BackupPolicyReconciler(this.ctx)],
      ['network', store.networks as ResourceRepository<unknown, unknown>, new NetworkReconciler(this.ctx)],
      ['hostCluster', store.hostClusters as ResourceRepository<unknown, unknown>, new HostClusterReconciler(this.ctx)],
    ];
    for (const [kind, repo, reconciler] of kinds) {
      this.runtime.register(reconciler as never, kind === 'backup' ? unsettledBackups : () => all(repo));
      // A change made by anyone but the status writer (a user's request, another reconciler) brings the resource back.
      repo.watch((e) => {
        if (e.origin !== 'status') this.runtime.enqueue(kind, e.id);
      });
    }
    this.events = new AgentEvents(this.ctx);
    this.backups = new BackupService(this.ctx);
    this.backupPolicies = new BackupPolicyService(this.ctx);
    this.images = new ImageService(this.ctx);
    this.hosts = new HostService(this.ctx);
    this.instances = new InstanceService(this.ctx);
    this.placement = new PlacementService(this.ctx);
    this.volumes = new VolumeService(this.ctx, this.placement);
    this.networks = new NetworkService(this.ctx);
    this.memory = new MemoryService(this.ctx);
    this.tenants = new TenantService(this.ctx);
    this.hostClusters = new HostClusterService(this.ctx, (id) => this.events.deliverPrincipal(id));
  }

  attachHub(hub: AgentHub): void {
    this.hub = hub;
  }

  /** What the agent hub tells the controller. */
  get agentEvents(): AgentHubEvents {
    const e = this.events;
    return {
      onHello: (m) => e.onHello(m),
      onReport: (h, changed, first) => e.onReport(h, changed, first),
      onOpResult: (h, op, r) => e.onOpResult(h, op, r),
      onOpProgress: (h, op, p) => e.onOpProgress(h, op, p),
      onDisconnect: (h) => void e.onDisconnect(h).catch((err: Error) => this.opts.log.error({ err }, 'disconnect handling failed')),
      targetOf: (opId) => this.ops.targetOf(opId),
    };
  }

  async start(): Promise<void> {
    await this.ensureDefaultPool();
    await this.ops.load();
    await this.runtime.start();
  }

  async stop(): Promise<void> {
    this.runtime.stop();
    this.ctx.liveness.close();
    await this.ops.close();
  }

  /** Reconciles a resource now and resolves once that run is done (API actions answer with the result). */
  reconcileNow(kind: Kind, id: string): Promise<void> {
    return this.runtime.reconcileNow(kind, id);
  }

  /** Every host belongs to a pool: the default one takes those no other pool names. */
  private async ensureDefaultPool(): Promise<void> {
    if ((await this.store.memoryPools.count()) > 0) return;
    await this.store.memoryPools
      .create({ name: DEFAULT_POOL, spec: DEFAULT_POOL_SPEC, status: { phase: 'active', conditions: [], hosts: [], domains: [], tenants: [] } })
      .catch(() => undefined); // another replica made it
  }

  capacity(o: { excludeVolume?: string } = {}): Promise<(SchedulableHost & { host: Host })[]> {
    return this.placement.capacity(o);
  }

  currentStorage(h: Host): HostStorage | undefined {
    return this.placement.currentStorage(h);
  }

  lastHeartbeat(h: Host): Date | undefined {
    return this.placement.lastHeartbeat(h);
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    // Each job starts from the event loop: with the store in memory a placement runs without real
    // I/O, and 32 creates chained as microtasks held the loop (TLS handshakes, agent streams) for a second.
    const run = this.scheduling.then(() => new Promise<void>((r) => setImmediate(r))).then(fn);
    this.scheduling = run.catch(() => undefined);
    return run;
  }
}
