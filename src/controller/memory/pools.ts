/**
 * From stored resources to the memory model: which hosts each pool spans, its tiers and
 * capacities, the tenants' entitlements in it and the instances placed in it. Pure.
 */
import { DEFAULT_FLOOR, resolveTiers, type Entitlement, type PoolModel, type VmMemory } from '../../memory/index.ts';
import type { Host } from '../../model/host.ts';
import type { Instance } from '../../model/instance.ts';
import type { MemoryPool } from '../../model/memory.ts';
import type { Tenant } from '../../model/tenant.ts';
import { formatBytes } from '../../common/bytes.ts';
import { allocatableOf, type AllocationPolicy } from '../placement/scheduler.ts';

/** Hosts named by a pool belong to it; the pool that names none (the default) takes every other host. */
export function poolMembers(pools: MemoryPool[], hosts: Host[]): Map<string, Host[]> {
  const out = new Map<string, Host[]>(pools.map((p) => [p.id, []]));
  const claimed = new Set<string>();
  for (const p of pools) {
    if (!p.spec.hosts) continue;
    for (const h of hosts) {
      if (claimed.has(h.id) || !(p.spec.hosts.includes(h.name) || p.spec.hosts.includes(h.id))) continue;
      claimed.add(h.id);
      out.get(p.id)!.push(h);
    }
  }
  const catchAll = pools.find((p) => !p.spec.hosts);
  if (catchAll) for (const h of hosts) if (!claimed.has(h.id)) out.get(catchAll.id)!.push(h);
  return out;
}

export function poolModel(pool: MemoryPool, members: Host[], allocation: AllocationPolicy): PoolModel {
  const inv = members
    .filter((h) => h.status.inventory)
    .map((h) => ({ id: h.id, name: h.name, allocatableMiB: allocatableOf(h.status.inventory!, allocation).memoryMiB, numa: h.status.inventory!.numa }));
  const { tiers, hosts } = resolveTiers(pool.spec.tiers, inv);
  return { name: pool.name, tiers, hosts, maxOvercommit: pool.spec.maxOvercommit, floor: pool.spec.floor ?? DEFAULT_FLOOR };
}

export function entitlementsIn(poolName: string, tenants: Tenant[]): Map<string, Entitlement> {
  const out = new Map<string, Entitlement>();
  for (const t of tenants) {
    const e = t.spec.memory?.find((x) => x.pool === poolName);
    if (e) out.set(t.name, { guaranteedMiB: e.guaranteedMiB, limitMiB: e.limitMiB, prefer: e.prefer ?? [], pooledShare: e.pooledShare ?? 0 });
  }
  return out;
}

/** A tenant with entitlements uses only the pools it has them in; one without may use any. */
export function tenantMayUse(tenant: Tenant | undefined, poolName: string): boolean {
  const ents = tenant?.spec.memory ?? [];
  return ents.length === 0 || ents.some((e) => e.pool === poolName);
}

/**
 * Instances holding memory in the pool: placed there, until they are removed. One placed before
 * pools existed (no recorded portions) holds its whole size in local memory of its host's pool.
 */
export function vmsIn(model: PoolModel, instances: Instance[]): VmMemory[] {
  const hostIds = new Set(model.hosts.map((h) => h.id));
  const local = model.tiers.find((t) => t.kind === 'local')!.name;
  return instances
    .filter((i) => i.status.hostId && (i.status.memory ? i.status.memory.pool === model.name : hostIds.has(i.status.hostId)))
    .map((i) => ({
      id: i.id,
      tenant: i.spec.tenant,
      hostId: i.status.hostId!,
      sizeMiB: i.spec.memoryMiB,
      portions: i.status.memory?.portions ?? [{ tier: local, sizeMiB: i.spec.memoryMiB }],
    }));
}

const mibText = (n: number) => formatBytes(n * 1024 * 1024);

/**
 * Tiers sized beyond what the pool's hosts can back, said for people; empty when all are backed.
 * A per-host tier (local, remote) caps what each host gives, so a cap above every host's memory
 * promises what no host has; a pooled tier is backed by the hosts' memory together (or by a
 * device they share, which the inventory does not show: hence the API's allowUnbacked). A pool
 * whose hosts have reported no inventory yet cannot be judged and is not refused.
 */
export function unbackedTiers(pool: Pick<MemoryPool, 'name' | 'spec'>, members: Host[], allocation: AllocationPolicy): string[] {
  const hosts = members.filter((h) => h.status.inventory).map((h) => ({ name: h.name, memoryMiB: allocatableOf(h.status.inventory!, allocation).memoryMiB }));
  if (!hosts.length) return [];
  const largest = hosts.reduce((a, b) => (b.memoryMiB > a.memoryMiB ? b : a));
  const together = hosts.reduce((n, h) => n + h.memoryMiB, 0);
  const out: string[] = [];
  for (const t of pool.spec.tiers) {
    if (t.capacityMiB === undefined) continue;
    if (t.kind === 'pooled' && t.capacityMiB > together) {
      out.push(
        `tier ${t.name} is ${mibText(t.capacityMiB)} of pooled memory, more than the ${hosts.length} host(s) of pool ${pool.name} have together (${mibText(together)} for guests)`,
      );
    } else if (t.kind !== 'pooled' && t.capacityMiB > largest.memoryMiB) {
      out.push(
        `tier ${t.name} gives up to ${mibText(t.capacityMiB)} of each host, more than any host of pool ${pool.name} has (the most: ${mibText(largest.memoryMiB)} for guests, on ${largest.name})`,
      );
    }
  }
  return out;
}
