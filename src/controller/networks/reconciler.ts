/**
 * Networks through the controller: puts each network's segment on the hosts whose instances use
 * it, keeps their flood lists right as instances come and go, takes it off hosts that no longer
 * need it, and deletes a network marked for deletion once no host has it.
 */
import type { Logger } from 'pino';
import type { Store } from '../../store/index.ts';
import type { AgentHub, OpResult } from '../agents/hub.ts';
import { applyAnswer, planNetwork } from './plan.ts';

export class NetworkReconciler {
  private seq = 0;

  constructor(
    private readonly o: { store: Store; hub: () => AgentHub; clock: () => Date; log: Logger; enqueue: (id: string) => void },
  ) {}

  async reconcile(id: string): Promise<void> {
    const net = await this.o.store.networks.get(id);
    if (!net) return;
    const hub = this.o.hub();
    const [instances, hosts] = await Promise.all([this.o.store.instances.list(), this.o.store.hosts.list()]);
    const plan = planNetwork(net, {
      placed: instances
        .filter((i) => i.status.hostId && i.spec.nics?.length)
        .map((i) => ({ hostId: i.status.hostId!, networks: i.spec.nics!.map((n) => n.network), nics: i.spec.nics!.map((n) => ({ network: n.network, mac: n.mac })) })),
      hosts: hosts.map((h) => ({ id: h.id, name: h.name, underlay: h.status.inventory?.network?.underlay?.address, connected: hub.isConnected(h.id) })),
      inFlight: (hostId, opId) => hub.isInFlight(hostId, opId),
      now: this.o.clock(),
      newOpId: (hostId) => `${id}/${hostId}/${Date.now().toString(36)}-${++this.seq}`,
    });
    if (plan.remove) {
      // Its own claims (the DHCP address) go before the record, as an instance's do.
      await this.o.store.claims.releaseInstance(id);
      await this.o.store.networks.delete(id);
      await this.o.store.claims.releaseSegments(id);
      this.o.log.info({ network: net.name }, 'network deleted');
      return;
    }
    let wrote = false;
    await this.o.store.networks.update(id, (cur) => {
      // Written only over the status the plan was made from: otherwise plan again.
      if (JSON.stringify(cur.status.hosts) !== JSON.stringify(net.status.hosts) || cur.status.phase !== net.status.phase) return null;
      const status = { ...cur.status, hosts: plan.hosts, message: plan.message };
      if (JSON.stringify(status) === JSON.stringify(cur.status)) return null;
      wrote = true;
      return { status };
    });
    if (!wrote && plan.sends.length) return this.o.enqueue(id);
    for (const s of plan.sends) {
      const op = s.kind === 'network.ensure'
        ? { opId: s.opId, kind: s.kind, networkId: id, segment: net.spec.segment, peers: s.peers, macs: s.macs }
        : { opId: s.opId, kind: s.kind, networkId: id, segment: net.spec.segment };
      hub.sendOp(s.hostId, op).catch(() => this.o.enqueue(id));
    }
  }

  onOpResult(opId: string, result: OpResult): void {
    const id = opId.split('/')[0]!;
    void this.o.store.networks
      .update(id, (cur) => {
        const hosts = applyAnswer(cur.status.hosts, opId, result.ok, result.error, this.o.clock());
        return hosts ? { status: { ...cur.status, hosts } } : null;
      })
      .then(
        () => this.o.enqueue(id),
        (e: Error) => this.o.log.warn({ err: e.message, opId }, 'could not record a network answer'),
      );
    if (!result.ok) this.o.log.warn({ opId, err: result.error }, 'network operation failed');
  }
}
