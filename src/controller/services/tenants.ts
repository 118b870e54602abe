/** Tenant use cases the API calls: create, change (labels, memory entitlements checked against the pools) and delete. */
import { DEFAULT_TENANT, type Tenant, type TenantSpec } from '../../model/tenant.ts';
import type { Ctx } from '../context.ts';
import { ServiceError } from './errors.ts';
import { checkMemoryConfig, checkTenantMemory, memoryConfigChanged } from './memory.ts';

export interface TenantInput {
  memory?: TenantSpec['memory'];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export class TenantService {
  constructor(private readonly ctx: Ctx) {}

  async create(name: string, b: TenantInput): Promise<Tenant> {
    const { ctx } = this;
    const spec: TenantSpec = b.memory ? { memory: b.memory } : {};
    const t = await ctx.serialize(async () => {
      // Existence first: a taken name is the answer whatever else is wrong with the request.
      if (await ctx.store.tenants.find(name)) throw new ServiceError(409, 'conflict', `tenant '${name}' already exists`);
      await this.checkPoolsExist(spec.memory);
      checkTenantMemory(spec.memory);
      const draft = {
        id: 'new',
        name,
        labels: {},
        annotations: {},
        spec,
        status: { phase: 'active', conditions: [] },
        createdAt: '',
        updatedAt: '',
        generation: 1,
      };
      await checkMemoryConfig(ctx, { tenants: [...(await ctx.store.tenants.list()), draft] });
      return ctx.store.tenants.create({ name, labels: b.labels, annotations: b.annotations, spec, status: draft.status });
    });
    await memoryConfigChanged(ctx);
    return t;
  }

  async update(ref: string, b: TenantInput): Promise<Tenant> {
    const { ctx } = this;
    const cur = await ctx.store.tenants.mustFind(ref);
    const spec: TenantSpec = b.memory ? { ...cur.spec, memory: b.memory } : cur.spec;
    await this.checkPoolsExist(spec.memory);
    checkTenantMemory(spec.memory);
    const t = await ctx.serialize(async () => {
      await checkMemoryConfig(ctx, { tenants: (await ctx.store.tenants.list()).map((x) => (x.id === cur.id ? { ...x, spec } : x)) });
      return ctx.store.tenants.update(cur.id, (c) => ({ spec, labels: b.labels ?? c.labels, annotations: b.annotations ?? c.annotations }));
    });
    // Entitlements apply to running instances too: the balloon controller re-plans.
    await memoryConfigChanged(ctx);
    return t;
  }

  /** Deletes a tenant without instances; never the default one. */
  async remove(ref: string): Promise<void> {
    const { store } = this.ctx;
    const t = await store.tenants.mustFind(ref);
    if (t.name === DEFAULT_TENANT) throw new ServiceError(409, 'protected', 'the default tenant cannot be deleted');
    const users = (await store.instances.list()).filter((i) => i.spec.tenant === t.name).map((i) => i.name);
    if (users.length) throw new ServiceError(409, 'in_use', `tenant ${t.name} has instances: ${users.join(', ')}`);
    await store.tenants.delete(t.id);
  }

  /** References before shapes: a mistyped pool is the answer, whatever else is wrong with the entitlement. */
  private async checkPoolsExist(memory: TenantSpec['memory']): Promise<void> {
    for (const e of memory ?? []) {
      if (!(await this.ctx.store.memoryPools.find(e.pool)))
        throw new ServiceError(422, 'unknown_pool', `memory pool '${e.pool}' does not exist (see: outrig memory pool list)`);
    }
  }
}
