import { Type } from 'typebox';
import { BackupResource } from '../../model/backup.ts';
import { Name } from '../../model/common.ts';
import type { Api, ApiServices } from '../server.ts';
import { errors, listOf, MetadataFields, RefParams } from '../schemas.ts';

const CreateBackup = Type.Object(
  {
    name: Type.Optional(Name),
    volume: Type.Optional(Type.String({ minLength: 1, description: 'the volume to back up (id or name)' })),
    instance: Type.Optional(Type.String({ minLength: 1, description: 'or an instance: its boot volume' })),
    host: Type.Optional(Type.String({ minLength: 1, description: "or a host's own files: the host (id or name) whose agent reads them" })),
    paths: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 4096 }), { minItems: 1, maxItems: 64, description: 'with host: absolute paths to back up' }),
    ),
    bmr: Type.Optional(
      Type.Boolean({
        description:
          "with host: a bare-metal record of the host's disk holding the paths (every filesystem on it, the layout and boot loader), which can rebuild it into a volume",
      }),
    ),
    repository: Type.Optional(
      Type.String({ minLength: 1, maxLength: 4096, description: "repository directory as the volume's host sees it (default: the cluster's)" }),
    ),
    tags: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { maxItems: 32 })),
    ...MetadataFields,
  },
  { additionalProperties: false },
);

const RestoreSystemStateBody = Type.Object(
  { volume: Type.String({ minLength: 1, description: 'the machine disk to repair (id or name); no running VM may have it' }) },
  { additionalProperties: false },
);

const RestoreIntoVolumeBody = Type.Object(
  {
    volume: Type.String({ minLength: 1, description: 'the volume to put the files back into (id or name); no running VM may have it' }),
    include: Type.Array(Type.String({ minLength: 1, maxLength: 4096 }), {
      minItems: 1,
      maxItems: 64,
      description: 'paths as the backup names them: /p<partition>/<path in that filesystem>',
    }),
  },
  { additionalProperties: false },
);

const RestoreFilesBody = Type.Object(
  {
    target: Type.String({ minLength: 1, maxLength: 4096, description: 'directory on the host: each file goes to target/<original path>' }),
    include: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 4096 }), { maxItems: 64, description: 'only these absolute paths or subtrees' })),
    host: Type.Optional(Type.String({ minLength: 1, description: "host to restore on (default: the backup's)" })),
  },
  { additionalProperties: false },
);
const RestoreFilesResult = Type.Object({
  backup: Type.String(),
  host: Type.String(),
  target: Type.String(),
  files: Type.Integer(),
  bytes: Type.Integer(),
  seconds: Type.Number(),
});

const RestoreSystemStateResult = Type.Object({ backup: Type.String(), volume: Type.String(), restored: Type.Array(Type.String()), seconds: Type.Number() });

export function backupRoutes(app: Api, s: ApiServices): void {
  app.get('/backups', { schema: { tags: ['backups'], response: { 200: listOf(BackupResource) } } }, async () => ({ items: await s.store.backups.list() }));

  app.get('/backups/:ref', { schema: { tags: ['backups'], params: RefParams, response: { 200: BackupResource, ...errors } } }, async (req) =>
    s.store.backups.mustFind(req.params.ref),
  );

  app.post(
    '/backups',
    {
      schema: {
        tags: ['backups'],
        summary: "Back up a volume (or an instance's boot volume) from a disk-engine snapshot: files, layout, identities and boot loader (BMR-ready)",
        body: CreateBackup,
        response: { 201: BackupResource, ...errors },
      },
    },
    async (req, reply) => reply.status(201).send(await s.controller.backups.create(req.body)),
  );

  app.delete(
    '/backups/:ref',
    {
      schema: {
        tags: ['backups'],
        summary: 'Delete a backup and forget its snapshot in the repository (prune frees the data)',
        params: RefParams,
        response: { 202: BackupResource, ...errors },
      },
    },
    async (req, reply) => reply.status(202).send(await s.controller.backups.remove(req.params.ref)),
  );

  app.post(
    '/backups/:ref/cancel',
    {
      schema: {
        tags: ['backups'],
        summary: 'Stop a pending or running backup: it ends as cancelled, with no snapshot in the repository and its disk-engine snapshot deleted',
        params: RefParams,
        response: { 202: BackupResource, ...errors },
      },
    },
    async (req, reply) => reply.status(202).send(await s.controller.backups.cancel(req.params.ref)),
  );

  app.post(
    '/backups/:ref/restore-files',
    {
      schema: {
        tags: ['backups'],
        summary: "Restore a backup's files (all, or some paths) under a directory of a host",
        params: RefParams,
        body: RestoreFilesBody,
        response: { 200: RestoreFilesResult, ...errors },
      },
    },
    async (req) => s.controller.backups.restoreFiles(req.params.ref, req.body),
  );

  app.post(
    '/backups/:ref/restore-system-state',
    {
      schema: {
        tags: ['backups'],
        summary: "Put the backup's system state (OS configuration, boot files, boot loader) back into a machine disk, leaving user data as it is",
        params: RefParams,
        body: RestoreSystemStateBody,
        response: { 200: RestoreSystemStateResult, ...errors },
      },
    },
    async (req) => s.controller.backups.restoreSystemState(req.params.ref, req.body.volume),
  );

  app.post(
    '/backups/:ref/restore-into-volume',
    {
      schema: {
        tags: ['backups'],
        summary: "Put files of a volume's backup back into a volume (the same disk: same filesystem UUIDs), leaving everything else as it is",
        params: RefParams,
        body: RestoreIntoVolumeBody,
        response: { 200: RestoreSystemStateResult, ...errors },
      },
    },
    async (req) => s.controller.backups.restoreIntoVolume(req.params.ref, req.body.volume, req.body.include),
  );
}
