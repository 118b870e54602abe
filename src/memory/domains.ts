/** Where a pool's memory is: its domains, the floors of guests, and tiers read from host inventory. Pure. */
import type { Domain, FloorPolicy, PoolModel, Portion, TierSpec, VmMemory } from './types.ts';

export const DEFAULT_FLOOR: FloorPolicy = { minMiB: 128, fraction: 0.25 };

export function perHost(t: TierSpec): boolean {
  return t.kind !== 'pooled';
}

export function domainId(tier: TierSpec, hostId: string): string {
  return perHost(tier) ? `${tier.name}@${hostId}` : tier.name;
}

export function domainsOf(pool: PoolModel): Domain[] {
  const out: Domain[] = [];
  for (const t of pool.tiers) {
    if (perHost(t)) {
      for (const h of pool.hosts) out.push({ id: domainId(t, h.id), tier: t.name, kind: t.kind, hostId: h.id, capacityMiB: h.capacityMiB[t.name] ?? 0 });
    } else {
      out.push({ id: t.name, tier: t.name, kind: t.kind, capacityMiB: t.capacityMiB ?? 0 });
    }
  }
  return out;
}

export function tierOf(pool: PoolModel, name: string): TierSpec {
  const t = pool.tiers.find((x) => x.name === name);
  if (!t) throw new Error(`pool ${pool.name} has no tier ${name}`);
  return t;
}

export function portionDomain(pool: PoolModel, vm: { hostId: string }, p: Portion): string {
  return domainId(tierOf(pool, p.tier), vm.hostId);
}

/** The least a guest is ballooned to. */
export function floorOf(floor: FloorPolicy, sizeMiB: number): number {
  return Math.min(sizeMiB, Math.max(floor.minMiB, Math.ceil(floor.fraction * sizeMiB)));
}

/** Memory committed in each domain: the sum of the portions placed there. */
export function committedByDomain(pool: PoolModel, vms: VmMemory[]): Map<string, number> {
  const m = new Map<string, number>(domainsOf(pool).map((d) => [d.id, 0]));
  for (const vm of vms)
    for (const p of vm.portions) {
      const d = portionDomain(pool, vm, p);
      m.set(d, (m.get(d) ?? 0) + p.sizeMiB);
    }
  return m;
}

export interface HostMemoryInventory {
  id: string;
  name: string;
  allocatableMiB: number;
  numa: { id: number; cpus: string; memoryMiB: number }[];
}

/**
 * A pool's tiers and per-host capacities from its configuration and the hosts' NUMA layout: a
 * CPU-less NUMA node with memory is remote memory, so it becomes a `remote` tier (unless a
 * configured tier already names that node), and local capacity excludes it.
 */
export function resolveTiers(configured: TierSpec[], hosts: HostMemoryInventory[]): { tiers: TierSpec[]; hosts: PoolModel['hosts'] } {
  const tiers: TierSpec[] = configured.some((t) => t.kind === 'local')
    ? [...configured]
    : [{ name: 'local', kind: 'local', latencyClass: 'near' }, ...configured];
  const claimed = new Set(configured.filter((t) => t.hostNode !== undefined).map((t) => t.hostNode!));
  const cpuless = new Map<number, number>();
  for (const h of hosts)
    for (const n of h.numa) if (!n.cpus.trim() && n.memoryMiB > 0 && !claimed.has(n.id)) cpuless.set(n.id, (cpuless.get(n.id) ?? 0) + n.memoryMiB);
  for (const id of [...cpuless.keys()].sort((a, b) => a - b)) tiers.push({ name: `node${id}`, kind: 'remote', hostNode: id, latencyClass: 'far' });
  const poolHosts = hosts.map((h) => {
    const capacityMiB: Record<string, number> = {};
    const remoteTotal = h.numa.filter((n) => !n.cpus.trim()).reduce((s, n) => s + n.memoryMiB, 0);
    for (const t of tiers) {
      if (t.kind === 'local') capacityMiB[t.name] = Math.min(t.capacityMiB ?? Infinity, Math.max(0, h.allocatableMiB - remoteTotal));
      else if (t.kind === 'remote') {
        const node = h.numa.find((n) => n.id === t.hostNode);
        capacityMiB[t.name] = Math.min(t.capacityMiB ?? Infinity, node?.memoryMiB ?? 0);
      }
    }
    return { id: h.id, name: h.name, capacityMiB };
  });
  return { tiers, hosts: poolHosts };
}
