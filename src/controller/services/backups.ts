/**
 * Backup use cases the API calls: creating a backup (of a volume, an instance's boot volume or a
 * host's own files), deleting and cancelling one, and the restores the API awaits itself (files
 * onto a host, system state or files into a volume no VM uses), which build the agent's operation.
 */
import { randomBytes } from 'node:crypto';
import { isAbsolute, normalize } from 'node:path';
import type { AgentOp } from '../../model/agent-protocol.ts';
import { backupName, backupScope, backupSettled, type Backup, type BackupResult } from '../../model/backup.ts';
import type { Volume } from '../../model/volume.ts';
import type { Ctx } from '../context.ts';
import { repoOf } from '../backups/repository.ts';
import type { OpResult } from '../runtime/op-tracker.ts';
import { ServiceError } from './errors.ts';

export interface CreateBackupInput {
  name?: string;
  volume?: string;
  instance?: string;
  host?: string;
  paths?: string[];
  bmr?: boolean;
  repository?: string;
  tags?: string[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface RestoreFilesInput {
  target: string;
  include?: string[];
  host?: string;
}

export interface FilesRestored {
  backup: string;
  host: string;
  target: string;
  files: number;
  bytes: number;
  seconds: number;
}

export interface VolumeRestored {
  backup: string;
  volume: string;
  restored: string[];
  seconds: number;
}

export class BackupService {
  constructor(private readonly ctx: Ctx) {}

  get defaultRepository(): string {
    return this.ctx.backup.defaultRepository;
  }

  /** Creates a backup and has it reconciled (its agent starts the run). */
  async create(b: CreateBackupInput): Promise<Backup> {
    const { ctx } = this;
    const { store } = ctx;
    if ([b.volume, b.instance, b.host].filter(Boolean).length !== 1)
      throw new ServiceError(400, 'invalid_request', 'give volume, instance, or host with paths (one of them)');
    if (!b.host !== !b.paths) throw new ServiceError(400, 'invalid_request', "paths go with host (a host's own files), and host needs paths");
    if (b.bmr && !b.host)
      throw new ServiceError(400, 'invalid_request', "bmr goes with host and paths (a host's own disk); a volume's backup is BMR-ready anyway");
    const repository = b.repository ? normalize(b.repository) : this.defaultRepository;
    if (!isAbsolute(repository)) throw new ServiceError(400, 'invalid_request', `repository must be an absolute path, got '${b.repository}'`);
    let created: Backup;
    if (b.host) {
      const host = await store.hosts.find(b.host);
      if (!host) throw new ServiceError(422, 'unknown_host', `host '${b.host}' does not exist`);
      const bad = b.paths!.find((p) => !isAbsolute(p));
      if (bad) throw new ServiceError(400, 'invalid_request', `paths must be absolute, got '${bad}'`);
      const name = await this.freeName(b.name ?? backupName(`${host.name}-${b.bmr ? 'disk' : 'files'}`, ctx.clock.now()));
      created = await store.backups.create({
        name,
        labels: b.labels,
        annotations: b.annotations,
        spec: {
          host: host.id,
          paths: [...new Set(b.paths!.map((p) => normalize(p)))],
          bmr: b.bmr || undefined,
          repository,
          scope: backupScope({ host: host.id }),
          tags: b.tags ?? [],
        },
        status: { phase: 'pending', conditions: [] },
      });
    } else {
      let volumeRef = b.volume;
      if (b.instance) {
        const inst = await store.instances.find(b.instance);
        if (!inst) throw new ServiceError(422, 'unknown_instance', `instance '${b.instance}' does not exist`);
        if (!inst.spec.bootVolume)
          throw new ServiceError(422, 'no_boot_volume', `instance '${inst.name}' boots a kernel image and has no boot volume to back up`);
        volumeRef = inst.spec.bootVolume;
      }
      const vol = await store.volumes.find(volumeRef!);
      if (!vol) throw new ServiceError(422, 'unknown_volume', `volume '${volumeRef}' does not exist`);
      if (vol.status.phase === 'deleting' || vol.status.phase === 'failed')
        throw new ServiceError(409, 'volume_not_ready', `volume '${vol.name}' is ${vol.status.phase}`);
      const name = await this.freeName(b.name ?? backupName(vol.name, ctx.clock.now()));
      created = await store.backups.create({
        name,
        labels: b.labels,
        annotations: b.annotations,
        spec: { volume: vol.id, repository, scope: backupScope({ volume: vol.id }), tags: b.tags ?? [] },
        status: { phase: 'pending', conditions: [], volumeName: vol.name },
      });
    }
    await ctx.runtime.reconcileNow('backup', created.id);
    return (await store.backups.get(created.id)) ?? created;
  }

  /** Deletes a backup (its snapshot in the repository is forgotten); not while a volume is being restored from it. */
  async remove(ref: string): Promise<Backup> {
    const { store, runtime } = this.ctx;
    const b = await store.backups.mustFind(ref);
    const restoring = (await store.volumes.list()).filter(
      (v) => v.spec.source && 'backup' in v.spec.source && v.spec.source.backup === b.id && v.status.phase !== 'available' && v.status.phase !== 'in-use',
    );
    if (restoring.length) throw new ServiceError(409, 'in_use', `volume ${restoring.map((v) => v.name).join(', ')} is being restored from backup '${b.name}'`);
    const updated = await this.ctx.status.requestDeletion(store.backups, b.id);
    await runtime.reconcileNow('backup', b.id);
    return (await store.backups.get(b.id)) ?? updated;
  }

  /**
   * Asks a pending or running backup to stop: the agent stops the run, removes its partial work and
   * the disk-engine snapshot, and the backup ends as cancelled. Refused (409 not_running) for one that ended.
   */
  async cancel(ref: string): Promise<Backup> {
    const { ctx } = this;
    const b = await ctx.store.backups.mustFind(ref);
    let refused: string | undefined;
    await ctx.status.edit(ctx.store.backups, b.id, (st, cur) => {
      if (st.phase === 'deleting') refused = `backup '${cur.name}' is being deleted (a running one is stopped by that)`;
      else if (backupSettled(st.phase))
        refused = `backup '${cur.name}' is ${st.phase}: there is no run to cancel (\`outrig backup delete ${cur.name}\` removes it)`;
      if (refused || st.cancel) return null;
      return { ...st, cancel: { requestedAt: ctx.clock.now().toISOString() } };
    });
    if (refused) throw new ServiceError(409, 'not_running', refused);
    await ctx.runtime.reconcileNow('backup', b.id);
    return (await ctx.store.backups.get(b.id)) ?? b;
  }

  /** Puts a backup's files (all, or some paths) under a directory of a host (by default the backup's), and says how much. */
  async restoreFiles(ref: string, o: RestoreFilesInput): Promise<FilesRestored> {
    const { store } = this.ctx;
    const { b, result } = await this.completed(ref);
    const { target, include = [] } = o;
    const bad = [target, ...include].find((p) => !isAbsolute(p));
    if (bad) throw new ServiceError(400, 'invalid_request', `target and include must be absolute paths, got '${bad}'`);
    const host = o.host ? await store.hosts.find(o.host) : b.status.hostId ? await store.hosts.get(b.status.hostId) : undefined;
    if (!host)
      throw new ServiceError(422, 'unknown_host', o.host ? `host '${o.host}' does not exist` : `backup '${b.name}' has no host left to restore on; name one`);
    if (!this.ctx.hub().isConnected(host.id)) throw new ServiceError(409, 'host_not_connected', `the agent of host ${host.name} is not connected`);
    const start = this.ctx.clock.now().getTime();
    const r = await this.sendDirect(host.id, {
      opId: `restore/${b.id}/${randomBytes(6).toString('hex')}`,
      kind: 'backup.restore-files',
      repository: repoOf(this.ctx.backup, b),
      snapshotId: result.snapshotId,
      target: normalize(target),
      include: include.map((p) => normalize(p)),
    });
    if (!r.ok) throw new ServiceError(500, 'restore_failed', `restore failed: ${r.error ?? 'unknown error'}`);
    const done = r.result as { files?: number; bytes?: number } | undefined;
    return {
      backup: b.id,
      host: host.name,
      target: normalize(target),
      files: done?.files ?? 0,
      bytes: done?.bytes ?? 0,
      seconds: (this.ctx.clock.now().getTime() - start) / 1000,
    };
  }

  /** Puts the backup's system state (OS configuration, boot files, boot loader) back into a machine disk no VM uses. */
  async restoreSystemState(ref: string, volumeRef: string): Promise<VolumeRestored> {
    const { b, result } = await this.completed(ref);
    if (!result.systemState.length)
      throw new ServiceError(422, 'no_system_state', `backup '${b.name}' holds no system state (no /etc or /boot on its filesystems)`);
    return this.intoVolume(b, result.snapshotId, volumeRef, { kind: 'backup.restore-system-state' }, () => 'system-state restore failed');
  }

  /** Puts files of a volume's backup (paths /p<partition>/<path>) back into a volume no VM uses. */
  async restoreIntoVolume(ref: string, volumeRef: string, paths: string[]): Promise<VolumeRestored> {
    const { b, result } = await this.completed(ref);
    const bad = paths.find((p) => !/^\/p\d+(\/|$)/.test(normalize(p)));
    if (bad) throw new ServiceError(400, 'invalid_request', `include: '${bad}' is not a path of a disk backup (/p<partition>/<path>, e.g. /p2/data.txt)`);
    // Filesystems read file by file (ext2/3/4) are the ones whose files the backup has.
    const roots = result.filesystems.filter((f) => /^ext[234]$/.test(f.type)).map((f) => `/p${f.partition}`);
    const outside = paths.find((p) => !roots.some((r) => normalize(p) === r || normalize(p).startsWith(`${r}/`)));
    if (outside)
      throw new ServiceError(
        422,
        'unknown_path',
        `include: '${outside}' is on none of backup ${b.name}'s filesystems (${roots.join(', ') || 'none read file by file'})`,
      );
    const include = paths.map((p) => normalize(p));
    return this.intoVolume(b, result.snapshotId, volumeRef, { kind: 'backup.restore-into-volume', include }, (vol) => `restore into volume ${vol.name} failed`);
  }

  /** A name no backup has yet. */
  private async freeName(name: string): Promise<string> {
    if (await this.ctx.store.backups.find(name)) throw new ServiceError(409, 'exists', `a backup named '${name}' exists`);
    return name;
  }

  /** A backup that restores can use: completed, with its snapshot. */
  private async completed(ref: string): Promise<{ b: Backup; result: BackupResult }> {
    const b = await this.ctx.store.backups.mustFind(ref);
    const result = b.status.result;
    if (b.status.phase !== 'completed' || !result) throw new ServiceError(409, 'backup_not_ready', `backup '${b.name}' is ${b.status.phase}`);
    return { b, result };
  }

  /** A volume files may be written into: it exists, is ready on a connected host, and no running VM has it. */
  private async idleVolume(ref: string): Promise<{ vol: Volume; hostId: string }> {
    const { store } = this.ctx;
    const hub = this.ctx.hub();
    const vol = await store.volumes.find(ref);
    if (!vol) throw new ServiceError(422, 'unknown_volume', `volume '${ref}' does not exist`);
    const hostId = vol.status.hostId;
    if (!hostId || (vol.status.phase !== 'available' && vol.status.phase !== 'in-use'))
      throw new ServiceError(409, 'volume_not_ready', `volume '${vol.name}' is ${vol.status.phase}`);
    if (!hub.isConnected(hostId)) throw new ServiceError(409, 'host_not_connected', `the agent of host ${vol.status.hostName ?? hostId} is not connected`);
    const plugged = new Set(hub.vmsWithDisk(hostId, vol.id).filter((id) => hub.vm(hostId, id)?.state !== 'stopped'));
    const users = (await store.instances.list()).filter(
      (i) =>
        plugged.has(i.id) || ((i.spec.bootVolume === vol.id || vol.spec.attachedTo === i.id) && !['stopped', 'failed', 'pending'].includes(i.status.phase)),
    );
    if (users.length || plugged.size)
      throw new ServiceError(
        409,
        'in_use',
        `volume '${vol.name}' is in use by instance ${users.map((i) => i.name).join(', ') || [...plugged].join(', ')}; stop it first`,
      );
    return { vol, hostId };
  }

  /** Sends a restore into a volume no VM uses to its host's agent and answers with what it put back. */
  private async intoVolume(
    b: Backup,
    snapshotId: string,
    volumeRef: string,
    op: { kind: 'backup.restore-system-state' } | { kind: 'backup.restore-into-volume'; include: string[] },
    failure: (vol: Volume) => string,
  ): Promise<VolumeRestored> {
    const { vol, hostId } = await this.idleVolume(volumeRef);
    const start = this.ctx.clock.now().getTime();
    const tag = op.kind === 'backup.restore-system-state' ? 'ssr' : 'into';
    const r = await this.sendDirect(hostId, {
      ...op,
      opId: `${tag}/${vol.id}/${randomBytes(6).toString('hex')}`,
      volumeId: vol.id,
      repository: repoOf(this.ctx.backup, b),
      snapshotId,
    });
    if (!r.ok) throw new ServiceError(500, 'restore_failed', `${failure(vol)}: ${r.error ?? 'unknown error'}`);
    return {
      backup: b.id,
      volume: vol.id,
      restored: (r.result as { paths?: string[] } | undefined)?.paths ?? [],
      seconds: (this.ctx.clock.now().getTime() - start) / 1000,
    };
  }

  /** Sends an operation whose answer the caller awaits itself (no resource folds it): a system-state or files restore. */
  private sendDirect(hostId: string, op: AgentOp): Promise<OpResult> {
    return this.ctx.ops.send({ kind: 'direct', key: hostId }, hostId, op);
  }
}
