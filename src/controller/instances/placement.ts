/**
 * Where an instance goes: the scheduler's pure verdict (placement/scheduler.ts) over the hosts'
 * capacity, the instance's volumes (it goes where they are; those not placed yet follow it) and
 * the memory pools' admission. Placement runs under the controller's placement lock.
 */
import { admit, type Portion } from '../../memory/index.ts';
import type { Host } from '../../model/host.ts';
import type { Instance } from '../../model/instance.ts';
import type { Volume } from '../../model/volume.ts';
import type { Ctx } from '../context.ts';
import { entitlementsIn, poolMembers, poolModel, tenantMayUse, vmsIn } from '../memory/pools.ts';
import { hostCapacity, newVolumeNeed } from '../placement/capacity.ts';
import { placementVerdict, type MemoryFit, type SchedulableHost, type Verdict } from '../placement/scheduler.ts';

/** An instance's volume as placement sees it: its size, and its host once it has one. */
interface PlacedVolume {
  sizeBytes: number;
  hostId?: string;
  failed?: boolean;
}

export type Admitted = Map<string, { pool: string; portions: Portion[] }>;

/** Hosts with their allocatable and allocated capacity, as the scheduler and the API see them. */
export function capacity(ctx: Ctx, o: { excludeVolume?: string } = {}): Promise<(SchedulableHost & { host: Host })[]> {
  return hostCapacity(ctx.store, ctx.allocation, { live: ctx.hub(), excludeVolume: o.excludeVolume });
}

/** Volumes the instance's VM should have: its boot volume first, then those attached to it. */
export async function desiredVolumes(ctx: Ctx, inst: Instance): Promise<Volume[]> {
  const all = await ctx.store.volumes.list();
  const boot = inst.spec.bootVolume ? all.filter((v) => v.id === inst.spec.bootVolume) : [];
  const attached = all.filter((v) => v.spec.attachedTo === inst.id && v.id !== inst.spec.bootVolume).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  return [...boot, ...attached];
}

/** Where an instance would go now given its volumes. The caller holds the placement lock. */
export async function decide(ctx: Ctx, inst: Pick<Instance, 'id' | 'spec'>, volumes: PlacedVolume[]): Promise<{ verdict: Verdict; admitted: Admitted }> {
  const pinned = new Set(volumes.map((v) => v.hostId).filter((h): h is string => !!h));
  const diskBytes = volumes.filter((v) => !v.hostId && !v.failed).reduce((n, v) => n + newVolumeNeed(v.sizeBytes).bytes, 0);
  let hosts = await capacity(ctx);
  const memory = await memoryFit(
    ctx,
    inst,
    hosts.map((h) => h.host),
  );
  if (pinned.size > 1)
    return { verdict: { kind: 'wait', message: `its volumes are on different hosts (${[...pinned].join(', ')})` }, admitted: memory.admitted };
  if (pinned.size === 1) hosts = hosts.filter((h) => pinned.has(h.id));
  let verdict = placementVerdict({ vcpus: inst.spec.vcpus, memoryMiB: inst.spec.memoryMiB, tenant: inst.spec.tenant, diskBytes }, hosts, memory.fits);
  if (verdict.kind !== 'place' && pinned.size === 1) verdict = { ...verdict, message: `${verdict.message} (its volumes pin it to host ${[...pinned][0]})` };
  return { verdict, admitted: memory.admitted };
}

/** The memory side of placement: on each host, whether its pool admits the instance, and with which portions. */
async function memoryFit(ctx: Ctx, inst: Pick<Instance, 'id' | 'spec'>, hosts: Host[]): Promise<{ fits: MemoryFit; admitted: Admitted }> {
  const [pools, tenants, instances] = await Promise.all([ctx.store.memoryPools.list(), ctx.store.tenants.list(), ctx.store.instances.list()]);
  const members = poolMembers(pools, hosts);
  const tenant = tenants.find((t) => t.name === inst.spec.tenant);
  const others = instances.filter((i) => i.id !== inst.id);
  const admitted: Admitted = new Map();
  const views = new Map(
    pools.map((p) => {
      const model = poolModel(p, members.get(p.id)!, ctx.allocation);
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
