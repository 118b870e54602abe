import { Type, type Static } from 'typebox';
import { Condition, resourceSchema, type Resource } from './common.ts';
import { HostTrust } from './trust.ts';

const HOST_PHASES = ['discovered', 'pending-approval', 'trusted', 'ready', 'cordoned', 'draining', 'maintenance', 'lost', 'rejected', 'revoked'] as const;

export const Inventory = Type.Object({
  hostname: Type.String(),
  cpu: Type.Object({ model: Type.String(), count: Type.Integer(), sockets: Type.Integer(), coresPerSocket: Type.Integer(), flags: Type.Array(Type.String()) }),
  memory: Type.Object({ totalMiB: Type.Integer() }),
  numa: Type.Array(Type.Object({ id: Type.Integer(), cpus: Type.String(), memoryMiB: Type.Integer() })),
  nics: Type.Array(
    Type.Object({
      name: Type.String(),
      mac: Type.String(),
      state: Type.String(),
      mtu: Type.Integer(),
      driver: Type.String(),
      speedMbps: Type.Union([Type.Integer(), Type.Null()]),
    }),
  ),
  disks: Type.Array(Type.Object({ name: Type.String(), sizeBytes: Type.Integer(), rotational: Type.Boolean(), model: Type.String() })),
  pci: Type.Array(Type.Object({ address: Type.String(), vendor: Type.String(), device: Type.String(), class: Type.String(), driver: Type.String() })),
  kvm: Type.Object({ usable: Type.Boolean(), reason: Type.String(), checkedAt: Type.String() }),
  accel: Type.Union([Type.Literal('kvm'), Type.Literal('tcg')]),
  os: Type.Object({ kernel: Type.String(), qemu: Type.String() }),
  /** Virtual networks on this host: the backend in use (chosen by probing the kernel), why, and the underlay VXLAN uses. */
  network: Type.Optional(
    Type.Object({
      backend: Type.Optional(Type.Union([Type.Literal('vxlan'), Type.Literal('vlan')])),
      reason: Type.String(),
      backends: Type.Array(Type.Object({ name: Type.String(), available: Type.Boolean(), reason: Type.String() })),
      underlay: Type.Optional(Type.Object({ address: Type.String(), dev: Type.String(), mtu: Type.Integer() })),
      underlayError: Type.Optional(Type.String()),
    }),
  ),
});
export type Inventory = Static<typeof Inventory>;

export const HostSpec = Type.Object({ cordoned: Type.Boolean() });
export type HostSpec = Static<typeof HostSpec>;

export const Quantity = Type.Object({ vcpus: Type.Integer(), memoryMiB: Type.Integer() });
export type Quantity = Static<typeof Quantity>;

/**
 * The host's disk space as its agent last reported it (recorded when it moves by 1% of the disk,
 * when the pressure condition would change, and otherwise at most every 15 seconds), and, added by
 * the API when it reads a host, what placement counts on it.
 */
export const HostStorage = Type.Object({
  /** Size of the file system that holds the host's volumes. */
  totalBytes: Type.Integer({ minimum: 0 }),
  /** What may still be written there. */
  freeBytes: Type.Integer({ minimum: 0 }),
  /** The volumes' virtual sizes, summed. */
  provisionedBytes: Type.Integer({ minimum: 0 }),
  /** What the volumes on the host may still allocate, summed. */
  mayAllocateBytes: Type.Integer({ minimum: 0 }),
  reportedAt: Type.String(),
  /** Derived (API): what the volumes placed here may still allocate, those not created or grown yet included. */
  promisedBytes: Type.Optional(Type.Integer()),
  /** Derived (API): what new volumes may still be promised here (free space × the disk overcommit, minus promisedBytes). */
  canPromiseBytes: Type.Optional(Type.Integer()),
});
export type HostStorage = Static<typeof HostStorage>;

export const HostStatus = Type.Object({
  phase: Type.Enum(HOST_PHASES),
  conditions: Type.Array(Condition),
  inventory: Type.Optional(Inventory),
  trust: Type.Optional(HostTrust),
  /** What the scheduler may hand out: inventory scaled by allocation ratios, minus host reservations. */
  allocatable: Type.Optional(Quantity),
  allocated: Type.Optional(Quantity),
  /** Disk space; absent until an agent that reports it connects. */
  storage: Type.Optional(HostStorage),
  agent: Type.Object({
    version: Type.Optional(Type.String()),
    connected: Type.Boolean(),
    connectedAt: Type.Optional(Type.String()),
    lastHeartbeatAt: Type.Optional(Type.String()),
  }),
});
export type HostStatus = Static<typeof HostStatus>;

export const HostResource = resourceSchema('Host', HostSpec, HostStatus);
export type Host = Resource<HostSpec, HostStatus>;
