/** Hosts as placement sees them: allocatable and allocated capacity, disk room, and the tenant a host is dedicated to. */
import { formatBytes } from '../../common/bytes.ts';
import { newVolumeMayAllocate } from '../../disk/index.ts';
import type { StorageReport } from '../../model/agent-protocol.ts';
import type { Host, Quantity } from '../../model/host.ts';
import type { Instance } from '../../model/instance.ts';
import type { Volume } from '../../model/volume.ts';
import type { Store } from '../../store/index.ts';
import { dedicatedHosts } from '../host-clusters/plan.ts';
import { diskRoom, type BoundVolume, type DiskNeed, type DiskRoom } from './disk-space.ts';
import { allocatableOf, type AllocationPolicy, type SchedulableHost } from './scheduler.ts';

/** The agents' latest reports (the agent hub): storage figures and volumes from the same report. */
interface LiveStorage {
  /** Undefined when the host's agent is not connected or does not report its disk space. */
  storage(hostId: string): StorageReport | undefined;
  volume(hostId: string, volumeId: string): { sizeBytes: number } | undefined;
}

interface CapacityOptions {
  live?: LiveStorage;
  /** A volume being placed: not counted as bound for its owner's host (it is what asks for room). */
  excludeVolume?: string;
}

/**
 * The volumes placement counts on each host: those placed there, and those not placed yet whose
 * instance is (they follow it). Failed volumes, and volumes being deleted that the report no longer
 * has, are not counted: whatever of them diskd still has is in its figures already. With a live report, a volume's reported size comes from that same report;
 * otherwise (the agent away) from the volume's status, the last size a report gave.
 */
export function boundVolumes(hostId: string, volumes: Volume[], instances: Instance[], live: LiveStorage | undefined, excludeVolume?: string): BoundVolume[] {
  return boundVolumesByHost(volumes, instances, () => live, excludeVolume).get(hostId) ?? [];
}

/** boundVolumes of every host in one pass (per host, it was a pass over every instance and volume: 500 hosts, 10,000 instances). */
function boundVolumesByHost(
  volumes: Volume[],
  instances: Instance[],
  liveOf: (hostId: string) => LiveStorage | undefined,
  excludeVolume?: string,
): Map<string, BoundVolume[]> {
  const hostOf = new Map(instances.map((i) => [i.id, i.status.hostId]));
  const out = new Map<string, BoundVolume[]>();
  for (const v of volumes) {
    if (v.id === excludeVolume || v.status.phase === 'failed') continue;
    const owner = v.spec.ownedBy ?? v.spec.attachedTo;
    const hostId = v.status.hostId || (v.status.phase !== 'deleting' && owner ? hostOf.get(owner) : undefined);
    if (!hostId) continue;
    const live = liveOf(hostId);
    const reportedSizeBytes = live ? live.volume(hostId, v.id)?.sizeBytes : v.status.sizeBytes;
    // Being deleted and gone from the report: nothing left to count.
    if (v.status.phase === 'deleting' && (reportedSizeBytes === undefined || !live)) continue;
    const list = out.get(hostId) ?? [];
    list.push({ sizeBytes: v.spec.sizeBytes, reportedSizeBytes });
    out.set(hostId, list);
  }
  return out;
}

export async function hostCapacity(store: Store, allocation: AllocationPolicy, o: CapacityOptions = {}): Promise<(SchedulableHost & { host: Host })[]> {
  const instances = await store.instances.list();
  const volumes = await store.volumes.list();
  const used = new Map<string, Quantity>();
  for (const i of instances) {
    if (!i.status.hostId) continue;
    const u = used.get(i.status.hostId) ?? { vcpus: 0, memoryMiB: 0 };
    used.set(i.status.hostId, { vcpus: u.vcpus + i.spec.vcpus, memoryMiB: u.memoryMiB + i.spec.memoryMiB });
  }
  const bound = boundVolumesByHost(volumes, instances, (hostId) => (o.live?.storage(hostId) ? o.live : undefined), o.excludeVolume);
  const disk = (h: Host): DiskRoom | undefined => {
    const figures = o.live?.storage(h.id) ?? h.status.storage;
    if (!figures) return undefined;
    return diskRoom(figures, bound.get(h.id) ?? [], allocation.diskOvercommit, newVolumeMayAllocate);
  };
  const dedicated = dedicatedHosts(await store.hostClusters.list());
  return (await store.hosts.list())
    .filter((h) => h.status.inventory)
    .map((h) => ({
      host: h,
      id: h.id,
      name: h.name,
      phase: h.status.phase,
      cordoned: h.spec.cordoned,
      allocatable: allocatableOf(h.status.inventory!, allocation),
      allocated: used.get(h.id) ?? { vcpus: 0, memoryMiB: 0 },
      dedicatedTo: dedicated.get(h.id),
      disk: disk(h),
    }));
}

/** What a volume not made yet asks of its host's disk. */
export function newVolumeNeed(sizeBytes: number): DiskNeed {
  const bytes = newVolumeMayAllocate(sizeBytes);
  return { bytes, what: `a volume of ${formatBytes(sizeBytes)} (it may allocate ${formatBytes(bytes)} with its journal)` };
}
