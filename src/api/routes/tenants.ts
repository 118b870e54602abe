import { Type } from 'typebox';
import { Name } from '../../model/common.ts';
import { DEFAULT_TENANT, TenantResource } from '../../model/tenant.ts';
import { ApiError } from '../errors.ts';
import type { Api, ApiServices } from '../server.ts';
import { errors, listOf, MetadataFields, RefParams } from '../schemas.ts';

const CreateTenant = Type.Object({ name: Name, ...MetadataFields }, { additionalProperties: false });

export function tenantRoutes(app: Api, s: ApiServices): void {
  app.get('/tenants', { schema: { tags: ['tenants'], response: { 200: listOf(TenantResource) } } }, async () => ({
    items: await s.store.tenants.list(),
  }));
  app.get('/tenants/:ref', { schema: { tags: ['tenants'], params: RefParams, response: { 200: TenantResource, ...errors } } }, async (req) =>
    s.store.tenants.mustFind(req.params.ref),
  );
  app.post('/tenants', { schema: { tags: ['tenants'], body: CreateTenant, response: { 201: TenantResource, ...errors } } }, async (req, reply) => {
    const t = await s.store.tenants.create({
      name: req.body.name,
      labels: req.body.labels,
      annotations: req.body.annotations,
      spec: {},
      status: { phase: 'active', conditions: [] },
    });
    return reply.status(201).send(t);
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
