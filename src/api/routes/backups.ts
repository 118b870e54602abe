import { randomBytes } from 'node:crypto';
import { isAbsolute, normalize } from 'node:path';
import { Type } from 'typebox';
import { BackupResource, backupName, backupScope, type Backup } from '../../model/backup.ts';
import type { Volume } from '../../model/volume.ts';
import { Name } from '../../model/common.ts';
import { CancelRefused } from '../../controller/index.ts';
import { ApiError } from '../errors.ts';
import type { Api, ApiServices } from '../server.ts';
import { errors, listOf, MetadataFields, RefParams } from '../schemas.ts';

const CreateBackup = Type.Object(
  {
    name: Type.Optional(Name),
    volume: Type.Optional(Type.String({ minLength: 1, description: 'the volume to back up (id or name)' })),
    instance: Type.Optional(Type.String({ minLength: 1, description: 'or an instance: its boot volume' })),
    host: Type.Optional(Type.String({ minLength: 1, description: "or a host's own files: the host (id or name) whose agent reads them" })),
    paths: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 4096 }), { minItems: 1, maxItems: 64, description: 'with host: absolute paths to back up' })),
    bmr: Type.Optional(Type.Boolean({ description: "with host: a bare-metal record of the host's disk holding the paths (every filesystem on it, the layout and boot loader), which can rebuild it into a volume" })),
    repository: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: "repository directory as the volume's host sees it (default: the cluster's)" })),
    tags: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { maxItems: 32 })),
    ...MetadataFields,
  },
  { additionalProperties: false },
);

const RestoreSystemStateBody = Type.Object({ volume: Type.String({ minLength: 1, description: 'the machine disk to repair (id or name); no running VM may have it' }) }, { additionalProperties: false });

const RestoreIntoVolumeBody = Type.Object(
  {
    volume: Type.String({ minLength: 1, description: 'the volume to put the files back into (id or name); no running VM may have it' }),
    include: Type.Array(Type.String({ minLength: 1, maxLength: 4096 }), { minItems: 1, maxItems: 64, description: 'paths as the backup names them: /p<partition>/<path in that filesystem>' }),
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
const RestoreFilesResult = Type.Object({ backup: Type.String(), host: Type.String(), target: Type.String(), files: Type.Integer(), bytes: Type.Integer(), seconds: Type.Number() });

const RestoreSystemStateResult = Type.Object({ backup: Type.String(), volume: Type.String(), restored: Type.Array(Type.String()), seconds: Type.Number() });

export function backupRoutes(app: Api, s: ApiServices): void {
  /** A backup that restores can use: completed, with its snapshot. */
  async function completedBackup(ref: string) {
    const b = await s.store.backups.mustFind(ref);
    const result = b.status.result;
    if (b.status.phase !== 'completed' || !result) throw new ApiError(409, 'backup_not_ready', `backup '${b.name}' is ${b.status.phase}`);
    return { b, result };
  }

  app.get('/backups', { schema: { tags: ['backups'], response: { 200: listOf(BackupResource) } } }, async () => ({ items: await s.store.backups.list() }));

  app.get('/backups/:ref', { schema: { tags: ['backups'], params: RefParams, response: { 200: BackupResource, ...errors } } }, async (req) => s.store.backups.mustFind(req.params.ref));

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
    async (req, reply) => {
      const b = req.body;
      if ([b.volume, b.instance, b.host].filter(Boolean).length !== 1) throw new ApiError(400, 'invalid_request', 'give volume, instance, or host with paths (one of them)');
      if (!b.host !== !b.paths) throw new ApiError(400, 'invalid_request', 'paths go with host (a host\'s own files), and host needs paths');
      if (b.bmr && !b.host) throw new ApiError(400, 'invalid_request', "bmr goes with host and paths (a host's own disk); a volume's backup is BMR-ready anyway");
      const repository = b.repository ? normalize(b.repository) : s.controller.backups.defaultRepository;
      if (!isAbsolute(repository)) throw new ApiError(400, 'invalid_request', `repository must be an absolute path, got '${b.repository}'`);
      if (b.host) {
        const host = await s.store.hosts.find(b.host);
        if (!host) throw new ApiError(422, 'unknown_host', `host '${b.host}' does not exist`);
        const bad = b.paths!.find((p) => !isAbsolute(p));
        if (bad) throw new ApiError(400, 'invalid_request', `paths must be absolute, got '${bad}'`);
        const name = b.name ?? backupName(`${host.name}-${b.bmr ? 'disk' : 'files'}`, new Date());
        if (await s.store.backups.find(name)) throw new ApiError(409, 'exists', `a backup named '${name}' exists`);
        const created = await s.store.backups.create({
          name,
          labels: b.labels,
          annotations: b.annotations,
          spec: { host: host.id, paths: [...new Set(b.paths!.map((p) => normalize(p)))], bmr: b.bmr || undefined, repository, scope: backupScope({ host: host.id }), tags: b.tags ?? [] },
          status: { phase: 'pending', conditions: [] },
        });
        await s.controller.reconcileNow('backup', created.id);
        return reply.status(201).send((await s.store.backups.get(created.id)) ?? created);
      }
      let volumeRef = b.volume;
      if (b.instance) {
        const inst = await s.store.instances.find(b.instance);
        if (!inst) throw new ApiError(422, 'unknown_instance', `instance '${b.instance}' does not exist`);
        if (!inst.spec.bootVolume) throw new ApiError(422, 'no_boot_volume', `instance '${inst.name}' boots a kernel image and has no boot volume to back up`);
        volumeRef = inst.spec.bootVolume;
      }
      const vol = await s.store.volumes.find(volumeRef!);
      if (!vol) throw new ApiError(422, 'unknown_volume', `volume '${volumeRef}' does not exist`);
      if (vol.status.phase === 'deleting' || vol.status.phase === 'failed') throw new ApiError(409, 'volume_not_ready', `volume '${vol.name}' is ${vol.status.phase}`);
      const name = b.name ?? backupName(vol.name, new Date());
      if (await s.store.backups.find(name)) throw new ApiError(409, 'exists', `a backup named '${name}' exists`);
      const created = await s.store.backups.create({
        name,
        labels: b.labels,
        annotations: b.annotations,
        spec: { volume: vol.id, repository, scope: backupScope({ volume: vol.id }), tags: b.tags ?? [] },
        status: { phase: 'pending', conditions: [], volumeName: vol.name },
      });
      await s.controller.reconcileNow('backup', created.id);
      return reply.status(201).send((await s.store.backups.get(created.id)) ?? created);
    },
  );

  app.delete(
    '/backups/:ref',
    { schema: { tags: ['backups'], summary: 'Delete a backup and forget its snapshot in the repository (prune frees the data)', params: RefParams, response: { 202: BackupResource, ...errors } } },
    async (req, reply) => {
      const b = await s.store.backups.mustFind(req.params.ref);
      const restoring = (await s.store.volumes.list()).filter((v) => v.spec.source && 'backup' in v.spec.source && v.spec.source.backup === b.id && v.status.phase !== 'available' && v.status.phase !== 'in-use');
      if (restoring.length) throw new ApiError(409, 'in_use', `volume ${restoring.map((v) => v.name).join(', ')} is being restored from backup '${b.name}'`);
      const updated = await s.store.backups.update(b.id, (cur) => (cur.status.phase === 'deleting' ? null : { status: { ...cur.status, phase: 'deleting' } }));
      await s.controller.reconcileNow('backup', b.id);
      return reply.status(202).send((await s.store.backups.get(b.id)) ?? updated);
    },
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
    async (req, reply) => {
      const b = await s.controller.backups.cancel(req.params.ref).catch((e: unknown) => {
        throw e instanceof CancelRefused ? new ApiError(409, 'not_running', e.message) : e;
      });
      await s.controller.reconcileNow('backup', b.id);
      return reply.status(202).send((await s.store.backups.get(b.id)) ?? b);
    },
  );

  /** A volume files may be written into: it exists, is ready on a connected host, and no running VM has it. */
  const idleVolume = async (ref: string) => {
    const vol = await s.store.volumes.find(ref);
    if (!vol) throw new ApiError(422, 'unknown_volume', `volume '${ref}' does not exist`);
    const hostId = vol.status.hostId;
    if (!hostId || (vol.status.phase !== 'available' && vol.status.phase !== 'in-use')) throw new ApiError(409, 'volume_not_ready', `volume '${vol.name}' is ${vol.status.phase}`);
    if (!s.hub.isConnected(hostId)) throw new ApiError(409, 'host_not_connected', `the agent of host ${vol.status.hostName ?? hostId} is not connected`);
    const plugged = new Set(s.hub.vmsWithDisk(hostId, vol.id).filter((id) => s.hub.vm(hostId, id)?.state !== 'stopped'));
    const users = (await s.store.instances.list()).filter(
      (i) => plugged.has(i.id) || ((i.spec.bootVolume === vol.id || vol.spec.attachedTo === i.id) && !['stopped', 'failed', 'pending'].includes(i.status.phase)),
    );
    if (users.length || plugged.size) throw new ApiError(409, 'in_use', `volume '${vol.name}' is in use by instance ${users.map((i) => i.name).join(', ') || [...plugged].join(', ')}; stop it first`);
    return { vol, hostId };
  };

  /** Sends a restore into a volume no VM uses to its host's agent and answers with what it put back. */
  const restoreIntoVolume = async (
    b: Backup,
    snapshotId: string,
    volumeRef: string,
    op: { kind: 'backup.restore-system-state' } | { kind: 'backup.restore-into-volume'; include: string[] },
    failure: (vol: Volume) => string,
  ) => {
    const { vol, hostId } = await idleVolume(volumeRef);
    const start = Date.now();
    const tag = op.kind === 'backup.restore-system-state' ? 'ssr' : 'into';
    const r = await s.controller.backups.sendDirect(hostId, {
      ...op,
      opId: `${tag}/${vol.id}/${randomBytes(6).toString('hex')}`,
      volumeId: vol.id,
      repository: s.controller.backups.repoOf(b),
      snapshotId,
    });
    if (!r.ok) throw new ApiError(500, 'restore_failed', `${failure(vol)}: ${r.error ?? 'unknown error'}`);
    return { backup: b.id, volume: vol.id, restored: (r.result as { paths?: string[] } | undefined)?.paths ?? [], seconds: (Date.now() - start) / 1000 };
  };

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
    async (req) => {
      const { b, result } = await completedBackup(req.params.ref);
      const { target, include = [] } = req.body;
      const bad = [target, ...include].find((p) => !isAbsolute(p));
      if (bad) throw new ApiError(400, 'invalid_request', `target and include must be absolute paths, got '${bad}'`);
      const host = req.body.host ? await s.store.hosts.find(req.body.host) : b.status.hostId ? await s.store.hosts.get(b.status.hostId) : undefined;
      if (!host) throw new ApiError(422, 'unknown_host', req.body.host ? `host '${req.body.host}' does not exist` : `backup '${b.name}' has no host left to restore on; name one`);
      if (!s.hub.isConnected(host.id)) throw new ApiError(409, 'host_not_connected', `the agent of host ${host.name} is not connected`);
      const start = Date.now();
      const r = await s.controller.backups.sendDirect(host.id, {
        opId: `restore/${b.id}/${randomBytes(6).toString('hex')}`,
        kind: 'backup.restore-files',
        repository: s.controller.backups.repoOf(b),
        snapshotId: result.snapshotId,
        target: normalize(target),
        include: include.map((p) => normalize(p)),
      });
      if (!r.ok) throw new ApiError(500, 'restore_failed', `restore failed: ${r.error ?? 'unknown error'}`);
      const done = r.result as { files?: number; bytes?: number } | undefined;
      return { backup: b.id, host: host.name, target: normalize(target), files: done?.files ?? 0, bytes: done?.bytes ?? 0, seconds: (Date.now() - start) / 1000 };
    },
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
    async (req) => {
      const { b, result } = await completedBackup(req.params.ref);
      if (!result.systemState.length) throw new ApiError(422, 'no_system_state', `backup '${b.name}' holds no system state (no /etc or /boot on its filesystems)`);
      return restoreIntoVolume(b, result.snapshotId, req.body.volume, { kind: 'backup.restore-system-state' }, () => 'system-state restore failed');
    },
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
    async (req) => {
      const { b, result } = await completedBackup(req.params.ref);
      const bad = req.body.include.find((p) => !/^\/p\d+(\/|$)/.test(normalize(p)));
      if (bad) throw new ApiError(400, 'invalid_request', `include: '${bad}' is not a path of a disk backup (/p<partition>/<path>, e.g. /p2/data.txt)`);
      // Filesystems read file by file (ext2/3/4) are the ones whose files the backup has.
      const roots = result.filesystems.filter((f) => /^ext[234]$/.test(f.type)).map((f) => `/p${f.partition}`);
      const outside = req.body.include.find((p) => !roots.some((r) => normalize(p) === r || normalize(p).startsWith(`${r}/`)));
      if (outside) throw new ApiError(422, 'unknown_path', `include: '${outside}' is on none of backup ${b.name}'s filesystems (${roots.join(', ') || 'none read file by file'})`);
      const include = req.body.include.map((p) => normalize(p));
      return restoreIntoVolume(b, result.snapshotId, req.body.volume, { kind: 'backup.restore-into-volume', include }, (vol) => `restore into volume ${vol.name} failed`);
    },
  );
}
