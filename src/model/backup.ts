/**
 * Backups of volumes made through the controller: each Backup is one snapshot in a backup
 * repository (src/backup), taken by the agent of the volume's host from a disk-engine snapshot.
 */
import { Type, type Static } from 'typebox';
import { Condition, resourceSchema, type Resource } from './common.ts';
import { LastOp } from './instance.ts';

export const BACKUP_PHASES = ['pending', 'running', 'completed', 'failed', 'deleting'] as const;
export type BackupPhase = (typeof BACKUP_PHASES)[number];

export const BackupSpec = Type.Object({
  /** Id of the volume backed up. */
  volume: Type.String(),
  /** Repository directory, as the volume's host sees it. */
  repository: Type.String(),
  tags: Type.Array(Type.String()),
  /** The BackupPolicy that made it, if any. */
  policy: Type.Optional(Type.String()),
});
export type BackupSpec = Static<typeof BackupSpec>;

export const BackupProgress = Type.Object({ files: Type.Integer(), bytes: Type.Integer(), totalBytes: Type.Optional(Type.Integer()), stage: Type.String() });
export type BackupProgress = Static<typeof BackupProgress>;

/** What the agent answers when a backup is done. */
export const BackupResult = Type.Object({
  snapshotId: Type.String(),
  bmrReady: Type.Boolean(),
  files: Type.Integer(),
  bytes: Type.Integer(),
  addedBytes: Type.Integer(),
  partitions: Type.Integer(),
  filesystems: Type.Array(Type.Object({ partition: Type.Integer(), type: Type.String(), uuid: Type.Optional(Type.String()), label: Type.Optional(Type.String()) })),
  systemState: Type.Array(Type.String()),
  seconds: Type.Number(),
});
export type BackupResult = Static<typeof BackupResult>;

export const BackupStatus = Type.Object({
  phase: Type.Enum(BACKUP_PHASES),
  conditions: Type.Array(Condition),
  hostId: Type.Optional(Type.String()),
  /** Name of the volume when it was backed up (the volume may be gone since). */
  volumeName: Type.Optional(Type.String()),
  /** Size of the volume: a bare-metal restore makes a volume this big. */
  sizeBytes: Type.Optional(Type.Integer()),
  startedAt: Type.Optional(Type.String()),
  completedAt: Type.Optional(Type.String()),
  progress: Type.Optional(BackupProgress),
  result: Type.Optional(BackupResult),
  lastOp: Type.Optional(LastOp),
  message: Type.Optional(Type.String()),
});
export type BackupStatus = Static<typeof BackupStatus>;

export const BackupResource = resourceSchema('Backup', BackupSpec, BackupStatus);
export type Backup = Resource<BackupSpec, BackupStatus>;
