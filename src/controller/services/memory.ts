/**
 * Memory pool use cases the API calls (create, change, delete a pool), and the checks that keep the
 * pools, tenants and instances consistent, which tenant changes run too. Changes run under the
 * placement lock, so no placement interleaves with their checks.
 */
import { checkEntitlements } from '../../memory/index.ts';
import { DEFAULT_POOL, type MemoryPool, type MemoryPoolSpec } from '../../model/memory.ts';
import type { Tenant, TenantSpec } from '../../model/tenant.ts';
import type { Ctx } from '../context.ts';
import { enqueuePools } from '../hosts/wake.ts';
import { entitlementsIn, poolMembers, poolModel, unbackedTiers, vmsIn } from '../memory/pools.ts';
import { ServiceError } from './errors.ts';

export interface PoolInput {
  hosts?: string[];
  tiers: MemoryPoolSpec['tiers'];
  maxOvercommit?: number;
  floor?: MemoryPoolSpec['floor'];
  /** Accept tiers larger than the pool's hosts can back (memory to be added); not stored. */
  allowUnbacked?: boolean;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** A change of a pool: `hosts: null` makes it the pool of every host no other pool names. */
export interface PoolPatch {
  hosts?: string[] | null;
  tiers?: MemoryPoolSpec['tiers'];
  maxOvercommit?: number;
  floor?: MemoryPoolSpec['floor'];
  allowUnbacked?: boolean;
}

/** The shape of a pool's tiers: unique names, one local tier at most, pooled tiers sized. */
function checkTiers(spec: MemoryPoolSpec): void {
  const names = spec.tiers.map((t) => t.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new ServiceError(400, 'invalid_request', `tier ${dup} is named twice`);
  if (spec.tiers.filter((t) => t.kind === 'local').length > 1)
    throw new ServiceError(400, 'invalid_request', "a pool has at most one local tier (each host's own DRAM)");
  for (const t of spec.tiers)
    if (t.kind === 'pooled' && !t.capacityMiB)
      throw new ServiceError(400, 'invalid_request', `pooled tier ${t.name} needs its capacityMiB (the size of the shared memory)`);
}

/**
 * Whether the pools, tenants and instances would still make sense with a changed pool or tenant:
 * hosts in one pool each, one catch-all pool, every entitlement naming a pool and fitting it, and
 * placed instances' tiers still there. Throws a refusal; nothing is written before it passes.
 */
export async function checkMemoryConfig(ctx: Ctx, next: { pools?: MemoryPool[]; tenants?: Tenant[] }): Promise<void> {
  const { store } = ctx;
  const [pools, tenants, hosts, instances] = await Promise.all([
    next.pools ?? store.memoryPools.list(),
    next.tenants ?? store.tenants.list(),
    store.hosts.list(),
    store.instances.list(),
  ]);
  const catchAll = pools.filter((p) => !p.spec.hosts);
  if (catchAll.length > 1)
    throw new ServiceError(409, 'conflict', `only one pool may take every unnamed host (${catchAll.map((p) => p.name).join(', ')} would)`);
  const namedBy = new Map<string, string>();
  for (const p of pools)
    for (const h of p.spec.hosts ?? []) {
      const host = hosts.find((x) => x.name === h || x.id === h);
      const key = host?.id ?? h;
      if (namedBy.has(key) && namedBy.get(key) !== p.name) throw new ServiceError(409, 'conflict', `host ${h} is already in memory pool ${namedBy.get(key)}`);
      namedBy.set(key, p.name);
    }
  for (const t of tenants)
    for (const e of t.spec.memory ?? []) {
      if (!pools.some((p) => p.name === e.pool))
        throw new ServiceError(422, 'unknown_pool', `tenant ${t.name}: memory pool '${e.pool}' does not exist (see: outrig memory pool list)`);
    }
  const members = poolMembers(pools, hosts);
  for (const p of pools) {
    const model = poolModel(p, members.get(p.id)!, ctx.allocation);
    const fit = checkEntitlements(model, entitlementsIn(p.name, tenants));
    if (!fit.ok) throw new ServiceError(422, 'entitlements_do_not_fit', fit.message);
    for (const vm of vmsIn(model, instances)) {
      const gone = vm.portions.find((x) => !model.tiers.some((t) => t.name === x.tier));
      if (gone) throw new ServiceError(409, 'in_use', `instance ${vm.id} has ${gone.sizeMiB} MiB in tier ${gone.tier} of pool ${p.name}`);
    }
  }
}

/** A tenant's entitlements: one per pool, each guarantee within its limit. */
export function checkTenantMemory(memory: TenantSpec['memory']): void {
  const pools = (memory ?? []).map((e) => e.pool);
  const dup = pools.find((p, i) => pools.indexOf(p) !== i);
  if (dup) throw new ServiceError(400, 'invalid_request', `pool ${dup} appears twice in the memory entitlements`);
  for (const e of memory ?? []) {
    if (e.guaranteedMiB > e.limitMiB)
      throw new ServiceError(422, 'invalid_entitlement', `pool ${e.pool}: guarantee ${e.guaranteedMiB} MiB is above the limit ${e.limitMiB} MiB`);
  }
}

/** A tenant's entitlements or a pool changed: re-plan the pools, and retry what waits for room. */
export async function memoryConfigChanged(ctx: Ctx): Promise<void> {
  enqueuePools(ctx);
  for (const i of await ctx.store.instances.list()) if (!i.status.hostId) ctx.runtime.enqueue('instance', i.id);
}

export class MemoryService {
  constructor(private readonly ctx: Ctx) {}

  async createPool(name: string, b: PoolInput): Promise<MemoryPool> {
    const { ctx } = this;
    const spec: MemoryPoolSpec = { hosts: b.hosts, tiers: b.tiers, maxOvercommit: b.maxOvercommit ?? 1, floor: b.floor };
    checkTiers(spec);
    const p = await ctx.serialize(async () => {
      const draft = {
        id: 'new',
        name,
        labels: {},
        annotations: {},
        spec,
        status: { phase: 'new', conditions: [], hosts: [], domains: [], tenants: [] },
        createdAt: '',
        updatedAt: '',
        generation: 1,
      };
      const pools = [...(await ctx.store.memoryPools.list()), draft];
      await checkMemoryConfig(ctx, { pools });
      await this.checkBacked(draft, pools, b.allowUnbacked);
      return ctx.store.memoryPools.create({ name, labels: b.labels, annotations: b.annotations, spec, status: draft.status });
    });
    await memoryConfigChanged(ctx);
    return p;
  }

  async updatePool(ref: string, b: PoolPatch): Promise<MemoryPool> {
    const { ctx } = this;
    const cur = await ctx.store.memoryPools.mustFind(ref);
    const spec: MemoryPoolSpec = {
      ...cur.spec,
      hosts: b.hosts === null ? undefined : (b.hosts ?? cur.spec.hosts),
      tiers: b.tiers ?? cur.spec.tiers,
      maxOvercommit: b.maxOvercommit ?? cur.spec.maxOvercommit,
      floor: b.floor ?? cur.spec.floor,
    };
    checkTiers(spec);
    const p = await ctx.serialize(async () => {
      const pools = (await ctx.store.memoryPools.list()).map((x) => (x.id === cur.id ? { ...x, spec } : x));
      await checkMemoryConfig(ctx, { pools });
      await this.checkBacked({ ...cur, spec }, pools, b.allowUnbacked);
      return ctx.store.memoryPools.update(cur.id, () => ({ spec }));
    });
    await memoryConfigChanged(ctx);
    return p;
  }

  /** Deletes a pool no tenant has entitlements in and no instance holds memory in; never the default one. */
  async removePool(ref: string): Promise<void> {
    const { store } = this.ctx;
    const p = await store.memoryPools.mustFind(ref);
    if (p.name === DEFAULT_POOL) throw new ServiceError(409, 'protected', 'the default memory pool cannot be deleted');
    const users = (await store.tenants.list()).filter((t) => t.spec.memory?.some((e) => e.pool === p.name)).map((t) => t.name);
    if (users.length) throw new ServiceError(409, 'in_use', `tenants have entitlements in memory pool ${p.name}: ${users.join(', ')}`);
    const placed = (await store.instances.list()).filter((i) => i.status.memory?.pool === p.name).map((i) => i.name);
    if (placed.length) throw new ServiceError(409, 'in_use', `instances hold memory in pool ${p.name}: ${placed.join(', ')}`);
    await store.memoryPools.delete(p.id);
    await memoryConfigChanged(this.ctx);
  }

  /** Refuses a pool whose tiers its hosts cannot back (memory/pools.ts unbackedTiers), unless the request allows it. */
  private async checkBacked(pool: Pick<MemoryPool, 'id' | 'name' | 'spec'>, pools: MemoryPool[], allowUnbacked: boolean | undefined): Promise<void> {
    if (allowUnbacked) return;
    const members = poolMembers(pools, await this.ctx.store.hosts.list()).get(pool.id) ?? [];
    const problems = unbackedTiers(pool, members, this.ctx.allocation);
    if (problems.length) {
      throw new ServiceError(
        422,
        'tier_unbacked',
        `${problems.join('; ')}: size the tiers to the hosts (see: outrig host list), or keep them with --allow-unbacked (allowUnbacked) if that memory is to come`,
      );
    }
  }
}
