/** Hosts as placement sees them: allocatable and allocated capacity, and the tenant a host is dedicated to. */
import type { Host, Quantity } from '../model/host.ts';
import type { Store } from '../store/index.ts';
import { dedicatedHosts } from './dedicated-hosts.ts';
import { allocatableOf, type AllocationPolicy, type SchedulableHost } from './scheduler.ts';

export async function hostCapacity(store: Store, allocation: AllocationPolicy): Promise<(SchedulableHost & { host: Host })[]> {
  const used = new Map<string, Quantity>();
  for (const i of await store.instances.list()) {
    if (!i.status.hostId) continue;
    const u = used.get(i.status.hostId) ?? { vcpus: 0, memoryMiB: 0 };
    used.set(i.status.hostId, { vcpus: u.vcpus + i.spec.vcpus, memoryMiB: u.memoryMiB + i.spec.memoryMiB });
  }
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
    }));
}
