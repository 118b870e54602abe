/**
 * Backups of volumes made through the controller: each Backup is one snapshot in a backup
 * repository (src/backup), taken by the agent of the volume's host from a disk-engine snapshot.
 */
import { Type, type Static } from 'typebox';
import { Condition, resourceSchema, type Resource } from './common.ts';
import { LastOp } from './instance.ts';

const BACKUP_PHASES = ['pending', 'running', 'completed', 'failed', 'cancelled', 'deleting'] as const;
type BackupPhase = (typeof BACKUP_PHASES)[number];

/** A backup that will not change any more (unless deleted): it ended, one way or another. */
export function backupSettled(phase: BackupPhase): boolean {
  return phase === 'completed' || phase === 'failed' || phase === 'cancelled';
}

export const BackupSpec = Type.Object({
  /** Id of the volume backed up (a BMR-ready disk backup); absent for a host's files. */
  volume: Type.Optional(Type.String()),
  /** Or a host's own files: the host (id) whose agent reads them, and the absolute paths. */
  host: Type.Optional(Type.String()),
  paths: Type.Optional(Type.Array(Type.String())),
  /** With host: a bare-metal record of the host's disk holding the paths (every filesystem on it, layout, boot loader). */
  bmr: Type.Optional(Type.Boolean()),
  /** Repository directory, as the volume's host sees it. */
  repository: Type.String(),
  /**
   * The key scope: the repository under `repository` this backup is in, with a key of its own
   * (`volumes/<volume id>` or `hosts/<host id>`). Backups made before keys were scoped have none:
   * they are in the shared repository at `repository`, opened with the cluster's master secret.
   */
  scope: Type.Optional(Type.String({ pattern: '^(volumes|hosts)/[a-z0-9][a-z0-9-]{0,62}$' })),
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
  filesystems: Type.Array(
    Type.Object({ partition: Type.Integer(), type: Type.String(), uuid: Type.Optional(Type.String()), label: Type.Optional(Type.String()) }),
  ),
  systemState: Type.Array(Type.String()),
  /** What the disk boots with, and where its filesystems are mounted (from its /etc/fstab). */
  bootLoader: Type.Optional(Type.Object({ kind: Type.String(), partition: Type.Optional(Type.Integer()), config: Type.Optional(Type.String()) })),
  mounts: Type.Optional(Type.Array(Type.Object({ partition: Type.Integer(), mountPoint: Type.String(), options: Type.Optional(Type.String()) }))),
  seconds: Type.Number(),
  /** The recorded disk's size (a host's bare-metal record; a volume's size is known from the volume). */
  diskBytes: Type.Optional(Type.Integer()),
  /** Files that could not be read (a host's files: the snapshot holds the rest). */
  unreadable: Type.Optional(Type.Array(Type.Object({ path: Type.String(), error: Type.String() }))),
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
  /**
   * A cancel was asked for (`requestedAt`); `sentAt`: the agent was told to stop the run (told again
   * if the run is sent again after a dropped connection). The run ends as cancelled.
   */
  cancel: Type.Optional(Type.Object({ requestedAt: Type.String(), sentAt: Type.Optional(Type.String()) })),
  message: Type.Optional(Type.String()),
});
export type BackupStatus = Static<typeof BackupStatus>;

export const BackupResource = resourceSchema('Backup', BackupSpec, BackupStatus);
export type Backup = Resource<BackupSpec, BackupStatus>;

/** The key scope of a new backup: its volume's, or its host's for a host's own files. */
export function backupScope(spec: { volume?: string; host?: string }): string {
  return spec.volume ? `volumes/${spec.volume}` : `hosts/${spec.host}`;
}

/** `<base>-<yyyymmdd-hhmmss>`, within a name's 63 characters. */
export function backupName(base: string, now: Date): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15).toLowerCase();
  return `${base.slice(0, 63 - stamp.length - 1).replace(/-+$/, '')}-${stamp}`;
}

export const Retention = Type.Object(
  {
    last: Type.Optional(Type.Integer({ minimum: 0, maximum: 100_000, description: 'keep the newest n backups' })),
    daily: Type.Optional(Type.Integer({ minimum: 0, maximum: 100_000, description: 'keep the newest backup of each of the last n days' })),
    weekly: Type.Optional(Type.Integer({ minimum: 0, maximum: 100_000, description: 'the same per ISO week' })),
    monthly: Type.Optional(Type.Integer({ minimum: 0, maximum: 100_000, description: 'the same per month' })),
  },
  { additionalProperties: false },
);
export type Retention = Static<typeof Retention>;

export const BackupPolicySpec = Type.Object({
  /** Cron expression (minute hour day month weekday), in UTC. */
  schedule: Type.String(),
  /** Instances whose labels include all of these have their boot volume backed up; empty means every instance with a boot volume. */
  instanceLabels: Type.Record(Type.String(), Type.String()),
  /** Applied per volume to the backups this policy made. */
  retention: Retention,
  repository: Type.String(),
  paused: Type.Boolean(),
});
export type BackupPolicySpec = Static<typeof BackupPolicySpec>;

export const BackupPolicyStatus = Type.Object({
  phase: Type.Union([Type.Literal('active'), Type.Literal('paused')]),
  conditions: Type.Array(Condition),
  observedGeneration: Type.Integer(),
  nextRunAt: Type.Optional(Type.String()),
  /** Set by a "run now" request; cleared by the run. */
  runRequestedAt: Type.Optional(Type.String()),
  lastRun: Type.Optional(
    Type.Object({
      at: Type.String(),
      /** Backups started by the run. */
      started: Type.Array(Type.String()),
      skipped: Type.Array(Type.Object({ instance: Type.String(), reason: Type.String() })),
    }),
  ),
  /** Backups deleted by the retention rules so far. */
  expired: Type.Integer(),
});
export type BackupPolicyStatus = Static<typeof BackupPolicyStatus>;

export const BackupPolicyResource = resourceSchema('BackupPolicy', BackupPolicySpec, BackupPolicyStatus);
export type BackupPolicy = Resource<BackupPolicySpec, BackupPolicyStatus>;
