/**
 * Chooses the host for a volume that has none: its owner's, its source's, the one it asks for, or
 * the one with the most disk room (placement/disk-space.ts). A host it must go to that cannot hold
 * it now keeps it pending (room may be made there); one that never could fails it.
 */
import type { Volume } from '../../model/volume.ts';
import type { Ctx } from '../context.ts';
import { mayPlace } from '../host-clusters/plan.ts';
import { capacity } from '../instances/placement.ts';
import { newVolumeNeed } from '../placement/capacity.ts';
import { chooseVolumeHost, fitsDisk } from '../placement/disk-space.ts';

interface VolumePlacement {
  hostId?: string;
  wait?: string;
  error?: string;
  overcommitted?: string;
}

export async function placeVolume(ctx: Ctx, v: Volume): Promise<VolumePlacement> {
  const { store } = ctx;
  const need = newVolumeNeed(v.spec.sizeBytes);
  const overcommit = ctx.allocation.diskOvercommit;
  const hosts = await capacity(ctx, { excludeVolume: v.id });
  const pinnedTo = (hostId: string, why: string): VolumePlacement => {
    const h = hosts.find((x) => x.id === hostId);
    const f = fitsDisk(h?.name ?? hostId, h?.disk, need, overcommit);
    if (f.ok) return { hostId, overcommitted: f.overcommitted };
    return f.never ? { error: `${f.message} (${why})` } : { wait: `${f.message}; waiting for room there (${why})` };
  };
  if (v.spec.host) {
    const h = await store.hosts.find(v.spec.host);
    return h ? pinnedTo(h.id, 'the volume asks for that host') : { error: `host '${v.spec.host}' does not exist` };
  }
  if (v.spec.forInstance && !v.spec.attachedTo && !v.spec.ownedBy) {
    const inst = await store.instances.get(v.spec.forInstance);
    if (!inst) return { error: `instance ${v.spec.forInstance}, which it was made for, is gone` };
    return inst.status.hostId
      ? pinnedTo(inst.status.hostId, `it is made for instance ${inst.name}, which is there`)
      : { wait: `waiting for instance ${inst.name} to be placed` };
  }
  if (v.spec.ownedBy || v.spec.attachedTo) {
    const owner = await store.instances.get((v.spec.ownedBy ?? v.spec.attachedTo)!);
    if (owner?.status.hostId) return pinnedTo(owner.status.hostId, `its instance ${owner.name} is there`);
    if (v.spec.ownedBy) return { wait: 'waiting for its instance to be placed' };
  }
  if (v.spec.source && 'snapshot' in v.spec.source) {
    const snap = await store.snapshots.get(v.spec.source.snapshot);
    const src = snap ? await store.volumes.get(snap.spec.volume) : undefined;
    if (!src) return { error: `source snapshot ${v.spec.source.snapshot} is gone` };
    return src.status.hostId
      ? pinnedTo(src.status.hostId, `a clone lives with its source volume ${src.name}`)
      : { wait: `waiting for volume ${src.name} to be placed` };
  }
  if (v.spec.source && 'backup' in v.spec.source) {
    // The host that made the backup sees its repository; another host would need the same path.
    const b = await store.backups.get(v.spec.source.backup);
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
