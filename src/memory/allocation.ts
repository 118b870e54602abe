/**
 * Allocation: which tiers an instance's memory comes from, and whether a pool can admit it.
 * Pure; the scheduler calls `admit` for each candidate host, the simulator for each arrival.
 */
import { entitlementOf, planBalloons } from './balloon-policy.ts';
import { committedByDomain, domainId, domainsOf, floorOf, tierOf } from './domains.ts';
import type { Entitlement, PoolModel, Portion, TierSpec, VmMemory } from './types.ts';

/** Portions smaller than this would make guest NUMA nodes too small to be useful; they go elsewhere. */
export const MIN_PORTION_MIB = 32;

export type AdmitReason = 'OverTenantLimit' | 'TenantLimit' | 'NoRoom' | 'GuaranteesAtRisk';

export type Admission = { ok: true; portions: Portion[] } | { ok: false; permanent: boolean; reason: AdmitReason; message: string };

export interface AdmitRequest {
  id: string;
  tenant: string;
  sizeMiB: number;
  hostId: string;
}

function preferred(pool: PoolModel, e: Entitlement): TierSpec[] {
  const named = e.prefer.map((n) => pool.tiers.find((t) => t.name === n)).filter((t): t is TierSpec => !!t);
  return named.length ? named : pool.tiers;
}

/** Room left in each domain for new commitments: capacity × overcommit − committed. */
export function headroom(pool: PoolModel, vms: VmMemory[]): Map<string, number> {
  const committed = committedByDomain(pool, vms);
  return new Map(domainsOf(pool).map((d) => [d.id, Math.floor(d.capacityMiB * pool.maxOvercommit) - (committed.get(d.id) ?? 0)]));
}

/**
 * The tiers an instance's memory comes from on a host: its pooled share on non-local tiers first,
 * then the rest in the tenant's order of preference, each up to its headroom. Undefined if it does not fit.
 */
export function planPortions(pool: PoolModel, e: Entitlement, vms: VmMemory[], req: { sizeMiB: number; hostId: string }): Portion[] | undefined {
  const room = headroom(pool, vms);
  const tiers = preferred(pool, e);
  const got = new Map<string, number>();
  let left = req.sizeMiB;
  const give = (t: TierSpec, want: number) => {
    const d = domainId(t, req.hostId);
    const n = Math.min(want, Math.max(0, (room.get(d) ?? 0) - (got.get(t.name) ?? 0)));
    if (n < MIN_PORTION_MIB && n < left) return;
    got.set(t.name, (got.get(t.name) ?? 0) + n);
    left -= n;
  };
  const share = Math.min(1, Math.max(0, e.pooledShare));
  if (share > 0) {
    let want = Math.round(req.sizeMiB * share);
    for (const t of tiers.filter((x) => x.kind !== 'local')) {
      if (want <= 0) break;
      const before = left;
      give(t, want);
      want -= before - left;
    }
  }
  for (const t of tiers) if (left > 0) give(t, left);
  if (left > 0) return undefined;
  // The first portion is where the guest's CPUs go: local memory when it has any.
  return [...got.entries()]
    .filter(([, n]) => n > 0)
    .map(([tier, sizeMiB]) => ({ tier, sizeMiB }))
    .sort((a, b) => Number(tierOf(pool, a.tier).kind !== 'local') - Number(tierOf(pool, b.tier).kind !== 'local'));
}

/** The memory a pool must keep for its tenants: each one's guarantee, or the floors of its guests if more. */
export function reservedMiB(pool: PoolModel, ents: ReadonlyMap<string, Entitlement>, vms: VmMemory[]): number {
  const floors = new Map<string, number>();
  for (const vm of vms) floors.set(vm.tenant, (floors.get(vm.tenant) ?? 0) + floorOf(pool.floor, vm.sizeMiB));
  let sum = 0;
  for (const t of new Set([...floors.keys(), ...ents.keys()])) sum += Math.max(entitlementOf(ents, t).guaranteedMiB, floors.get(t) ?? 0);
  return sum;
}

export function capacityMiB(pool: PoolModel): number {
  return domainsOf(pool).reduce((n, d) => n + d.capacityMiB, 0);
}

/** Whether the pool can take an instance on a host, and with which portions. */
export function admit(pool: PoolModel, ents: ReadonlyMap<string, Entitlement>, vms: VmMemory[], req: AdmitRequest): Admission {
  const e = entitlementOf(ents, req.tenant);
  const mine = vms.filter((v) => v.tenant === req.tenant).reduce((n, v) => n + v.sizeMiB, 0);
  if (req.sizeMiB > e.limitMiB) {
    return {
      ok: false,
      permanent: true,
      reason: 'OverTenantLimit',
      message: `${req.sizeMiB} MiB is more than tenant ${req.tenant}'s limit of ${e.limitMiB} MiB in pool ${pool.name}`,
    };
  }
  if (mine + req.sizeMiB > e.limitMiB) {
    return {
      ok: false,
      permanent: false,
      reason: 'TenantLimit',
      message: `tenant ${req.tenant} holds ${mine} MiB of its ${e.limitMiB} MiB limit in pool ${pool.name}; ${req.sizeMiB} MiB more would exceed it`,
    };
  }
  const portions = planPortions(pool, e, vms, req);
  if (!portions) {
    const room = headroom(pool, vms);
    const where = preferred(pool, e)
      .map((t) => `${t.name} ${Math.max(0, room.get(domainId(t, req.hostId)) ?? 0)} MiB`)
      .join(', ');
    return {
      ok: false,
      permanent: false,
      reason: 'NoRoom',
      message: `not enough free memory (needs ${req.sizeMiB} MiB; pool ${pool.name} has room for ${where} on this host)`,
    };
  }
  const after: VmMemory[] = [...vms, { id: req.id, tenant: req.tenant, hostId: req.hostId, sizeMiB: req.sizeMiB, portions }];
  const reserved = reservedMiB(pool, ents, after);
  const cap = capacityMiB(pool);
  if (reserved > cap) {
    return {
      ok: false,
      permanent: false,
      reason: 'GuaranteesAtRisk',
      message: `pool ${pool.name} must keep ${reserved} MiB for guarantees and guest floors with this instance, more than its ${cap} MiB`,
    };
  }
  // No domain committed beyond its capacity: nothing to reclaim anywhere, so no guarantee can fall
  // short, and the balloon plan (a pass over every guest of the pool, per candidate host) is not needed.
  const committed = committedByDomain(pool, after);
  if (domainsOf(pool).every((d) => (committed.get(d.id) ?? 0) <= d.capacityMiB)) return { ok: true, portions };
  const short = planBalloons(pool, ents, after).pressure.filter((p) => p.shortMiB > 0);
  if (short.length) {
    return {
      ok: false,
      permanent: false,
      reason: 'GuaranteesAtRisk',
      message: `pool ${pool.name} could not honour its guarantees: ${short.map((p) => `${p.domain} would be short by ${p.shortMiB} MiB`).join(', ')} even with every tenant above its guarantee ballooned to its floors`,
    };
  }
  return { ok: true, portions };
}

/** Whether a set of entitlements fits a pool: each guarantee within its limit, all guarantees within capacity. */
export function checkEntitlements(pool: PoolModel, ents: ReadonlyMap<string, Entitlement>): { ok: true } | { ok: false; message: string } {
  for (const [t, e] of ents) {
    if (e.guaranteedMiB > e.limitMiB) return { ok: false, message: `tenant ${t}: guarantee ${e.guaranteedMiB} MiB is above its limit ${e.limitMiB} MiB` };
    const unknown = e.prefer.filter((n) => !pool.tiers.some((x) => x.name === n));
    if (unknown.length)
      return { ok: false, message: `tenant ${t}: pool ${pool.name} has no tier ${unknown.join(', ')} (it has ${pool.tiers.map((x) => x.name).join(', ')})` };
  }
  const sum = [...ents.values()].reduce((n, e) => n + e.guaranteedMiB, 0);
  const cap = capacityMiB(pool);
  if (sum > cap) return { ok: false, message: `guarantees in pool ${pool.name} would add up to ${sum} MiB, more than its ${cap} MiB` };
  return { ok: true };
}
