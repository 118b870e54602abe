/** Memory pools, tenants' entitlements in them, and an instance's memory as stored and served. */
import { Type, type Static } from 'typebox';
import { Condition, Name, resourceSchema, type Resource } from './common.ts';

/** 1 PiB in MiB: more than any pool will have, small enough that sums stay exact integers. */
const MAX_MIB = 2 ** 30;
const MiB = (description: string) => Type.Integer({ minimum: 0, maximum: MAX_MIB, description });

export const TierSpecSchema = Type.Object(
  {
    name: Name,
    kind: Type.Union([Type.Literal('local'), Type.Literal('remote'), Type.Literal('pooled')]),
    capacityMiB: Type.Optional(MiB('local and remote: cap per host (default: what the host has); pooled: the size of the shared memory')),
    hostNode: Type.Optional(Type.Integer({ minimum: 0, maximum: 1023, description: 'host NUMA node the memory sits on, where the host has one' })),
    latencyClass: Type.Optional(Type.Union([Type.Literal('near'), Type.Literal('far')])),
  },
  { additionalProperties: false },
);

export const FloorSchema = Type.Object(
  {
    minMiB: MiB('no guest is ballooned below this'),
    fraction: Type.Number({ minimum: 0, maximum: 1, description: 'nor below this share of its size' }),
  },
  { additionalProperties: false },
);

export const MemoryPoolSpec = Type.Object(
  {
    /** Host names or ids; absent: every host no other pool names (the default pool). */
    hosts: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { maxItems: 10_000 })),
    tiers: Type.Array(TierSpecSchema, { minItems: 1, maxItems: 16 }),
    maxOvercommit: Type.Number({ minimum: 1, maximum: 4, description: 'placement may commit up to this multiple of capacity; balloons cover the rest' }),
    floor: Type.Optional(FloorSchema),
  },
  { additionalProperties: false },
);
export type MemoryPoolSpec = Static<typeof MemoryPoolSpec>;

export const DomainUsage = Type.Object({
  domain: Type.String(),
  tier: Type.String(),
  kind: Type.String(),
  hostName: Type.Optional(Type.String()),
  capacityMiB: Type.Integer(),
  /** Sum of the portions placed here. */
  committedMiB: Type.Integer(),
  /** Of that, what balloons take back under the current plan. */
  balloonedMiB: Type.Integer(),
  /** capacity − (committed − ballooned). */
  freeMiB: Type.Integer(),
  /** What could not be reclaimed without breaking a guarantee or a floor. */
  shortMiB: Type.Integer(),
});
export type DomainUsage = Static<typeof DomainUsage>;

export const TenantUsage = Type.Object({
  tenant: Type.String(),
  guaranteedMiB: Type.Integer(),
  limitMiB: Type.Integer(),
  committedMiB: Type.Integer(),
  balloonedMiB: Type.Integer(),
  heldMiB: Type.Integer(),
  instances: Type.Integer(),
});
export type TenantUsage = Static<typeof TenantUsage>;

export const MemoryPoolStatus = Type.Object({
  phase: Type.String(),
  conditions: Type.Array(Condition),
  /** Host names the pool spans now. */
  hosts: Type.Array(Type.String()),
  domains: Type.Array(DomainUsage),
  tenants: Type.Array(TenantUsage),
  updatedAt: Type.Optional(Type.String()),
});
export type MemoryPoolStatus = Static<typeof MemoryPoolStatus>;

export const MemoryPoolResource = resourceSchema('MemoryPool', MemoryPoolSpec, MemoryPoolStatus);
export type MemoryPool = Resource<MemoryPoolSpec, MemoryPoolStatus>;

export const DEFAULT_POOL = 'default';
export const DEFAULT_POOL_SPEC: MemoryPoolSpec = { tiers: [{ name: 'local', kind: 'local' }], maxOvercommit: 1 };

export const EntitlementSpec = Type.Object(
  {
    pool: Type.String({ minLength: 1 }),
    guaranteedMiB: MiB('always available to the tenant: never ballooned below it'),
    limitMiB: MiB('the most its instances may hold in the pool'),
    prefer: Type.Optional(Type.Array(Name, { maxItems: 16, description: 'tier names in order of preference' })),
    pooledShare: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'share of each instance placed on non-local tiers first' })),
  },
  { additionalProperties: false },
);
export type EntitlementSpec = Static<typeof EntitlementSpec>;

export const InstanceMemory = Type.Object({
  pool: Type.String(),
  portions: Type.Array(Type.Object({ tier: Type.String(), sizeMiB: Type.Integer() })),
  balloon: Type.Optional(
    Type.Object({
      /** Guest memory the controller wants the guest to hold. */
      targetMiB: Type.Integer(),
      /** What the balloon driver reports the guest holds. */
      actualMiB: Type.Optional(Type.Integer()),
      /** Guest memory in use (not free, not cache), from its statistics. */
      usedMiB: Type.Optional(Type.Integer()),
      /** Why the target is below the instance's size. */
      reason: Type.Optional(Type.String()),
    }),
  ),
});
export type InstanceMemory = Static<typeof InstanceMemory>;
