import { DEFAULT_FLOOR, type Entitlement, type PoolModel } from '../../../src/memory/index.ts';

/** One host, local DRAM capped at `local` MiB, and a pooled tier `cxl` of `pooled` MiB. */
export function pool(local: number, pooled = 0, maxOvercommit = 1.5): PoolModel {
  return {
    name: 'lab',
    tiers: [{ name: 'local', kind: 'local' }, ...(pooled ? [{ name: 'cxl', kind: 'pooled' as const, capacityMiB: pooled }] : [])],
    hosts: [{ id: 'h1', name: 'h1', capacityMiB: { local } }],
    maxOvercommit,
    floor: DEFAULT_FLOOR,
  };
}

export function ent(guaranteedMiB: number, limitMiB: number, o: Partial<Entitlement> = {}): Entitlement {
  return { guaranteedMiB, limitMiB, prefer: [], pooledShare: 0, ...o };
}
