/** Resources for reconciler tests, written straight into a store (what the API would have made). */
import type { Host } from '../../src/model/host.ts';
import type { Instance, InstanceSpec } from '../../src/model/instance.ts';
import type { Volume, VolumeSpec } from '../../src/model/volume.ts';
import { DEFAULT_POOL, DEFAULT_POOL_SPEC } from '../../src/model/memory.ts';
import type { Store } from '../../src/store/index.ts';
import { fakeInventory } from './fake-agent.ts';

/** The default tenant and memory pool, as a new controller makes them. */
export async function basics(store: Store): Promise<void> {
  await store.tenants.create({ name: 'default', spec: {}, status: { phase: 'active', conditions: [] } });
  await store.memoryPools.create({
    name: DEFAULT_POOL,
    spec: DEFAULT_POOL_SPEC,
    status: { phase: 'active', conditions: [], hosts: [], domains: [], tenants: [] },
  });
}

/** A trusted host that has sent a heartbeat at `at` (ready as long as heartbeats keep coming). */
export async function addHost(store: Store, id: string, at: Date, o: { memoryMiB?: number } = {}): Promise<Host> {
  return store.hosts.create({
    id,
    name: id,
    spec: { cordoned: false },
    status: {
      phase: 'ready',
      conditions: [],
      inventory: fakeInventory(o.memoryMiB ?? 8192),
      trust: { state: 'trusted', publicKey: 'k', requestedAt: at.toISOString() },
      agent: { connected: true, connectedAt: at.toISOString(), lastHeartbeatAt: at.toISOString() },
    },
  });
}

export async function addImage(store: Store, name: string): Promise<void> {
  await store.images.create({
    name,
    spec: {
      kind: 'kernel',
      cmdline: 'console=ttyS0',
      readyMarker: 'READY',
      guestPorts: [],
      files: { kernel: { sha256: 'a'.repeat(64), size: 1 }, initrd: { sha256: 'b'.repeat(64), size: 1 } },
    },
    status: { phase: 'ready', conditions: [], filesPresent: ['kernel', 'initrd'] },
  });
}

export async function addInstance(store: Store, name: string, spec: Partial<InstanceSpec> = {}): Promise<Instance> {
  return store.instances.create({
    name,
    spec: { image: 'tiny', vcpus: 1, memoryMiB: 256, tenant: 'default', powerState: 'running', forwardPorts: [], restartSeq: 0, ...spec },
    status: { phase: 'pending', conditions: [], network: { forwards: [] }, observedGeneration: 0 },
  });
}

export async function addVolume(store: Store, name: string, spec: Partial<VolumeSpec> = {}): Promise<Volume> {
  return store.volumes.create({
    name,
    spec: { sizeBytes: 64 * 1024 * 1024, tenant: 'default', ...spec } as VolumeSpec,
    status: { phase: 'pending', conditions: [], observedGeneration: 0 },
  });
}
