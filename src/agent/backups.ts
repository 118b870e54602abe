/**
 * The agent's backup operations: this host's own files (file by file), and its volumes: back a volume up from a disk-engine
 * snapshot (the guest keeps running and is not asked for help), rebuild a backup into a new volume
 * (bare-metal recovery), put a backup's system state back into a volume, forget a snapshot.
 * Nothing is mounted and no device is made: volumes are read and written over diskd's NBD socket.
 */
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { Archiver } from '../backup/index.ts';
import { backupDiskImage, backupLiveDisk, restoreDiskImage, restoreFilesIntoImage, restoreSystemState, type BmrManifest } from '../backup/index.ts';
import { findLiveDisk } from '../backup/index.ts';
import { Restorer } from '../backup/index.ts';
import { acquireLock } from '../backup/index.ts';
import { copyImageToExport, withExportImage } from '../backup/index.ts';
import { Repository, RepositoryError, type SnapshotRecord } from '../backup/index.ts';
import { ExistsError, LocalStorage } from '../backup/index.ts';
import { BACKUP_REQUIREMENTS, requireTools, VOLUME_BACKUP_REQUIREMENTS } from '../common/system-requirements.ts';
import type { BackupResult } from '../model/backup.ts';
import type { BackupRepoRef } from '../model/agent-protocol.ts';
import { ProgressThrottle, type ProgressSink } from './progress.ts';
import type { Storage } from './storage.ts';

/** Opens the repository, making it first if the directory holds none (the cluster's first backup there). */
async function openOrInit(ref: BackupRepoRef): Promise<Repository> {
  const storage = new LocalStorage(ref.path);
  if (!(await storage.exists('config', 'config'))) {
    await storage.create();
    try {
      return await Repository.init(storage, ref.passphrase);
    } catch (e) {
      // Another host made it at the same moment: use theirs.
      if (!(e instanceof ExistsError || e instanceof RepositoryError)) throw e;
    }
  }
  return Repository.open(storage, ref.passphrase);
}

async function withRepo<T>(ref: BackupRepoRef, purpose: string, fn: (repo: Repository) => Promise<T>): Promise<T> {
  const repo = await openOrInit(ref);
  const lock = await acquireLock(repo.storage, purpose, false);
  try {
    return await fn(repo);
  } finally {
    await lock.release();
  }
}

export class VolumeBackups {
  constructor(
    private readonly storage: Storage,
    /** Scratch space for temporary images: sparse, so only what the volume holds costs space. */
    private readonly workDir: string,
  ) {}

  /** Present while a volume is being rebuilt from a backup. */
  restoreMarker(volumeId: string): string {
    return join(this.work(), `restore-${volumeId}.pending`);
  }

  /**
   * At agent start: removes the scratch images a crash left, and names the volumes it left
   * half-restored (their restore runs again when the controller resends it).
   */
  recover(): string[] {
    const unfinished: string[] = [];
    for (const f of readdirSync(this.work())) {
      const m = /^restore-(.+)\.pending$/.exec(f);
      if (m) unfinished.push(m[1]!);
      else rmSync(join(this.workDir, f), { recursive: true, force: true });
    }
    return unfinished;
  }

  private work(): string {
    mkdirSync(this.workDir, { recursive: true, mode: 0o700 });
    return this.workDir;
  }

  /**
   * `signal` cancels it: the copy or the reading stops, no snapshot is written (packs sealed so far
   * stay as unreferenced data that prune removes), and the disk-engine snapshot is deleted.
   */
  async backup(
    o: { backupId: string; volumeId: string; repository: BackupRepoRef; tags: string[]; source: string },
    onProgress: ProgressSink,
    signal?: AbortSignal,
  ): Promise<BackupResult> {
    requireTools(VOLUME_BACKUP_REQUIREMENTS, 'backups');
    const start = Date.now();
    const progress = new ProgressThrottle(onProgress);
    // A point-in-time view of the volume; re-running after a crash reuses it.
    await this.storage.createSnapshot(o.volumeId, o.backupId);
    try {
      return await withRepo(o.repository, 'backup', async (repo) => {
        progress.push({ stage: 'copying the volume snapshot', files: 0, bytes: 0 });
        const r = await withExportImage(
          this.storage.nbdSocket,
          `${o.volumeId}@${o.backupId}`,
          (image) => {
            progress.push({ stage: 'reading its file systems', files: 0, bytes: 0 });
            return backupDiskImage(repo, image, {
              tags: o.tags,
              host: o.source,
              source: `volume ${o.source}`,
              name: `volume ${o.source}`,
              signal,
              onProgress: (p) => progress.push({ stage: 'backing up files', files: p.files, bytes: p.bytes }),
            });
          },
          this.work(),
          signal,
        );
        progress.flush();
        return diskResult(r, repo, start);
      });
    } finally {
      progress.stop();
      await this.storage.deleteSnapshot(o.volumeId, o.backupId);
    }
  }

  /**
   * Rebuilds a BMR-ready snapshot into an image, then into the (new, empty) volume. The caller keeps
   * the volume out of its reports until this resolves, and deletes it if this fails.
   */
  async restoreInto(volumeId: string, ref: BackupRepoRef, snapshotId: string, onProgress: ProgressSink): Promise<void> {
    requireTools(VOLUME_BACKUP_REQUIREMENTS, 'backups');
    const progress = new ProgressThrottle(onProgress);
    await withRepo(ref, 'restore', async (repo) => {
      const snap = await repo.findSnapshot(snapshotId);
      const image = join(this.work(), `restore-${volumeId}.raw`);
      try {
        progress.push({ stage: 'rebuilding the disk', files: 0, bytes: 0, totalBytes: snap.stats.bytes });
        await restoreDiskImage(repo, snap, image);
        progress.push({ stage: 'writing the volume', files: snap.stats.files, bytes: snap.stats.bytes, totalBytes: snap.stats.bytes });
        await copyImageToExport(image, this.storage.nbdSocket, volumeId);
      } finally {
        progress.stop();
        rmSync(image, { force: true });
      }
    });
  }

  /** SSR: the volume's disk is read into an image, the system state put back there, and the image written back. */
  restoreSystemState(volumeId: string, ref: BackupRepoRef, snapshotId: string): Promise<{ paths: string[] }> {
    return this.editVolume(volumeId, ref, snapshotId, (repo, snap, image) => restoreSystemState(repo, snap, image, `volume ${volumeId}`));
  }

  /** Files of a backup put back into the volume they came from. */
  restoreIntoVolume(volumeId: string, ref: BackupRepoRef, snapshotId: string, include: string[]): Promise<{ paths: string[] }> {
    return this.editVolume(volumeId, ref, snapshotId, (repo, snap, image) => restoreFilesIntoImage(repo, snap, image, include, { name: `volume ${volumeId}` }));
  }

  /** The volume read into an image, `edit` run on it with the snapshot, and the image written back. */
  private async editVolume<T>(
    volumeId: string,
    ref: BackupRepoRef,
    snapshotId: string,
    edit: (repo: Repository, snap: SnapshotRecord, image: string) => Promise<T>,
  ): Promise<T> {
    requireTools(VOLUME_BACKUP_REQUIREMENTS, 'backups');
    return withRepo(ref, 'restore', async (repo) => {
      const snap = await repo.findSnapshot(snapshotId);
      return withExportImage(
        this.storage.nbdSocket,
        volumeId,
        async (image) => {
          const r = await edit(repo, snap, image);
          await copyImageToExport(image, this.storage.nbdSocket, volumeId, { targetIsZero: false });
          return r;
        },
        this.work(),
      );
    });
  }

  /** A host's own files, file by file, incremental against the last backup of the same paths from this host. */
  async files(
    o: { paths: string[]; repository: BackupRepoRef; tags: string[]; bmr?: boolean },
    onProgress: ProgressSink,
    signal?: AbortSignal,
  ): Promise<BackupResult> {
    requireTools(o.bmr ? VOLUME_BACKUP_REQUIREMENTS : BACKUP_REQUIREMENTS.slice(0, 1), 'backups');
    const start = Date.now();
    const progress = new ProgressThrottle(onProgress);
    try {
      const r = await this.filesWith(o, start, progress.push, signal);
      progress.flush();
      return r;
    } finally {
      progress.stop();
    }
  }

  private async filesWith(
    o: { paths: string[]; repository: BackupRepoRef; tags: string[]; bmr?: boolean },
    start: number,
    progress: ProgressSink,
    signal?: AbortSignal,
  ): Promise<BackupResult> {
    if (o.bmr) {
      // Every path must be on the disk recorded: a record of one disk cannot stand for another.
      const disks = new Set(o.paths.map((p) => findLiveDisk(p).device));
      if (disks.size > 1) throw new Error(`the paths are on more than one disk (${[...disks].join(', ')}): make one bare-metal record per disk`);
      return withRepo(o.repository, 'backup', async (repo) => {
        const r = await backupLiveDisk(repo, o.paths[0]!, {
          tags: o.tags,
          signal,
          onProgress: (p) => progress({ stage: 'backing up files', files: p.files, bytes: p.bytes }),
        });
        return { ...diskResult(r, repo, start), diskBytes: r.disk.sizeBytes };
      });
    }
    return withRepo(o.repository, 'backup', async (repo) => {
      const paths = [...o.paths].sort();
      const parent = (await repo.snapshots()).filter((s) => s.hostname === hostname() && JSON.stringify(s.paths) === JSON.stringify(paths)).at(-1);
      const a = new Archiver(repo, {
        parent: parent?.id,
        tags: o.tags,
        signal,
        onProgress: (p) => progress({ stage: 'backing up files', files: p.files, bytes: p.bytes }),
      });
      const r = await a.run(paths);
      return {
        snapshotId: r.id,
        bmrReady: false,
        files: r.snapshot.stats.files,
        bytes: r.snapshot.stats.bytes,
        addedBytes: repo.stats.bytesStored,
        partitions: 0,
        filesystems: [],
        systemState: [],
        seconds: (Date.now() - start) / 1000,
        unreadable: a.progress.errors.length ? a.progress.errors.slice(0, 100) : undefined,
      };
    });
  }

  /** Files of a snapshot under `target` on this host (each at target/<original path>). */
  async restoreFiles(ref: BackupRepoRef, snapshotId: string, target: string, include: string[]): Promise<{ files: number; bytes: number }> {
    return withRepo(ref, 'restore', async (repo) => {
      const r = await new Restorer(repo, { include: include.length ? include : undefined }).run(await repo.findSnapshot(snapshotId), target);
      return { files: r.files, bytes: r.bytes };
    });
  }

  async forget(ref: BackupRepoRef, snapshotId: string): Promise<void> {
    await withRepo(ref, 'forget', async (repo) => {
      const known = (await repo.snapshots()).some((s) => s.id === snapshotId);
      if (known) await repo.removeSnapshot(snapshotId);
    });
  }
}

/** What a disk's backup (a volume's, or a host's own disk) answers with. */
function diskResult(
  r: { id: string; snapshot: SnapshotRecord; manifest: BmrManifest; skipped: { path: string; why: string }[]; warnings: string[] },
  repo: Repository,
  start: number,
): BackupResult {
  return {
    snapshotId: r.id,
    bmrReady: r.manifest.bmrReady,
    files: r.snapshot.stats.files,
    bytes: r.snapshot.stats.bytes,
    addedBytes: repo.stats.bytesStored,
    partitions: r.manifest.layout.partitions.length,
    filesystems: r.manifest.layout.filesystems.map((f) => ({ partition: f.partition, type: f.type, uuid: f.uuid, label: f.label })),
    systemState: r.manifest.ssr,
    bootLoader: r.manifest.bootLoader,
    mounts: r.manifest.mounts,
    seconds: (Date.now() - start) / 1000,
    // What the guest's disk held that a backup cannot carry safely (names, loops, sparse bombs), said, not hidden.
    unreadable:
      r.skipped.length || r.warnings.length
        ? [...r.warnings.map((w) => ({ path: '/', error: w })), ...r.skipped.map((s) => ({ path: s.path, error: `not backed up: ${s.why}` }))].slice(0, 100)
        : undefined,
  };
}
