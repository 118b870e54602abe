/**
 * Volumes: placed first (placement.ts), then made real, resized and deleted by their host's storage
 * daemon (plan.ts, pure). A guest that unplugged a volume itself has it detached here.
 */
import { setCondition } from '../../model/conditions.ts';
import type { Ctx } from '../context.ts';
import { hostView } from '../context.ts';
import { failUnsent, foldAnswer } from '../last-op.ts';
import type { Reconciler } from '../runtime/reconciler.ts';
import { detachReleased, planVolume } from './plan.ts';
import { placeVolume } from './placement.ts';
import { volumeOp } from './volume-op.ts';

export class VolumeReconciler implements Reconciler {
  readonly kind = 'volume';

  constructor(private readonly ctx: Ctx) {}

  async reconcile(id: string): Promise<void> {
    const { ctx } = this;
    const repo = ctx.store.volumes;
    let v = await repo.get(id);
    if (!v) return;
    v = await foldAnswer(ctx, repo, v);
    if (!v) return;
    if (!v.status.hostId && v.status.phase !== 'deleting') {
      const placed = await ctx.serialize(() => placeVolume(ctx, v!));
      const hostName = placed.hostId ? (await ctx.store.hosts.get(placed.hostId))?.name : undefined;
      await ctx.status.write(repo, v, (st) => {
        if (placed.hostId) {
          st.hostId = placed.hostId;
          st.hostName = hostName;
          st.phase = 'creating';
          st.message = undefined;
          if (placed.overcommitted)
            st.conditions = setCondition(
              st.conditions,
              { type: 'Overcommitted', status: 'True', reason: 'DiskOvercommitted', message: placed.overcommitted },
              ctx.clock.now(),
            );
        } else {
          st.phase = placed.error ? 'failed' : 'pending';
          st.message = placed.error ?? placed.wait;
        }
      });
      v = await repo.get(id);
      if (!v || !v.status.hostId) return;
      // Instances waiting to know where their volumes are can be placed now.
      await this.enqueueUsers(id, v.spec.attachedTo);
    }
    const hostId = v.status.hostId;
    const hub = ctx.hub();
    const released = hostId ? hub.releasedBy(hostId, id) : undefined;
    if (released && detachReleased(v, released, ctx.clock.now())) {
      v = await ctx.status.record(repo, id, (cur) => detachReleased(cur, released, ctx.clock.now()) ?? null);
      ctx.log.warn({ volume: v.name, instance: released.instanceId }, 'volume detached: its guest unplugged it');
      ctx.runtime.enqueue('instance', released.instanceId);
    }
    const host = hostId ? await ctx.store.hosts.get(hostId) : undefined;
    const plan = planVolume(v, {
      host: hostView(ctx, host, hostId),
      observed: hostId ? hub.volume(hostId, id) : undefined,
      pluggedInto: hostId ? hub.vmsWithDisk(hostId, id)[0] : undefined,
      lastOpInFlight: ctx.ops.inFlight(v.status.lastOp?.opId),
      now: ctx.clock.now(),
    });
    if (plan.remove) {
      await repo.delete(id);
      await ctx.ops.forgetOwner({ kind: 'volume', key: id });
      ctx.log.info({ volume: v.name }, 'volume deleted');
      return;
    }
    const wrote = await ctx.status.write(repo, v, () => plan.status);
    // Instances waiting for this volume to be ready (or to be gone) can move on.
    if (plan.status.phase !== v.status.phase) await this.enqueueUsers(id, v.spec.attachedTo);
    if (!plan.send || !hostId) return;
    if (!wrote && JSON.stringify(plan.status) !== JSON.stringify(v.status)) return;
    const op = await volumeOp(ctx, v, plan.send.opId, plan.send.kind);
    if ('error' in op) return failUnsent(ctx, repo, v, plan.send, op.error);
    ctx.ops.send({ kind: 'volume', key: id }, hostId, op).catch(() => undefined);
  }

  private async enqueueUsers(volumeId: string, attachedTo: string | undefined): Promise<void> {
    for (const i of await this.ctx.store.instances.list())
      if (i.spec.bootVolume === volumeId || attachedTo === i.id) this.ctx.runtime.enqueue('instance', i.id);
  }
}
