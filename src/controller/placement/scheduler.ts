/**
 * Instance placement. Pure: hosts and their current allocations in, a host or an explanation out.
 * Filter: ready, not cordoned, not dedicated to another tenant, enough free vCPUs, memory the
 * host's pool can give (memory-pools.ts), and disk room for the volumes the instance brings that
 * are not placed yet (disk-space.ts). Weigh: most free memory first (spreads load; ties go to the
 * host name so placement is deterministic); an instance that brings volumes prefers hosts that
 * report their disk space to those that do not.
 */
import { formatBytes } from '../../common/bytes.ts';
import type { Quantity } from '../../model/host.ts';
import { mayPlace, type Dedication } from '../host-clusters/plan.ts';
import type { DiskPressurePolicy } from './disk-pressure.ts';
import type { DiskRoom } from './disk-space.ts';

export interface SchedulableHost {
  id: string;
  name: string;
  phase: string;
  cordoned: boolean;
  allocatable: Quantity;
  allocated: Quantity;
  /** In a tenant's dedicated host cluster: only that tenant's instances may land here. */
  dedicatedTo?: Dedication;
  /** Disk room for new volumes; absent when the host does not report its disk space. */
  disk?: DiskRoom;
}

/**
 * What an instance asks for; without a tenant it may land on no dedicated host. `diskBytes`: what
 * its volumes not placed yet may allocate (they follow it to its host).
 */
type PlacementRequest = Quantity & { tenant?: string; diskBytes?: number };

export type Placement =
  | { ok: true; hostId: string; hostName: string }
  | {
      ok: false;
      reason: 'NoHosts' | 'Unschedulable';
      message: string;
      /**
       * Set when some host is up and may take the instance but none has room for it now: the most
       * room any such host has ("most free memory on a host: 3.5 GiB (h1), ..."). The caller
       * decides whether to wait for room (placementVerdict).
       */
      mostFree?: string;
    };

export function freeOf(h: SchedulableHost): Quantity {
  return { vcpus: h.allocatable.vcpus - h.allocated.vcpus, memoryMiB: h.allocatable.memoryMiB - h.allocated.memoryMiB };
}

/** Whether a host's memory pool can take the request; the default only compares free memory. */
export type MemoryFit = (h: SchedulableHost) => { ok: true } | { ok: false; why: string };

export function schedule(req: PlacementRequest, hosts: SchedulableHost[], fitsMemory?: MemoryFit): Placement {
  if (hosts.length === 0) return { ok: false, reason: 'NoHosts', message: 'no hosts are registered; start an agent' };
  const why = new Map<string, number>();
  const note = (r: string) => why.set(r, (why.get(r) ?? 0) + 1);
  const eligible: SchedulableHost[] = [];
  const memory: MemoryFit =
    fitsMemory ?? ((h) => (freeOf(h).memoryMiB < req.memoryMiB ? { ok: false, why: `not enough free memory (needs ${req.memoryMiB} MiB)` } : { ok: true }));
  const candidates: SchedulableHost[] = [];
  for (const h of hosts) {
    const free = freeOf(h);
    if (h.cordoned) note('cordoned');
    else if (h.phase !== 'ready') note(`${h.phase}`);
    else if (!mayPlace(req.tenant, h.dedicatedTo)) note(`dedicated to tenant ${h.dedicatedTo!.tenant} (host cluster ${h.dedicatedTo!.cluster})`);
    else {
      eligible.push(h);
      if (free.vcpus < req.vcpus) note(`not enough free vCPUs (needs ${req.vcpus})`);
      else if (req.diskBytes && h.disk && h.disk.canPromiseBytes < req.diskBytes)
        note(`not enough disk space for its volumes (needs ${formatBytes(req.diskBytes)})`);
      else candidates.push(h);
    }
  }
  // Best first; memory admission (the pool's balloon plan, O(instances)) is asked of hosts in that
  // order and the first that admits wins: the same choice as asking every host, without the cost.
  const unknownDisk = (h: SchedulableHost) => Number(!!req.diskBytes && !h.disk);
  candidates.sort((a, b) => unknownDisk(a) - unknownDisk(b) || freeOf(b).memoryMiB - freeOf(a).memoryMiB || a.name.localeCompare(b.name));
  for (const h of candidates) {
    const m = memory(h);
    if (m.ok) return { ok: true, hostId: h.id, hostName: h.name };
    note(m.why);
  }
  const parts = [...why.entries()].map(([r, n]) => `${n} ${r}`);
  return {
    ok: false,
    reason: 'Unschedulable',
    message: `0/${hosts.length} hosts fit: ${parts.join(', ')}`,
    mostFree: eligible.length ? mostFree(eligible, req) : undefined,
  };
}

/** The most room any of these hosts has now, in the terms the request asks for: "most free memory: 3.5 GiB (h1)". */
function mostFree(hosts: SchedulableHost[], req: PlacementRequest): string {
  const best = (f: (h: SchedulableHost) => number) => hosts.reduce((a, b) => (f(b) > f(a) ? b : a));
  const mem = best((h) => freeOf(h).memoryMiB);
  const cpu = best((h) => freeOf(h).vcpus);
  const parts = [
    `most free memory on a host: ${formatBytes(Math.max(0, freeOf(mem).memoryMiB) * MiB)} (${mem.name})`,
    `most free vCPUs: ${Math.max(0, freeOf(cpu).vcpus)} (${cpu.name})`,
  ];
  const withDisk = hosts.filter((h) => h.disk);
  if (req.diskBytes && withDisk.length) {
    const d = withDisk.reduce((a, b) => (b.disk!.canPromiseBytes > a.disk!.canPromiseBytes ? b : a));
    parts.push(`most disk room for new volumes: ${formatBytes(Math.max(0, d.disk!.canPromiseBytes))} (${d.name})`);
  }
  return parts.join(', ');
}

const MiB = 1024 * 1024;

/**
 * What to do with an instance now: place it; refuse it, as no host could ever hold it; refuse it
 * unless the caller waits for room, as the hosts that may take it have no room now; or keep it
 * pending, as no host is up to take it (none registered, ready or uncordoned: that passes).
 */
export type Verdict =
  | { kind: 'place'; hostId: string; hostName: string }
  | { kind: 'never'; message: string }
  | { kind: 'no-room'; message: string }
  | { kind: 'wait'; message: string };

export function placementVerdict(req: PlacementRequest, hosts: SchedulableHost[], fitsMemory?: MemoryFit): Verdict {
  const ever = everFits(req, hosts);
  if (!ever.ok) return { kind: 'never', message: ever.message };
  const p = schedule(req, hosts, fitsMemory);
  if (p.ok) return { kind: 'place', hostId: p.hostId, hostName: p.hostName };
  return p.mostFree ? { kind: 'no-room', message: `${p.message}; ${p.mostFree}` } : { kind: 'wait', message: p.message };
}

/**
 * Whether a request could fit some host if it were empty. Used to refuse at the API what can
 * never run, instead of accepting an instance that would stay pending forever.
 */
export function everFits(
  req: Quantity & { diskBytes?: number },
  hosts: { name: string; allocatable: Quantity; disk?: Pick<DiskRoom, 'everBytes'> }[],
): { ok: true } | { ok: false; message: string } {
  if (hosts.length === 0) return { ok: true };
  // A host that does not report its disk space may hold anything, as far as anyone knows.
  const diskFits = (h: (typeof hosts)[number]) => !req.diskBytes || !h.disk || h.disk.everBytes >= req.diskBytes;
  if (hosts.some((h) => h.allocatable.vcpus >= req.vcpus && h.allocatable.memoryMiB >= req.memoryMiB && diskFits(h))) return { ok: true };
  const maxCpu = Math.max(...hosts.map((h) => h.allocatable.vcpus));
  const maxMem = Math.max(...hosts.map((h) => h.allocatable.memoryMiB));
  const disk = req.diskBytes ? ` with ${formatBytes(req.diskBytes)} of volumes` : '';
  const maxDisk = req.diskBytes ? `, and at most ${formatBytes(Math.max(...hosts.map((h) => h.disk?.everBytes ?? 0)))} of disk` : '';
  return {
    ok: false,
    message:
      `no host can ever hold ${req.vcpus} vCPUs and ${req.memoryMiB} MiB${disk} ` + `(hosts offer at most ${maxCpu} vCPUs and at most ${maxMem} MiB${maxDisk})`,
  };
}

export interface AllocationPolicy extends DiskPressurePolicy {
  /** vCPUs handed out per physical CPU thread. */
  cpuAllocationRatio: number;
  /** Memory kept back for the host itself and QEMU overhead. */
  reservedMemoryMiB: number;
  /**
   * What thin volumes may promise, as a multiple of a host's free disk space (disk-space.ts): 1
   * promises no more than the disk holds; above 1 volumes may together outgrow the disk.
   */
  diskOvercommit: number;
}

export const DEFAULT_ALLOCATION_POLICY: AllocationPolicy = {
  cpuAllocationRatio: 4,
  reservedMemoryMiB: 512,
  diskOvercommit: 1,
  diskPressureFreeRatio: 0.1,
  diskPressureMinFreeBytes: 2 * 1024 ** 3,
};

export function allocatableOf(
  inv: { cpu: { count: number }; memory: { totalMiB: number } },
  p: Pick<AllocationPolicy, 'cpuAllocationRatio' | 'reservedMemoryMiB'>,
): Quantity {
  return {
    vcpus: Math.floor(inv.cpu.count * p.cpuAllocationRatio),
    memoryMiB: Math.max(0, inv.memory.totalMiB - p.reservedMemoryMiB),
  };
}
