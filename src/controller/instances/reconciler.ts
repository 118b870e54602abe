/**
 * Instances: placed first (placement.ts), then each run plans the next step from the spec, the
 * host's VM report and the last operation's answer (plan.ts, pure), writes the status and sends
 * the operation. A deleted instance's VM goes first, then its volumes and addresses, then the record.
 */
import { setCondition } from '../../model/conditions.ts';
import type { Instance } from '../../model/instance.ts';
import type { Ctx } from '../context.ts';
import { enqueuePools } from '../hosts/wake.ts';
import { failUnsent, foldAnswer } from '../last-op.ts';
import type { Reconciler } from '../runtime/reconciler.ts';
import { decide, desiredVolumes } from './placement.ts';
import { planInstance, type DesiredDisk } from './plan.ts';
import { instanceOp } from './vm-definition.ts';

export class InstanceReconciler implements Reconciler {
  readonly kind = 'instance';

  constructor(private readonly ctx: Ctx) {}

  async reconcile(id: string): Promise<void> {
    const { ctx } = this;
    const repo = ctx.store.instances;
    let inst = await repo.get(id);
    if (!inst) return;
    inst = await foldAnswer(ctx, repo, inst);
    if (!inst) return;

    if (inst.status.phase !== 'deleting' && !inst.status.hostId) {
      await this.place(inst);
      inst = await repo.get(id);
      if (!inst || !inst.status.hostId) return;
    }

    const hostId = inst.status.hostId;
    const hub = ctx.hub();
    const host = hostId ? await ctx.store.hosts.get(hostId) : undefined;
    const volumes = await desiredVolumes(ctx, inst);
    const waiting = volumes.find((v) => v.status.hostId !== hostId || !hostId || !hub.volume(hostId, v.id));
    const noBootVolume = await this.bootVolumeMissing(
      inst,
      volumes.map((v) => v.id),
    );
    const desiredDisks: DesiredDisk[] = volumes.map((v) => ({ volumeId: v.id, boot: v.id === inst!.spec.bootVolume, tag: `g${v.generation}` }));
    const plan = planInstance(inst, {
      hostExists: !!host,
      hostName: host?.name,
      hostConnected: !!hostId && hub.isConnected(hostId),
      vm: hostId ? hub.vm(hostId, id) : undefined,
      lastOpInFlight: ctx.ops.inFlight(inst.status.lastOp?.opId),
      now: ctx.clock.now(),
      desiredDisks,
      disksWaiting: noBootVolume ?? (waiting ? `waiting for volume ${waiting.name} to be ready on the instance's host` : undefined),
    });

    if (plan.remove) return this.remove(inst);
    // The balloon controller writes the memory part meanwhile; keep its latest.
    const wrote = await ctx.status.write(repo, inst, (st) => ({ ...plan.status, memory: st.memory }));
    const startOp = inst.status.lastOp;
    if (
      wrote &&
      plan.status.phase === 'running' &&
      inst.status.phase !== 'running' &&
      startOp &&
      (startOp.kind === 'vm.start' || startOp.kind === 'vm.restart')
    ) {
      ctx.metrics.instanceStart.observe((ctx.clock.now().getTime() - Date.parse(startOp.at)) / 1000);
    }
    if (!plan.send || !hostId) return;
    if (!wrote && JSON.stringify(plan.status) !== JSON.stringify(inst.status)) return; // superseded
    const op = await instanceOp(ctx, inst, plan.send.opId, plan.send.kind, desiredDisks, plan.send.volumeId, plan.send.force);
    if ('error' in op) return failUnsent(ctx, repo, inst, plan.send, op.error);
    ctx.ops.send({ kind: 'instance', key: id }, hostId, op).catch(() => undefined);
  }

  /**
   * An instance of a disk image is made in steps (the instance, then its boot volume): a run may
   * come between them, and must wait rather than start a VM with no disk to boot.
   */
  private async bootVolumeMissing(inst: Instance, have: string[]): Promise<string | undefined> {
    if (inst.spec.bootVolume) return have.includes(inst.spec.bootVolume) ? undefined : `waiting for its boot volume ${inst.spec.bootVolume}`;
    if (!inst.spec.image) return undefined;
    const image = await this.ctx.store.images.find(inst.spec.image);
    return image?.spec.kind === 'disk' ? `waiting for its boot volume (a clone of disk image ${image.name})` : undefined;
  }

  /** The VM is gone: release the volumes it used, and delete the ones made for it. */
  private async remove(inst: Instance): Promise<void> {
    const { ctx } = this;
    const id = inst.id;
    for (const v of await ctx.store.volumes.list()) {
      if (v.spec.ownedBy === id) await ctx.status.edit(ctx.store.volumes, v.id, (st) => ({ ...st, phase: 'deleting' as const }));
      else if (v.spec.attachedTo === id) await ctx.store.volumes.update(v.id, (cur) => ({ spec: { ...cur.spec, attachedTo: undefined } }));
      else continue;
      ctx.runtime.enqueue('volume', v.id);
    }
    // Its addresses are free again only now that its VM (and taps) are gone; released before the
    // record goes, so no claim ever outlives its instance.
    await ctx.store.claims.releaseInstance(id);
    await ctx.store.instances.delete(id);
    await ctx.ops.forgetOwner({ kind: 'instance', key: id });
    this.enqueueNetworksOf(inst);
    ctx.log.info({ instance: inst.name }, 'instance deleted');
    enqueuePools(ctx);
  }

  private async place(inst: Instance): Promise<void> {
    const { ctx } = this;
    await ctx.serialize(async () => {
      const volumes = (await desiredVolumes(ctx, inst)).map((v) => ({
        sizeBytes: v.spec.sizeBytes,
        hostId: v.status.hostId,
        failed: v.status.phase === 'failed',
      }));
      const { verdict, admitted } = await decide(ctx, inst, volumes);
      const now = ctx.clock.now();
      await ctx.status.write(ctx.store.instances, inst, (st) => {
        if (verdict.kind === 'place') {
          st.hostId = verdict.hostId;
          st.hostName = verdict.hostName;
          // Recorded with the placement, in the same write: memory is never allocated without a host, nor the reverse.
          st.memory = admitted.get(verdict.hostId);
          st.phase = 'scheduled';
          st.message = undefined;
          st.conditions = setCondition(st.conditions, { type: 'Scheduled', status: 'True', reason: 'Placed', message: `placed on ${verdict.hostName}` }, now);
        } else {
          st.phase = 'pending';
          st.message = verdict.message;
          st.conditions = setCondition(
            st.conditions,
            { type: 'Scheduled', status: 'False', reason: verdict.kind === 'no-room' ? 'NoRoom' : 'Unschedulable', message: verdict.message },
            now,
          );
        }
      });
      if (verdict.kind !== 'place') return;
      ctx.log.info({ instance: inst.name, host: verdict.hostName, memory: admitted.get(verdict.hostId) }, 'instance scheduled');
      enqueuePools(ctx);
      this.enqueueNetworksOf(inst);
      // Volumes made for this instance follow it to its host.
      for (const v of await ctx.store.volumes.list())
        if (v.spec.ownedBy === inst.id || (v.spec.forInstance === inst.id && !v.status.hostId)) ctx.runtime.enqueue('volume', v.id);
    });
  }

  /** The networks of an instance's NICs: placed or gone, their hosts and flood lists change. */
  private enqueueNetworksOf(inst: Instance): void {
    for (const n of inst.spec.nics ?? []) this.ctx.runtime.enqueue('network', n.network);
  }
}
