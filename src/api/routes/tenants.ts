import { Type } from 'typebox';
import { Name } from '../../model/common.ts';
import { EntitlementSpec } from '../../model/memory.ts';
import { DEFAULT_TENANT, TenantResource, type TenantSpec } from '../../model/tenant.ts';
import { ApiError } from '../errors.ts';
import type { Api, ApiServices } from '../server.ts';
import { errors, listOf, MetadataFields, RefParams } from '../schemas.ts';
import { checkMemoryConfig, checkTenantMemory } from './memory.ts';

const Memory = Type.Array(EntitlementSpec, { maxItems: 64, description: 'memory entitlements, one per pool' });
const CreateTenant = Type.Object({ name: Name, memory: Type.Optional(Memory), ...MetadataFields }, { additionalProperties: false });
const PatchTenant = Type.Object({ memory: Type.Optional(Memory), ...MetadataFields }, { additionalProperties: false });

/** References before shapes: a mistyped pool is the answer, whatever else is wrong with the entitlement. */
async function checkPoolsExist(s: ApiServices, memory: TenantSpec['memory']): Promise<void> {
  for (const e of memory ?? []) {
    if (!(await s.store.memoryPools.find(e.pool))) throw new ApiError(422, 'unknown_pool', `memory pool '${e.pool}' does not exist (see: outrig memory pool list)`);
  }
}

export function tenantRoutes(app: Api, s: ApiServices): void {
  app.get('/tenants', { schema: { tags: ['tenants'], response: { 200: listOf(TenantResource) } } }, async () => ({
    items: await s.store.tenants.list(),
  }));
  app.get('/tenants/:ref', { schema: { tags: ['tenants'], params: RefParams, response: { 200: TenantResource, ...errors } } }, async (req) =>
    s.store.tenants.mustFind(req.params.ref),
  );
  app.post('/tenants', { schema: { tags: ['tenants'], body: CreateTenant, response: { 201: TenantResource, ...errors } } }, async (req, reply) => {
    const spec: TenantSpec = req.body.memory ? { memory: req.body.memory } : {};
    const t = await s.controller.exclusive(async () => {
      // Existence first: a taken name is the answer whatever else is wrong with the request.
      if (await s.store.tenants.find(req.body.name)) throw new ApiError(409, 'conflict', `tenant '${req.body.name}' already exists`);
      await checkPoolsExist(s, spec.memory);
      checkTenantMemory(spec.memory);
      const draft = { id: 'new', name: req.body.name, labels: {}, annotations: {}, spec, status: { phase: 'active', conditions: [] }, createdAt: '', updatedAt: '', generation: 1 };
      await checkMemoryConfig(s, { tenants: [...(await s.store.tenants.list()), draft] });
      return s.store.tenants.create({ name: req.body.name, labels: req.body.labels, annotations: req.body.annotations, spec, status: draft.status });
    });
    await s.controller.memoryConfigChanged();
    return reply.status(201).send(t);
  });
  app.patch('/tenants/:ref', { schema: { tags: ['tenants'], params: RefParams, body: PatchTenant, response: { 200: TenantResource, ...errors } } }, async (req) => {
    const cur = await s.store.tenants.mustFind(req.params.ref);
    const spec: TenantSpec = req.body.memory ? { ...cur.spec, memory: req.body.memory } : cur.spec;
    await checkPoolsExist(s, spec.memory);
    checkTenantMemory(spec.memory);
    const t = await s.controller.exclusive(async () => {
      await checkMemoryConfig(s, { tenants: (await s.store.tenants.list()).map((x) => (x.id === cur.id ? { ...x, spec } : x)) });
      return s.store.tenants.update(cur.id, (c) => ({ spec, labels: req.body.labels ?? c.labels, annotations: req.body.annotations ?? c.annotations }));
    });
    // Entitlements apply to running instances too: the balloon controller re-plans.
    await s.controller.memoryConfigChanged();
    return t;
  });
  app.delete('/tenants/:ref', { schema: { tags: ['tenants'], params: RefParams, response: { 204: Type.Null(), ...errors } } }, async (req, reply) => {
    const t = await s.store.tenants.mustFind(req.params.ref);
    if (t.name === DEFAULT_TENANT) throw new ApiError(409, 'protected', 'the default tenant cannot be deleted');
    const users = (await s.store.instances.list()).filter((i) => i.spec.tenant === t.name).map((i) => i.name);
    if (users.length) throw new ApiError(409, 'in_use', `tenant ${t.name} has instances: ${users.join(', ')}`);
    await s.store.tenants.delete(t.id);
    return reply.status(204).send(null);
  });
}
