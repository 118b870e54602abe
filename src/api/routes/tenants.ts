import { Type } from 'typebox';
import { Name } from '../../model/common.ts';
import { EntitlementSpec } from '../../model/memory.ts';
import { TenantResource } from '../../model/tenant.ts';
import type { Api, ApiServices } from '../server.ts';
import { errors, listOf, MetadataFields, RefParams } from '../schemas.ts';

const Memory = Type.Array(EntitlementSpec, { maxItems: 64, description: 'memory entitlements, one per pool' });
const CreateTenant = Type.Object({ name: Name, memory: Type.Optional(Memory), ...MetadataFields }, { additionalProperties: false });
const PatchTenant = Type.Object({ memory: Type.Optional(Memory), ...MetadataFields }, { additionalProperties: false });

export function tenantRoutes(app: Api, s: ApiServices): void {
  app.get('/tenants', { schema: { tags: ['tenants'], response: { 200: listOf(TenantResource) } } }, async () => ({
    items: await s.store.tenants.list(),
  }));
  app.get('/tenants/:ref', { schema: { tags: ['tenants'], params: RefParams, response: { 200: TenantResource, ...errors } } }, async (req) =>
    s.store.tenants.mustFind(req.params.ref),
  );
  app.post('/tenants', { schema: { tags: ['tenants'], body: CreateTenant, response: { 201: TenantResource, ...errors } } }, async (req, reply) => {
    const { name, ...rest } = req.body;
    return reply.status(201).send(await s.controller.tenants.create(name, rest));
  });
  app.patch(
    '/tenants/:ref',
    { schema: { tags: ['tenants'], params: RefParams, body: PatchTenant, response: { 200: TenantResource, ...errors } } },
    async (req) => s.controller.tenants.update(req.params.ref, req.body),
  );
  app.delete('/tenants/:ref', { schema: { tags: ['tenants'], params: RefParams, response: { 204: Type.Null(), ...errors } } }, async (req, reply) => {
    await s.controller.tenants.remove(req.params.ref);
    return reply.status(204).send(null);
  });
}
