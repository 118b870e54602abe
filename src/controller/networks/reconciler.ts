/**
 * Networks through the controller: puts each network's segment on the hosts whose instances use
 * it, keeps their flood lists right as instances come and go, takes it off hosts that no longer
 * need it, and deletes a network marked for deletion once no host has it.
 */
import type { Ctx } from '../context.ts';
import type { Reconciler } from '../runtime/reconciler.ts';
import { applyAnswer, planNetwork } from './plan.ts';

export class NetworkReconciler implements Reconciler {
  readonly kind = 'network';
  private seq = 0;

  constructor(private readonly ctx: Ctx) {}

  async reconcile(id: string): Promise<void> {
    const { ctx } = this;
    await this.foldAnswers(id);
    const net = await ctx.store.networks.get(id);
    if (!net) return;
    const hub = ctx.hub();
    const [instances, hosts] = await Promise.all([ctx.store.instances.list(), ctx.store.hosts.list()]);
    const plan = planNetwork(net, {
      placed: instances
        .filter((i) => i.status.hostId && i.spec.nics?.length)
        .map((i) => ({
          hostId: i.status.hostId!,
          networks: i.spec.nics!.map((n) => n.network),
          nics: i.spec.nics!.map((n) => ({ network: n.network, mac: n.mac })),
        })),
      hosts: hosts.map((h) => ({ id: h.id, name: h.name, underlay: h.status.inventory?.network?.underlay?.address, connected: hub.isConnected(h.id) })),
      inFlight: (_hostId, opId) => ctx.ops.inFlight(opId),
      now: ctx.clock.now(),
      newOpId: (hostId) => `${id}/${hostId}/${ctx.clock.now().getTime().toString(36)}-${++this.seq}`,
    });
    if (plan.remove) {
      // Its own claims (the DHCP address) go before the record, as an instance's do.
      await ctx.store.claims.releaseInstance(id);
      await ctx.store.networks.delete(id);
      await ctx.store.claims.releaseSegments(id);
      await ctx.ops.forgetOwner({ kind: 'network', key: id });
      ctx.log.info({ network: net.name }, 'network deleted');
      return;
    }
    // Written only over the status the plan was made from: otherwise plan again.
    const still = (cur: typeof net.status, read: typeof net.status) => JSON.stringify(cur.hosts) === JSON.stringify(read.hosts) && cur.phase === read.phase;
    const wrote = await ctx.status.write(ctx.store.networks, net, (st) => ({ ...st, hosts: plan.hosts, message: plan.message }), { still });
    if (!wrote && plan.sends.length) return ctx.runtime.enqueue('network', id);
    for (const s of plan.sends) {
      const op =
        s.kind === 'network.ensure'
          ? { opId: s.opId, kind: s.kind, networkId: id, segment: net.spec.segment, peers: s.peers, macs: s.macs }
          : { opId: s.opId, kind: s.kind, networkId: id, segment: net.spec.segment };
      ctx.ops.send({ kind: 'network', key: id }, s.hostId, op, { subject: s.hostId }).catch(() => undefined);
    }
  }

  /** The hosts' answers go into the network's per-host entries. */
  private async foldAnswers(id: string): Promise<void> {
    const { ctx } = this;
    for (const t of ctx.ops.ofOwner({ kind: 'network', key: id })) {
      if (!t.result) continue;
      if (!t.result.ok) ctx.log.warn({ opId: t.opId, err: t.result.error }, 'network operation failed');
      const result = t.result;
      if (await ctx.store.networks.get(id)) {
        await ctx.status.edit(ctx.store.networks, id, (st) => {
          const hosts = applyAnswer(st.hosts, t.opId, result.ok, result.error, ctx.clock.now());
          return hosts ? { ...st, hosts } : null;
        });
      }
      await ctx.ops.settle(t.opId);
    }
  }
}
