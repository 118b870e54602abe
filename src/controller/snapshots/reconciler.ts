/** Snapshots: made and deleted by their volume's host (plan.ts, pure); a ready one frees the clones waiting for it. */
import type { Ctx } from '../context.ts';
import { hostView } from '../context.ts';
import { foldAnswer } from '../last-op.ts';
import type { Reconciler } from '../runtime/reconciler.ts';
import { planSnapshot } from './plan.ts';

export class SnapshotReconciler implements Reconciler {
  readonly kind = 'snapshot';

  constructor(private readonly ctx: Ctx) {}

  async reconcile(id: string): Promise<void> {
    const { ctx } = this;
    const repo = ctx.store.snapshots;
    let s = await repo.get(id);
    if (!s) return;
    s = await foldAnswer(ctx, repo, s);
    if (!s) return;
    const volume = await ctx.store.volumes.get(s.spec.volume);
    const hostId = volume?.status.hostId;
    const host = hostId ? await ctx.store.hosts.get(hostId) : undefined;
    const plan = planSnapshot(s, {
      volume,
      host: hostView(ctx, host, hostId),
      observedVolume: hostId ? ctx.hub().volume(hostId, s.spec.volume) : undefined,
      lastOpInFlight: ctx.ops.inFlight(s.status.lastOp?.opId),
      now: ctx.clock.now(),
    });
    if (plan.remove) {
      await repo.delete(id);
      await ctx.ops.forgetOwner({ kind: 'snapshot', key: id });
      ctx.log.info({ snapshot: s.name }, 'snapshot deleted');
      return;
    }
    const wrote = await ctx.status.write(repo, s, () => plan.status);
    if (plan.status.phase === 'ready' && s.status.phase !== 'ready') {
      // Clones waiting for this snapshot can go ahead.
      for (const v of await ctx.store.volumes.list())
        if (v.spec.source && 'snapshot' in v.spec.source && v.spec.source.snapshot === id) ctx.runtime.enqueue('volume', v.id);
    }
    if (!plan.send || !hostId) return;
    if (!wrote && JSON.stringify(plan.status) !== JSON.stringify(s.status)) return;
    ctx.ops
      .send({ kind: 'snapshot', key: id }, hostId, { opId: plan.send.opId, kind: plan.send.kind, volumeId: s.spec.volume, snapshotId: s.id })
      .catch(() => undefined);
  }
}
