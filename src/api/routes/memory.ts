import { Type } from 'typebox';
import { Name } from '../../model/common.ts';
import { FloorSchema, MemoryPoolResource, TierSpecSchema } from '../../model/memory.ts';
import type { Api, ApiServices } from '../server.ts';
import { errors, listOf, MetadataFields, RefParams } from '../schemas.ts';

const PoolFields = {
  hosts: Type.Optional(
    Type.Array(Type.String({ minLength: 1 }), {
      maxItems: 10_000,
      description: 'host names or ids; omit for the pool that takes every host no other pool names',
    }),
  ),
  tiers: Type.Array(TierSpecSchema, { minItems: 1, maxItems: 16 }),
  maxOvercommit: Type.Optional(Type.Number({ minimum: 1, maximum: 4 })),
  floor: Type.Optional(FloorSchema),
};
const AllowUnbacked = Type.Optional(Type.Boolean({ description: "accept tiers larger than the pool's hosts can back (memory to be added); not stored" }));
const CreatePool = Type.Object({ name: Name, ...PoolFields, allowUnbacked: AllowUnbacked, ...MetadataFields }, { additionalProperties: false });
const PatchPool = Type.Object(
  {
    hosts: Type.Optional(Type.Union([PoolFields.hosts, Type.Null()])),
    tiers: Type.Optional(PoolFields.tiers),
    maxOvercommit: PoolFields.maxOvercommit,
    floor: PoolFields.floor,
    allowUnbacked: AllowUnbacked,
  },
  { additionalProperties: false },
);

export function memoryRoutes(app: Api, s: ApiServices): void {
  app.get('/memory/pools', { schema: { tags: ['memory'], response: { 200: listOf(MemoryPoolResource) } } }, async () => ({
    items: await s.store.memoryPools.list(),
  }));
  app.get('/memory/pools/:ref', { schema: { tags: ['memory'], params: RefParams, response: { 200: MemoryPoolResource, ...errors } } }, async (req) =>
    s.store.memoryPools.mustFind(req.params.ref),
  );
  app.post('/memory/pools', { schema: { tags: ['memory'], body: CreatePool, response: { 201: MemoryPoolResource, ...errors } } }, async (req, reply) => {
    const { name, ...rest } = req.body;
    return reply.status(201).send(await s.controller.memory.createPool(name, rest));
  });
  app.patch(
    '/memory/pools/:ref',
    { schema: { tags: ['memory'], params: RefParams, body: PatchPool, response: { 200: MemoryPoolResource, ...errors } } },
    async (req) => s.controller.memory.updatePool(req.params.ref, req.body),
  );
  app.delete('/memory/pools/:ref', { schema: { tags: ['memory'], params: RefParams, response: { 204: Type.Null(), ...errors } } }, async (req, reply) => {
    await s.controller.memory.removePool(req.params.ref);
    return reply.status(204).send(null);
  });
}
