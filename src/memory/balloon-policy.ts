/**
 * The balloon policy: how much memory each guest of a pool holds, given the pool's capacity per
 * domain, the tenants' entitlements and what each guest uses. Pure and deterministic; the
 * controller and the simulator both run it.
 *
 * 1. A tenant holding more than its limit (its limit was lowered) gives back the difference.
 * 2. Each domain whose committed memory exceeds its capacity is relieved by the tenants holding
 *    memory there that are above their guarantee, in proportion to how far above they are, in
 *    two rounds: first free and cache memory (what guests do not use), from every such tenant;
 *    only if that is not enough, memory in use. So no tenant's busy guests lose memory in use
 *    while another tenant's guests in the same domain still have memory to spare. No tenant goes
 *    below its guarantee, no guest below its floor.
 * 3. Whatever cannot be reclaimed that way is a shortfall of the domain, reported, never taken.
 * Targets depend only on sizes, placement, entitlements and memory in use, not on the balloons'
 * current sizes, so a constant load gives constant targets: nothing oscillates.
 *
 * Balloon memory is attributed to the domain whose pressure asked for it. A guest's balloon is
 * not NUMA-aware, so on real remote memory the pages it frees may sit on another node; the
 * accounting is the intent the controller asks for (docs/memory.md).
 */
import { domainsOf, floorOf, portionDomain } from './domains.ts';
import type { Entitlement, PoolModel, VmMemory } from './types.ts';
import { waterFill } from './water-fill.ts';

export type ReclaimKind = 'free-cache' | 'in-use';
type ReclaimReason = 'over-limit' | 'pressure';

/** One line of the ledger: who gave how much, from which domain, of what, and why. */
export interface Reclaim {
  vmId: string;
  tenant: string;
  domain: string;
  mib: number;
  kind: ReclaimKind;
  reason: ReclaimReason;
}

export interface DomainPressure {
  domain: string;
  committedMiB: number;
  capacityMiB: number;
  /** committed − capacity, when positive. */
  excessMiB: number;
  /** What could not be reclaimed without breaking a guarantee or a floor. */
  shortMiB: number;
}

export interface TenantMemory {
  tenant: string;
  committedMiB: number;
  reclaimedMiB: number;
  /** committed − reclaimed: what its guests may hold. */
  heldMiB: number;
  guaranteedMiB: number;
  limitMiB: number;
}

export interface BalloonPlan {
  /** Guest memory each instance may hold (its balloon target), by instance id. */
  targets: Map<string, number>;
  reclaims: Reclaim[];
  pressure: DomainPressure[];
  tenants: Map<string, TenantMemory>;
}

export const NO_ENTITLEMENT: Entitlement = { guaranteedMiB: 0, limitMiB: Number.MAX_SAFE_INTEGER, prefer: [], pooledShare: 0 };

interface VmState {
  vm: VmMemory;
  floor: number;
  reclaimed: number;
  /** Free and cache memory not yet taken. */
  soft: number;
  /** Unreclaimed memory per domain, in portion order. */
  avail: Map<string, number>;
}

export function entitlementOf(ents: ReadonlyMap<string, Entitlement>, tenant: string): Entitlement {
  return ents.get(tenant) ?? NO_ENTITLEMENT;
}

export function planBalloons(pool: PoolModel, ents: ReadonlyMap<string, Entitlement>, vms: VmMemory[]): BalloonPlan {
  const state = new Map<string, VmState>();
  // Ids in code-unit order: the order only has to be stable (localeCompare costs a collation per comparison).
  for (const vm of [...vms].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
    const floor = floorOf(pool.floor, vm.sizeMiB);
    const avail = new Map<string, number>();
    for (const p of vm.portions) {
      const d = portionDomain(pool, vm, p);
      avail.set(d, (avail.get(d) ?? 0) + p.sizeMiB);
    }
    // Without statistics nothing is known to be free: only memory in use is left to take.
    const used = vm.usedMiB ?? vm.sizeMiB;
    state.set(vm.id, { vm, floor, reclaimed: 0, soft: Math.max(0, vm.sizeMiB - Math.max(used, floor)), avail });
  }
  const byTenant = new Map<string, VmState[]>();
  for (const s of state.values()) {
    const list = byTenant.get(s.vm.tenant);
    if (list) list.push(s);
    else byTenant.set(s.vm.tenant, [s]);
  }
  const held = (t: string) => (byTenant.get(t) ?? []).reduce((n, s) => n + s.vm.sizeMiB - s.reclaimed, 0);
  const room = (s: VmState) => s.vm.sizeMiB - s.floor - s.reclaimed;
  const reclaims: Reclaim[] = [];

  const take = (s: VmState, mib: number, kind: ReclaimKind, reason: ReclaimReason, domain?: string) => {
    if (mib <= 0) return;
    s.reclaimed += mib;
    if (kind === 'free-cache') s.soft -= mib;
    // A reclaim for a domain counts there; one for the tenant as a whole from its last-placed memory first.
    const order = domain ? [domain] : [...s.avail.keys()].reverse();
    let left = mib;
    for (const d of order) {
      const n = Math.min(left, s.avail.get(d) ?? 0);
      if (n <= 0) continue;
      s.avail.set(d, s.avail.get(d)! - n);
      reclaims.push({ vmId: s.vm.id, tenant: s.vm.tenant, domain: d, mib: n, kind, reason });
      left -= n;
    }
  };

  const capIn = (s: VmState, domain?: string) => Math.max(0, Math.min(room(s), domain ? (s.avail.get(domain) ?? 0) : room(s)));
  const capOf = (s: VmState, kind: ReclaimKind, domain?: string) => (kind === 'free-cache' ? Math.min(s.soft, capIn(s, domain)) : capIn(s, domain));

  /** Takes up to `amount` from a tenant's guests, of the given kinds in order, optionally only from one domain. */
  const fromTenant = (tenant: string, amount: number, reason: ReclaimReason, kinds: readonly ReclaimKind[], domain?: string): number => {
    const guests = (byTenant.get(tenant) ?? []).filter((s) => !domain || (s.avail.get(domain) ?? 0) > 0);
    let left = amount;
    for (const kind of kinds) {
      if (left <= 0) break;
      const items = guests.map((s) => {
        const cap = Math.max(0, capOf(s, kind, domain));
        return { key: s.vm.id, weight: cap, cap };
      });
      const shares = waterFill(left, items);
      for (const s of guests) {
        const n = shares.get(s.vm.id) ?? 0;
        take(s, n, kind, reason, domain);
        left -= n;
      }
    }
    return amount - left;
  };

  // 1. Limits.
  for (const tenant of [...byTenant.keys()].sort()) {
    const over = held(tenant) - entitlementOf(ents, tenant).limitMiB;
    if (over > 0) fromTenant(tenant, over, 'over-limit', ['free-cache', 'in-use']);
  }

  // 2. Pressure, domain by domain. Each domain's reclaims take only from that domain, so what is
  // committed and still held in every domain can be summed once, in one pass (not once per domain).
  const committedIn = new Map<string, number>();
  for (const vm of vms)
    for (const p of vm.portions) {
      const d = portionDomain(pool, vm, p);
      committedIn.set(d, (committedIn.get(d) ?? 0) + p.sizeMiB);
    }
  const heldIn = new Map<string, number>();
  for (const s of state.values()) for (const [d, n] of s.avail) heldIn.set(d, (heldIn.get(d) ?? 0) + n);
  const pressure: DomainPressure[] = [];
  for (const d of domainsOf(pool)) {
    const committedMiB = committedIn.get(d.id) ?? 0;
    // What is still held there after the limits took their share.
    const excess = (heldIn.get(d.id) ?? 0) - d.capacityMiB;
    if (excess <= 0) {
      if (committedMiB > d.capacityMiB)
        pressure.push({ domain: d.id, committedMiB, capacityMiB: d.capacityMiB, excessMiB: committedMiB - d.capacityMiB, shortMiB: 0 });
      continue;
    }
    let given = 0;
    for (const kind of ['free-cache', 'in-use'] as const) {
      if (given >= excess) break;
      const tenants = [...byTenant.keys()].sort().map((t) => {
        const above = Math.max(0, held(t) - entitlementOf(ents, t).guaranteedMiB);
        const reachable = (byTenant.get(t) ?? []).reduce((n, s) => n + capOf(s, kind, d.id), 0);
        return { key: t, weight: above, cap: Math.min(above, reachable) };
      });
      const shares = waterFill(excess - given, tenants);
      for (const [t, n] of shares) given += fromTenant(t, n, 'pressure', [kind], d.id);
    }
    pressure.push({ domain: d.id, committedMiB, capacityMiB: d.capacityMiB, excessMiB: committedMiB - d.capacityMiB, shortMiB: excess - given });
  }

  const targets = new Map<string, number>();
  for (const s of state.values()) targets.set(s.vm.id, s.vm.sizeMiB - s.reclaimed);
  const tenants = new Map<string, TenantMemory>();
  for (const t of new Set([...byTenant.keys(), ...ents.keys()])) {
    const committedMiB = (byTenant.get(t) ?? []).reduce((n, s) => n + s.vm.sizeMiB, 0);
    const reclaimedMiB = (byTenant.get(t) ?? []).reduce((n, s) => n + s.reclaimed, 0);
    const e = entitlementOf(ents, t);
    tenants.set(t, { tenant: t, committedMiB, reclaimedMiB, heldMiB: committedMiB - reclaimedMiB, guaranteedMiB: e.guaranteedMiB, limitMiB: e.limitMiB });
  }
  return { targets, reclaims, pressure, tenants };
}
