/**
 * The controller's reconcilers: hosts (registration, liveness, phase) and instances (placement and
 * the operations that make each VM match its spec). Level-triggered: every event only enqueues
 * the affected resources, and each run recomputes from the store and the agents' reports.
 */
import type { Logger } from 'pino';
import { setCondition } from '../model/common.ts';
import type { AgentMessage, AgentOp, VmDefinition } from '../model/agent-protocol.ts';
import type { Host, Quantity } from '../model/host.ts';
import type { Instance, InstanceStatus } from '../model/instance.ts';
import type { Store } from '../store/index.ts';
import type { AgentHub, OpResult } from './agent-hub.ts';
import { hostPhase } from './host-phase.ts';
import { planInstance } from './instance-plan.ts';
import type { ControllerMetrics } from './metrics.ts';
import { allocatableOf, schedule, type AllocationPolicy, type SchedulableHost } from './scheduler.ts';
import { WorkQueue } from './work-queue.ts';

export interface ControllerOptions {
  lostAfterMs: number;
  /** Resync period: every instance and host is reconciled at least this often. */
  resyncMs: number;
  allocation: AllocationPolicy;
  clock: () => Date;
  log: Logger;
  metrics: ControllerMetrics;
}

/** lastHeartbeatAt is persisted at most this often; liveness itself is judged from memory. */
const HEARTBEAT_PERSIST_MS = 15_000;

type Hello = Extract<AgentMessage, { type: 'hello' }>;

export class Controller {
  private readonly instances: WorkQueue;
  private readonly hosts: WorkQueue;
  private readonly heartbeats = new Map<string, Date>();
  private readonly opResults = new Map<string, OpResult>();
  private hub!: AgentHub;
  private timers: NodeJS.Timeout[] = [];
  /** Placement is serialised so two instances never both take the last free capacity. */
  private scheduling: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: Store,
    private readonly opts: ControllerOptions,
  ) {
    const onError = (kind: string) => (key: string, err: unknown) => {
      opts.metrics.reconcileErrors.inc({ kind });
      opts.log.error({ err, key }, `${kind} reconcile failed`);
      (kind === 'instance' ? this.instances : this.hosts).addAfter(key, 1000);
    };
    this.instances = new WorkQueue((id) => this.reconcileInstance(id), onError('instance'));
    this.hosts = new WorkQueue((id) => this.reconcileHost(id), onError('host'));
  }

  attachHub(hub: AgentHub): void {
    this.hub = hub;
  }

  async start(): Promise<void> {
    await this.resync();
    this.timers.push(setInterval(() => void this.resync().catch((e) => this.opts.log.error({ err: e }, 'resync failed')), this.opts.resyncMs));
    this.timers.push(setInterval(() => void this.checkLiveness().catch((e) => this.opts.log.error({ err: e }, 'liveness check failed')), 1000));
    for (const t of this.timers) t.unref();
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
    this.instances.close();
    this.hosts.close();
  }

  /** Reconciles the host now and resolves once that run is done (API actions answer with the result). */
  reconcileHostNow(id: string): Promise<void> {
    return this.hosts.addAndWait(id);
  }

  reconcileInstanceNow(id: string): Promise<void> {
    return this.instances.addAndWait(id);
  }

  private async resync(): Promise<void> {
    for (const h of await this.store.hosts.list()) this.hosts.add(h.id);
    for (const i of await this.store.instances.list()) this.instances.add(i.id);
  }

  private now(): Date {
    return this.opts.clock();
  }

  // ---- agent events ----

  async onHello(msg: Hello): Promise<void> {
    const now = this.now();
    const byName = await this.store.hosts.find(msg.name);
    if (byName && byName.id !== msg.hostId) {
      throw new Error(`host name '${msg.name}' is already used by host ${byName.id}`);
    }
    const agent = { version: msg.agentVersion, connected: true, connectedAt: now.toISOString(), lastHeartbeatAt: now.toISOString() };
    this.heartbeats.set(msg.hostId, now);
    const existing = await this.store.hosts.get(msg.hostId);
    if (!existing) {
      await this.store.hosts.create({
        id: msg.hostId,
        name: msg.name,
        spec: { cordoned: false },
        status: { phase: 'ready', conditions: [], inventory: msg.inventory, agent },
      });
    } else {
      await this.store.hosts.update(msg.hostId, (cur) => ({ status: { ...cur.status, inventory: msg.inventory, agent } }));
    }
    this.hosts.add(msg.hostId);
    // The host is back: its instances need a look, and it may be the room pending ones waited for.
    for (const i of await this.store.instances.list()) {
      if (i.status.hostId === msg.hostId || !i.status.hostId) this.instances.add(i.id);
    }
  }

  onReport(hostId: string, changed: string[], first: boolean): void {
    const now = this.now();
    const prev = this.heartbeats.get(hostId);
    this.heartbeats.set(hostId, now);
    if (!first && prev && now.getTime() - prev.getTime() > 0) {
      // Persist the heartbeat now and then so a restarted controller can still judge liveness.
      void this.persistHeartbeat(hostId, now);
    }
    for (const id of changed) this.instances.add(id);
  }

  private lastPersisted = new Map<string, number>();

  private async persistHeartbeat(hostId: string, now: Date): Promise<void> {
    const last = this.lastPersisted.get(hostId) ?? 0;
    if (now.getTime() - last < HEARTBEAT_PERSIST_MS) return;
    this.lastPersisted.set(hostId, now.getTime());
    await this.store.hosts
      .update(hostId, (cur) => ({ status: { ...cur.status, agent: { ...cur.status.agent, lastHeartbeatAt: now.toISOString() } } }))
      .catch((e) => this.opts.log.warn({ err: e, hostId }, 'could not persist heartbeat'));
  }

  onOpResult(hostId: string, opId: string, result: OpResult): void {
    this.opts.metrics.agentOps.inc({ result: result.ok ? 'ok' : 'error' });
    this.opResults.set(opId, result);
    const instanceId = opId.split('/')[0];
    if (instanceId) this.instances.add(instanceId);
  }

  async onDisconnect(hostId: string): Promise<void> {
    this.hosts.add(hostId);
    for (const i of await this.store.instances.list()) if (i.status.hostId === hostId) this.instances.add(i.id);
  }

  // ---- hosts ----

  private lastHeartbeat(h: Host): Date | undefined {
    return this.heartbeats.get(h.id) ?? (h.status.agent.lastHeartbeatAt ? new Date(h.status.agent.lastHeartbeatAt) : undefined);
  }

  private phaseOf(h: Host): 'ready' | 'cordoned' | 'lost' {
    return hostPhase(
      { cordoned: h.spec.cordoned, connected: this.hub.isConnected(h.id), lastHeartbeatAt: this.lastHeartbeat(h)?.toISOString() },
      this.now(),
      this.opts.lostAfterMs,
    );
  }

  private async checkLiveness(): Promise<void> {
    for (const h of await this.store.hosts.list()) {
      const connected = this.hub.isConnected(h.id);
      if (this.phaseOf(h) !== h.status.phase || connected !== h.status.agent.connected) this.hosts.add(h.id);
    }
  }

  private async reconcileHost(id: string): Promise<void> {
    const h = await this.store.hosts.get(id);
    if (!h) return;
    const phase = this.phaseOf(h);
    const connected = this.hub.isConnected(id);
    const now = this.now();
    const conditions = setCondition(
      h.status.conditions,
      phase === 'lost'
        ? { type: 'Heartbeat', status: 'False', reason: 'HeartbeatsStopped', message: `no heartbeat since ${this.lastHeartbeat(h)?.toISOString() ?? 'ever'}` }
        : { type: 'Heartbeat', status: 'True', reason: 'Heartbeating', message: '' },
      now,
    );
    if (phase === h.status.phase && connected === h.status.agent.connected && conditions === h.status.conditions) return;
    const wasPhase = h.status.phase;
    await this.store.hosts.update(id, (cur) => ({
      status: {
        ...cur.status,
        phase,
        conditions,
        agent: { ...cur.status.agent, connected, lastHeartbeatAt: this.lastHeartbeat(cur)?.toISOString() },
      },
    }));
    if (wasPhase !== phase) {
      this.opts.log.info({ hostId: id, from: wasPhase, to: phase }, 'host phase changed');
      // Any host change can unblock pending instances (uncordon, back from lost).
      for (const i of await this.store.instances.list()) {
        if (!i.status.hostId || i.status.hostId === id) this.instances.add(i.id);
      }
    }
  }

  /** Hosts with their allocatable and allocated capacity, as the scheduler and the API see them. */
  async capacity(): Promise<(SchedulableHost & { host: Host })[]> {
    const instances = await this.store.instances.list();
    const used = new Map<string, Quantity>();
    for (const i of instances) {
      if (!i.status.hostId) continue;
      const u = used.get(i.status.hostId) ?? { vcpus: 0, memoryMiB: 0 };
      used.set(i.status.hostId, { vcpus: u.vcpus + i.spec.vcpus, memoryMiB: u.memoryMiB + i.spec.memoryMiB });
    }
    return (await this.store.hosts.list())
      .filter((h) => h.status.inventory)
      .map((h) => ({
        host: h,
        id: h.id,
        name: h.name,
        phase: h.status.phase,
        cordoned: h.spec.cordoned,
        allocatable: allocatableOf(h.status.inventory!, this.opts.allocation),
        allocated: used.get(h.id) ?? { vcpus: 0, memoryMiB: 0 },
      }));
  }

  // ---- instances ----

  private async place(inst: Instance): Promise<void> {
    const run = this.scheduling.then(async () => {
      const hosts = await this.capacity();
      const p = schedule({ vcpus: inst.spec.vcpus, memoryMiB: inst.spec.memoryMiB }, hosts);
      const now = this.now();
      await this.writeStatus(inst, (st) => {
        if (p.ok) {
          st.hostId = p.hostId;
          st.hostName = p.hostName;
          st.phase = 'scheduled';
          st.message = undefined;
          st.conditions = setCondition(st.conditions, { type: 'Scheduled', status: 'True', reason: 'Placed', message: `placed on ${p.hostName}` }, now);
        } else {
          st.phase = 'pending';
          st.message = p.message;
          st.conditions = setCondition(st.conditions, { type: 'Scheduled', status: 'False', reason: p.reason, message: p.message }, now);
        }
      });
      if (p.ok) this.opts.log.info({ instance: inst.name, host: p.hostName }, 'instance scheduled');
    });
    this.scheduling = run.catch(() => undefined);
    await run;
  }

  /**
   * Writes a status computed from `inst`, unless the instance changed meanwhile (a user action or
   * a delete): then nothing is written and the instance is reconciled again.
   */
  private async writeStatus(inst: Instance, edit: (st: InstanceStatus) => void | InstanceStatus): Promise<boolean> {
    let wrote = false;
    await this.store.instances.update(inst.id, (cur) => {
      if (cur.generation !== inst.generation || (cur.status.phase === 'deleting') !== (inst.status.phase === 'deleting')) return null;
      const st: InstanceStatus = structuredClone(cur.status);
      const replaced = edit(st);
      const next = replaced ?? st;
      if (JSON.stringify(next) === JSON.stringify(cur.status)) return null;
      wrote = true;
      return { status: next };
    });
    if (!wrote) {
      const cur = await this.store.instances.get(inst.id);
      if (cur && cur.generation !== inst.generation) this.instances.add(inst.id);
    }
    return wrote;
  }

  private async reconcileInstance(id: string): Promise<void> {
    let inst = await this.store.instances.get(id);
    if (!inst) return;
    const started = Date.now();

    // Fold a received operation answer into the persisted record first.
    const last = inst.status.lastOp;
    const answer = last?.state === 'sent' ? this.opResults.get(last.opId) : undefined;
    if (last && answer) {
      await this.writeStatus(inst, (st) => {
        st.lastOp = { ...last, state: answer.ok ? 'succeeded' : 'failed', error: answer.error, at: this.now().toISOString() };
      });
      this.opResults.delete(last.opId);
      inst = await this.store.instances.get(id);
      if (!inst) return;
    }

    if (inst.status.phase !== 'deleting' && !inst.status.hostId) {
      await this.place(inst);
      inst = await this.store.instances.get(id);
      if (!inst || !inst.status.hostId) return;
    }

    const hostId = inst.status.hostId;
    const host = hostId ? await this.store.hosts.get(hostId) : undefined;
    const connected = !!hostId && this.hub.isConnected(hostId);
    const plan = planInstance(inst, {
      hostExists: !!host,
      hostName: host?.name,
      hostConnected: connected,
      vm: hostId ? this.hub.vm(hostId, id) : undefined,
      lastOpInFlight: !!hostId && !!inst.status.lastOp && this.hub.isInFlight(hostId, inst.status.lastOp.opId),
      now: this.now(),
    });

    if (plan.remove) {
      await this.store.instances.delete(id);
      this.opts.log.info({ instance: inst.name }, 'instance deleted');
      return;
    }
    const wrote = await this.writeStatus(inst, () => plan.status);
    const startOp = inst.status.lastOp;
    if (wrote && plan.status.phase === 'running' && inst.status.phase !== 'running' && startOp?.kind !== 'vm.stop' && startOp) {
      this.opts.metrics.instanceStart.observe((this.now().getTime() - Date.parse(startOp.at)) / 1000);
    }
    if (!plan.send || !hostId) return;
    if (!wrote && JSON.stringify(plan.status) !== JSON.stringify(inst.status)) return; // superseded
    const op = await this.buildOp(inst, plan.send.opId, plan.send.kind);
    if ('error' in op) {
      await this.writeStatus(inst, (st) => {
        st.phase = 'failed';
        st.message = op.error;
        st.lastOp = { opId: plan.send!.opId, kind: plan.send!.kind, state: 'failed', error: op.error, at: this.now().toISOString() };
      });
      return;
    }
    this.opts.log.debug({ instance: inst.name, op: op.opId, ms: Date.now() - started }, 'sending op');
    this.hub.sendOp(hostId, op).catch(() => this.instances.add(id));
  }

  private async buildOp(inst: Instance, opId: string, kind: AgentOp['kind']): Promise<AgentOp | { error: string }> {
    switch (kind) {
      case 'vm.stop':
        return { opId, kind, instanceId: inst.id, generation: inst.generation };
      case 'vm.delete':
        return { opId, kind, instanceId: inst.id };
      case 'vm.start':
      case 'vm.restart': {
        const image = await this.store.images.find(inst.spec.image);
        if (!image || image.status.phase !== 'ready') return { error: `image '${inst.spec.image}' is not available` };
        const vm: VmDefinition = {
          name: inst.name,
          vcpus: inst.spec.vcpus,
          memoryMiB: inst.spec.memoryMiB,
          image: { id: image.id, name: image.name, cmdline: image.spec.cmdline, readyMarker: image.spec.readyMarker, files: image.spec.files },
          forwardPorts: inst.spec.forwardPorts,
          generation: inst.generation,
          restartSeq: inst.spec.restartSeq,
        };
        return { opId, kind, instanceId: inst.id, vm };
      }
    }
  }
}
