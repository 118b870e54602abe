import { Type } from 'typebox';
import { poolMembers, poolModel, entitlementsIn, unbackedTiers, vmsIn } from '../../controller/index.ts';
import { checkEntitlements } from '../../memory/index.ts';
import { Name } from '../../model/common.ts';
import type { MemoryPoolSpec} from '../../model/memory.ts';
import { DEFAULT_POOL, FloorSchema, MemoryPoolResource, TierSpecSchema, type MemoryPool } from '../../model/memory.ts';
import type { Tenant, TenantSpec } from '../../model/tenant.ts';
import { ApiError } from '../errors.ts';
import type { Api, ApiServices } from '../server.ts';
import { errors, listOf, MetadataFields, RefParams } from '../schemas.ts';

const PoolFields = {
  hosts: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { maxItems: 10_000, description: 'host names or ids; omit for the pool that takes every host no other pool names' })),
  tiers: Type.Array(TierSpecSchema, { minItems: 1, maxItems: 16 }),
  maxOvercommit: Type.Optional(Type.Number({ minimum: 1, maximum: 4 })),
  floor: Type.Optional(FloorSchema),
};
const AllowUnbacked = Type.Optional(Type.Boolean({ description: 'accept tiers larger than the pool\'s hosts can back (memory to be added); not stored' }));
const CreatePool = Type.Object({ name: Name, ...PoolFields, allowUnbacked: AllowUnbacked, ...MetadataFields }, { additionalProperties: false });
const PatchPool = Type.Object(
  { hosts: Type.Optional(Type.Union([PoolFields.hosts, Type.Null()])), tiers: Type.Optional(PoolFields.tiers), maxOvercommit: PoolFields.maxOvercommit, floor: PoolFields.floor, allowUnbacked: AllowUnbacked },
  { additionalProperties: false },
);

/** The shape of a pool's tiers: unique names, one local tier at most, pooled tiers sized. */
function checkTiers(spec: MemoryPoolSpec): void {
  const names = spec.tiers.map((t) => t.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new ApiError(400, 'invalid_request', `tier ${dup} is named twice`);
  if (spec.tiers.filter((t) => t.kind === 'local').length > 1) throw new ApiError(400, 'invalid_request', 'a pool has at most one local tier (each host\'s own DRAM)');
  for (const t of spec.tiers) if (t.kind === 'pooled' && !t.capacityMiB) throw new ApiError(400, 'invalid_request', `pooled tier ${t.name} needs its capacityMiB (the size of the shared memory)`);
}

/**
 * Whether the pools, tenants and instances would still make sense with a changed pool or tenant:
 * hosts in one pool each, one catch-all pool, every entitlement naming a pool and fitting it, and
 * placed instances' tiers still there. Throws a 4xx; nothing is written before it passes.
 */
/** Refuses a pool whose tiers its hosts cannot back (memory-pools.ts unbackedTiers), unless the request allows it. */
async function checkBacked(s: ApiServices, pool: Pick<MemoryPool, 'id' | 'name' | 'spec'>, pools: MemoryPool[], allowUnbacked: boolean | undefined): Promise<void> {
  if (allowUnbacked) return;
  const members = poolMembers(pools, await s.store.hosts.list()).get(pool.id) ?? [];
  const problems = unbackedTiers(pool, members, s.controller.allocation);
  if (problems.length) {
    throw new ApiError(422, 'tier_unbacked', `${problems.join('; ')}: size the tiers to the hosts (see: outrig host list), or keep them with --allow-unbacked (allowUnbacked) if that memory is to come`);
  }
}

export async function checkMemoryConfig(s: ApiServices, next: { pools?: MemoryPool[]; tenants?: Tenant[] }): Promise<void> {
  const [pools, tenants, hosts, instances] = await Promise.all([
    next.pools ?? s.store.memoryPools.list(),
    next.tenants ?? s.store.tenants.list(),
    s.store.hosts.list(),
    s.store.instances.list(),
  ]);
  const catchAll = pools.filter((p) => !p.spec.hosts);
  if (catchAll.length > 1) throw new ApiError(409, 'conflict', `only one pool may take every unnamed host (${catchAll.map((p) => p.name).join(', ')} would)`);
  const namedBy = new Map<string, string>();
  for (const p of pools) for (const h of p.spec.hosts ?? []) {
    const host = hosts.find((x) => x.name === h || x.id === h);
    const key = host?.id ?? h;
    if (namedBy.has(key) && namedBy.get(key) !== p.name) throw new ApiError(409, 'conflict', `host ${h} is already in memory pool ${namedBy.get(key)}`);
    namedBy.set(key, p.name);
  }
  for (const t of tenants) for (const e of t.spec.memory ?? []) {
    if (!pools.some((p) => p.name === e.pool)) throw new ApiError(422, 'unknown_pool', `tenant ${t.name}: memory pool '${e.pool}' does not exist (see: outrig memory pool list)`);
  }
  const members = poolMembers(pools, hosts);
  for (const p of pools) {
    const model = poolModel(p, members.get(p.id)!, s.controller.allocation);
    const fit = checkEntitlements(model, entitlementsIn(p.name, tenants));
    if (!fit.ok) throw new ApiError(422, 'entitlements_do_not_fit', fit.message);
    for (const vm of vmsIn(model, instances)) {
      const gone = vm.portions.find((x) => !model.tiers.some((t) => t.name === x.tier));
      if (gone) throw new ApiError(409, 'in_use', `instance ${vm.id} has ${gone.sizeMiB} MiB in tier ${gone.tier} of pool ${p.name}`);
    }
  }
}

/** A tenant's entitlements: one per pool. */
export function checkTenantMemory(memory: TenantSpec['memory']): void {
  const pools = (memory ?? []).map((e) => e.pool);
  const dup = pools.find((p, i) => pools.indexOf(p) !== i);
  if (dup) throw new ApiError(400, 'invalid_request', `pool ${dup} appears twice in the memory entitlements`);
  for (const e of memory ?? []) {
    if (e.guaranteedMiB > e.limitMiB) throw new ApiError(422, 'invalid_entitlement', `pool ${e.pool}: guarantee ${e.guaranteedMiB} MiB is above the limit ${e.limitMiB} MiB`);
  }
}

export function memoryRoutes(app: Api, s: ApiServices): void {
  app.get('/memory/pools', { schema: { tags: ['memory'], response: { 200: listOf(MemoryPoolResource) } } }, async () => ({ items: await s.store.memoryPools.list() }));
  app.get('/memory/pools/:ref', { schema: { tags: ['memory'], params: RefParams, response: { 200: MemoryPoolResource, ...errors } } }, async (req) =>
    s.store.memoryPools.mustFind(req.params.ref),
  );
  app.post('/memory/pools', { schema: { tags: ['memory'], body: CreatePool, response: { 201: MemoryPoolResource, ...errors } } }, async (req, reply) => {
    const b = req.body;
    const spec: MemoryPoolSpec = { hosts: b.hosts, tiers: b.tiers, maxOvercommit: b.maxOvercommit ?? 1, floor: b.floor };
    checkTiers(spec);
    const p = await s.controller.exclusive(async () => {
      const draft = { id: 'new', name: b.name, labels: {}, annotations: {}, spec, status: { phase: 'new', conditions: [], hosts: [], domains: [], tenants: [] }, createdAt: '', updatedAt: '', generation: 1 };
      const pools = [...(await s.store.memoryPools.list()), draft];
      await checkMemoryConfig(s, { pools });
      await checkBacked(s, draft, pools, b.allowUnbacked);
      return s.store.memoryPools.create({ name: b.name, labels: b.labels, annotations: b.annotations, spec, status: draft.status });
    });
    await s.controller.memoryConfigChanged();
    return reply.status(201).send(p);
  });
  app.patch('/memory/pools/:ref', { schema: { tags: ['memory'], params: RefParams, body: PatchPool, response: { 200: MemoryPoolResource, ...errors } } }, async (req) => {
    const cur = await s.store.memoryPools.mustFind(req.params.ref);
    const b = req.body;
    const spec: MemoryPoolSpec = {
      ...cur.spec,
      hosts: b.hosts === null ? undefined : (b.hosts ?? cur.spec.hosts),
      tiers: b.tiers ?? cur.spec.tiers,
      maxOvercommit: b.maxOvercommit ?? cur.spec.maxOvercommit,
      floor: b.floor ?? cur.spec.floor,
    };
    checkTiers(spec);
    const p = await s.controller.exclusive(async () => {
      const pools = (await s.store.memoryPools.list()).map((x) => (x.id === cur.id ? { ...x, spec } : x));
      await checkMemoryConfig(s, { pools });
      await checkBacked(s, { ...cur, spec }, pools, b.allowUnbacked);
      return s.store.memoryPools.update(cur.id, () => ({ spec }));
    });
    await s.controller.memoryConfigChanged();
    return p;
  });
  app.delete('/memory/pools/:ref', { schema: { tags: ['memory'], params: RefParams, response: { 204: Type.Null(), ...errors } } }, async (req, reply) => {
    const p = await s.store.memoryPools.mustFind(req.params.ref);
    if (p.name === DEFAULT_POOL) throw new ApiError(409, 'protected', 'the default memory pool cannot be deleted');
    const users = (await s.store.tenants.list()).filter((t) => t.spec.memory?.some((e) => e.pool === p.name)).map((t) => t.name);
    if (users.length) throw new ApiError(409, 'in_use', `tenants have entitlements in memory pool ${p.name}: ${users.join(', ')}`);
    const placed = (await s.store.instances.list()).filter((i) => i.status.memory?.pool === p.name).map((i) => i.name);
    if (placed.length) throw new ApiError(409, 'in_use', `instances hold memory in pool ${p.name}: ${placed.join(', ')}`);
    await s.store.memoryPools.delete(p.id);
    await s.controller.memoryConfigChanged();
    return reply.status(204).send(null);
  });
}
