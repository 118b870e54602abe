/**
 * Hosts: the phase (trust, heartbeats, cordon), the connected flag and the conditions
 * (Heartbeat, HostDiskPressure). A phase change wakes what lives on the host.
 */
import { setCondition } from '../../model/conditions.ts';
import type { Ctx } from '../context.ts';
import { DISK_PRESSURE, diskPressure } from '../placement/disk-pressure.ts';
import type { Reconciler } from '../runtime/reconciler.ts';
import { enqueueHostResources } from './wake.ts';

export class HostReconciler implements Reconciler {
  readonly kind = 'host';

  constructor(private readonly ctx: Ctx) {}

  async reconcile(id: string): Promise<void> {
    const { ctx } = this;
    const h = await ctx.store.hosts.get(id);
    if (!h) return;
    const now = ctx.clock.now();
    const phase = ctx.liveness.phaseOf(h);
    const connected = ctx.hub().isConnected(id);
    const last = ctx.liveness.lastHeartbeat(h);
    const judged = ctx.liveness.judgedHeartbeat(h);
    if (judged && (phase === 'ready' || phase === 'cordoned')) ctx.liveness.expect(id, judged.getTime() + ctx.lostAfterMs);
    const heartbeat = setCondition(
      h.status.conditions,
      phase === 'lost'
        ? { type: 'Heartbeat', status: 'False', reason: 'HeartbeatsStopped', message: `no heartbeat since ${last?.toISOString() ?? 'ever'}` }
        : phase === 'pending-approval' || phase === 'trusted' || phase === 'rejected' || phase === 'revoked'
          ? { type: 'Heartbeat', status: 'Unknown', reason: 'NotConnected', message: '' }
          : { type: 'Heartbeat', status: 'True', reason: 'Heartbeating', message: '' },
      now,
    );
    const conditions = h.status.storage
      ? setCondition(heartbeat, diskPressure(h.status.storage, ctx.allocation), now)
      : h.status.inventory
        ? setCondition(
            heartbeat,
            {
              type: DISK_PRESSURE,
              status: 'Unknown',
              reason: 'NotReported',
              message: 'the agent does not report its disk space (an agent older than the space accounting)',
            },
            now,
          )
        : heartbeat;
    if (phase === h.status.phase && connected === h.status.agent.connected && conditions === h.status.conditions) return;
    const wasPhase = h.status.phase;
    await ctx.status.edit(ctx.store.hosts, id, (st, cur) => ({
      ...st,
      phase,
      conditions,
      agent: { ...st.agent, connected, lastHeartbeatAt: ctx.liveness.lastHeartbeat(cur)?.toISOString() },
    }));
    if (wasPhase !== phase) {
      ctx.log.info({ hostId: id, from: wasPhase, to: phase }, 'host phase changed');
      // Any host change can unblock what waits for room (uncordon, back from lost).
      await enqueueHostResources(ctx, id);
    }
  }
}
