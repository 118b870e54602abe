import { Type } from 'typebox';
import { Name } from '../../model/common.ts';
import { SnapshotResource, VolumeResource } from '../../model/volume.ts';
import type { Api, ApiServices } from '../server.ts';
import { errors, listOf, MetadataFields, RefParams } from '../schemas.ts';

const MiB = 1024 * 1024;

const CreateVolume = Type.Object(
  {
    name: Name,
    sizeBytes: Type.Optional(Type.Integer({ minimum: MiB, maximum: 2 ** 48, description: 'virtual size; defaults to the source size for clones' })),
    tenant: Type.Optional(Type.String({ minLength: 1 })),
    blockSize: Type.Optional(Type.Integer({ minimum: 4096, maximum: 2 * MiB, description: 'allocation block size, a power of two (default 64 KiB)' })),
    source: Type.Optional(
      Type.Union([
        Type.Object({ snapshot: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
        Type.Object({ image: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
        Type.Object(
          { backup: Type.String({ minLength: 1, description: 'a BMR-ready backup: the disk is rebuilt into the new volume' }) },
          { additionalProperties: false },
        ),
      ]),
    ),
    host: Type.Optional(Type.String({ minLength: 1, description: 'host to create it on (default: chosen by the controller)' })),
    forInstance: Type.Optional(
      Type.String({ minLength: 1, description: "instance (name or id) it is made for: it is created on that instance's host, so it can be attached there" }),
    ),
    waitForRoom: Type.Optional(
      Type.Boolean({
        description:
          'when the hosts it may go to have no disk room for it now, accept it and keep it pending until one has (default: refuse it with 422 insufficient_storage)',
      }),
    ),
    ...MetadataFields,
  },
  { additionalProperties: false },
);

const SnapshotRefParams = Type.Object({ ref: Type.String({ description: 'snapshot id, VOLUME/SNAPSHOT, or a name only one volume has a snapshot of' }) });
const DeleteVolumeQuery = Type.Object(
  { recursive: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')], { description: 'delete its snapshots with it' })) },
  { additionalProperties: false },
);

const AttachBody = Type.Object({ instance: Type.String({ minLength: 1 }) }, { additionalProperties: false });
const ResizeBody = Type.Object({ sizeBytes: Type.Integer({ minimum: MiB, maximum: 2 ** 48 }) }, { additionalProperties: false });
const SnapshotBody = Type.Object({ name: Name, ...MetadataFields }, { additionalProperties: false });
const CloneBody = Type.Object(
  { name: Name, sizeBytes: Type.Optional(Type.Integer({ minimum: MiB, maximum: 2 ** 48 })), ...MetadataFields },
  { additionalProperties: false },
);

export function volumeRoutes(app: Api, s: ApiServices): void {
  const volumes = s.controller.volumes;

  app.get('/volumes', { schema: { tags: ['volumes'], response: { 200: listOf(VolumeResource) } } }, async () => ({ items: await s.store.volumes.list() }));

  app.get('/volumes/:ref', { schema: { tags: ['volumes'], params: RefParams, response: { 200: VolumeResource, ...errors } } }, async (req) =>
    s.store.volumes.mustFind(req.params.ref),
  );

  app.post(
    '/volumes',
    {
      schema: {
        tags: ['volumes'],
        summary: 'Create a volume: empty, a clone of a snapshot, or a clone of a disk image',
        body: CreateVolume,
        response: { 201: VolumeResource, ...errors },
      },
    },
    async (req, reply) => reply.status(201).send(await volumes.create(req.body)),
  );

  app.delete(
    '/volumes/:ref',
    {
      schema: {
        tags: ['volumes'],
        summary: 'Delete a volume (detached; its snapshots too with recursive=true)',
        params: RefParams,
        querystring: DeleteVolumeQuery,
        response: { 202: VolumeResource, ...errors },
      },
    },
    async (req, reply) => reply.status(202).send(await volumes.remove(req.params.ref, req.query.recursive === 'true')),
  );

  app.post(
    '/volumes/:ref/attach',
    {
      schema: {
        tags: ['volumes'],
        summary: 'Attach to an instance (hot-plugged if it runs)',
        params: RefParams,
        body: AttachBody,
        response: { 202: VolumeResource, ...errors },
      },
    },
    async (req, reply) => reply.status(202).send(await volumes.attach(req.params.ref, req.body.instance)),
  );

  app.post(
    '/volumes/:ref/detach',
    {
      schema: {
        tags: ['volumes'],
        summary: 'Detach from its instance (hot-unplugged if it runs)',
        params: RefParams,
        response: { 202: VolumeResource, ...errors },
      },
    },
    async (req, reply) => reply.status(202).send(await volumes.detach(req.params.ref)),
  );

  app.post(
    '/volumes/:ref/resize',
    { schema: { tags: ['volumes'], summary: 'Grow a volume', params: RefParams, body: ResizeBody, response: { 202: VolumeResource, ...errors } } },
    async (req, reply) => reply.status(202).send(await volumes.resize(req.params.ref, req.body.sizeBytes)),
  );

  app.post(
    '/volumes/:ref/snapshots',
    {
      schema: {
        tags: ['volumes'],
        summary: 'Snapshot a volume (copy-on-write, taken now)',
        params: RefParams,
        body: SnapshotBody,
        response: { 201: SnapshotResource, ...errors },
      },
    },
    async (req, reply) => reply.status(201).send(await volumes.snapshot(req.params.ref, req.body)),
  );

  app.get('/snapshots', { schema: { tags: ['volumes'], response: { 200: listOf(SnapshotResource) } } }, async () => ({
    items: await s.store.snapshots.list(),
  }));

  app.get('/snapshots/:ref', { schema: { tags: ['volumes'], params: SnapshotRefParams, response: { 200: SnapshotResource, ...errors } } }, async (req) =>
    volumes.findSnapshot(req.params.ref),
  );

  app.delete(
    '/snapshots/:ref',
    { schema: { tags: ['volumes'], summary: 'Delete a snapshot (without clones)', params: SnapshotRefParams, response: { 202: SnapshotResource, ...errors } } },
    async (req, reply) => reply.status(202).send(await volumes.removeSnapshot(req.params.ref)),
  );

  app.post(
    '/snapshots/:ref/clone',
    {
      schema: {
        tags: ['volumes'],
        summary: 'Make a writable volume from a snapshot; space is shared until written',
        params: SnapshotRefParams,
        body: CloneBody,
        response: { 201: VolumeResource, ...errors },
      },
    },
    async (req, reply) => reply.status(201).send(await volumes.clone(req.params.ref, req.body)),
  );
}
