export type { Domain, Entitlement, FloorPolicy, PoolHost, PoolModel, Portion, TierKind, TierSpec, VmMemory } from './types.ts';
export { DEFAULT_FLOOR, committedByDomain, domainId, domainsOf, floorOf, perHost, portionDomain, resolveTiers, type HostMemoryInventory } from './domains.ts';
export {
  admit,
  capacityMiB,
  checkEntitlements,
  headroom,
  MIN_PORTION_MIB,
  planPortions,
  reservedMiB,
  type AdmitReason,
  type AdmitRequest,
  type Admission,
} from './allocation.ts';
export {
  entitlementOf,
  NO_ENTITLEMENT,
  planBalloons,
  type BalloonPlan,
  type DomainPressure,
  type Reclaim,
  type ReclaimKind,
  type TenantMemory,
} from './balloon-policy.ts';
export { waterFill, type FillItem } from './water-fill.ts';
