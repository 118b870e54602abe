/**
 * Instance placement. Pure: hosts and their current allocations in, a host or an explanation out.
 * Filter: ready, not cordoned, not dedicated to another tenant, enough free vCPUs, and memory the
 * host's pool can give (memory-pools.ts). Weigh: most free memory first (spreads load; ties go to
 * the host name so placement is deterministic).
 */
import type { Quantity } from '../model/host.ts';
import { mayPlace, type Dedication } from './dedicated-hosts.ts';

export interface SchedulableHost {
  id: string;
  name: string;
  phase: string;
  cordoned: boolean;
  allocatable: Quantity;
  allocated: Quantity;
  /** In a tenant's dedicated host cluster: only that tenant's instances may land here. */
  dedicatedTo?: Dedication;
}

/** What an instance asks for; without a tenant it may land on no dedicated host. */
export type PlacementRequest = Quantity & { tenant?: string };

export type Placement =
  | { ok: true; hostId: string; hostName: string }
  | { ok: false; reason: 'NoHosts' | 'Unschedulable'; message: string };

export function freeOf(h: SchedulableHost): Quantity {
  return { vcpus: h.allocatable.vcpus - h.allocated.vcpus, memoryMiB: h.allocatable.memoryMiB - h.allocated.memoryMiB };
}

/** Whether a host's memory pool can take the request; the default only compares free memory. */
export type MemoryFit = (h: SchedulableHost) => { ok: true } | { ok: false; why: string };

export function schedule(req: PlacementRequest, hosts: SchedulableHost[], fitsMemory?: MemoryFit): Placement {
  if (hosts.length === 0) return { ok: false, reason: 'NoHosts', message: 'no hosts are registered; start an agent' };
  const why = new Map<string, number>();
  const note = (r: string) => why.set(r, (why.get(r) ?? 0) + 1);
  const fits: SchedulableHost[] = [];
  const memory: MemoryFit =
    fitsMemory ?? ((h) => (freeOf(h).memoryMiB < req.memoryMiB ? { ok: false, why: `not enough free memory (needs ${req.memoryMiB} MiB)` } : { ok: true }));
  for (const h of hosts) {
    const free = freeOf(h);
    if (h.cordoned) note('cordoned');
    else if (h.phase !== 'ready') note(`${h.phase}`);
    else if (!mayPlace(req.tenant, h.dedicatedTo)) note(`dedicated to tenant ${h.dedicatedTo!.tenant} (host cluster ${h.dedicatedTo!.cluster})`);
    else if (free.vcpus < req.vcpus) note(`not enough free vCPUs (needs ${req.vcpus})`);
    else {
      const m = memory(h);
      if (m.ok) fits.push(h);
      else note(m.why);
    }
  }
  if (fits.length === 0) {
    const parts = [...why.entries()].map(([r, n]) => `${n} ${r}`);
    return { ok: false, reason: 'Unschedulable', message: `0/${hosts.length} hosts fit: ${parts.join(', ')}` };
  }
  fits.sort((a, b) => freeOf(b).memoryMiB - freeOf(a).memoryMiB || a.name.localeCompare(b.name));
  const best = fits[0]!;
  return { ok: true, hostId: best.id, hostName: best.name };
}

/**
 * Whether a request could fit some host if it were empty. Used to refuse at the API what can
 * never run, instead of accepting an instance that would stay pending forever.
 */
export function everFits(req: Quantity, hosts: { name: string; allocatable: Quantity }[]): { ok: true } | { ok: false; message: string } {
  if (hosts.length === 0) return { ok: true };
  if (hosts.some((h) => h.allocatable.vcpus >= req.vcpus && h.allocatable.memoryMiB >= req.memoryMiB)) return { ok: true };
  const maxCpu = Math.max(...hosts.map((h) => h.allocatable.vcpus));
  const maxMem = Math.max(...hosts.map((h) => h.allocatable.memoryMiB));
  return {
    ok: false,
    message:
      `no host can ever hold ${req.vcpus} vCPUs and ${req.memoryMiB} MiB ` +
      `(hosts offer at most ${maxCpu} vCPUs and at most ${maxMem} MiB)`,
  };
}

export interface AllocationPolicy {
  /** vCPUs handed out per physical CPU thread. */
  cpuAllocationRatio: number;
  /** Memory kept back for the host itself and QEMU overhead. */
  reservedMemoryMiB: number;
}

export const DEFAULT_ALLOCATION_POLICY: AllocationPolicy = { cpuAllocationRatio: 4, reservedMemoryMiB: 512 };

export function allocatableOf(inv: { cpu: { count: number }; memory: { totalMiB: number } }, p: AllocationPolicy): Quantity {
  return {
    vcpus: Math.floor(inv.cpu.count * p.cpuAllocationRatio),
    memoryMiB: Math.max(0, inv.memory.totalMiB - p.reservedMemoryMiB),
  };
}
