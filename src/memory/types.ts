/**
 * The vocabulary of memory pooling, free of I/O: the controller builds these from the store and
 * the agents' reports, the simulator from traces, and both run the same functions on them.
 */

/**
 * local: each host's own DRAM, on its CPU NUMA nodes (a domain per host).
 * remote: memory only one host reaches, on a CPU-less NUMA node such as a CXL expander (a domain per host).
 * pooled: memory several hosts share, such as a CXL pool device (one domain for the pool).
 */
export type TierKind = 'local' | 'remote' | 'pooled';

/** A tier of a pool as the operator (or the hardware) describes it. */
export interface TierSpec {
  name: string;
  kind: TierKind;
  /** local and remote: cap per host (default: what the host has); pooled: the pool's size. */
  capacityMiB?: number;
  /** The host NUMA node this tier's memory sits on (a CPU-less node for remote memory); none where it cannot be seen. */
  hostNode?: number;
  latencyClass?: 'near' | 'far';
}

export interface PoolHost {
  id: string;
  name: string;
  /** Capacity of each per-host tier (local, remote) on this host. */
  capacityMiB: Record<string, number>;
}

/** A guest may never be ballooned below max(minMiB, fraction × its size). */
export interface FloorPolicy {
  minMiB: number;
  fraction: number;
}

export interface PoolModel {
  name: string;
  tiers: TierSpec[];
  hosts: PoolHost[];
  /** Placement may commit up to this multiple of a domain's capacity; balloons cover the difference. 1 = no overcommit. */
  maxOvercommit: number;
  floor: FloorPolicy;
}

/** A tenant's share of one pool. */
export interface Entitlement {
  /** Always available to the tenant: it is never ballooned below this, and the pool keeps room for it. */
  guaranteedMiB: number;
  /** The most its instances may hold (sizes at admission; ballooned down to it when lowered). */
  limitMiB: number;
  /** Tier names in the order the tenant wants its memory from. */
  prefer: string[];
  /** Share of each instance placed on pooled tiers first (the part expected to stay untouched), 0..1. */
  pooledShare: number;
}

export interface Portion {
  tier: string;
  sizeMiB: number;
}

/** An instance as the policy sees it. */
export interface VmMemory {
  id: string;
  tenant: string;
  hostId: string;
  sizeMiB: number;
  portions: Portion[];
  /** Memory in use in the guest (total − free − cache), from its balloon statistics; unknown until reported. */
  usedMiB?: number;
}

/** One place memory comes from: a host's local DRAM, or a pooled tier. */
export interface Domain {
  id: string;
  tier: string;
  kind: TierKind;
  hostId?: string;
  capacityMiB: number;
}
