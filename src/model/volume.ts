import { Type, type Static } from 'typebox';
import { Condition, resourceSchema, type Resource } from './common.ts';
import { LastOp } from './instance.ts';
import { BackupProgress } from './backup.ts';

const VOLUME_PHASES = ['pending', 'creating', 'available', 'in-use', 'deleting', 'failed'] as const;
export type VolumePhase = (typeof VOLUME_PHASES)[number];

export const VolumeSource = Type.Union([
  Type.Object({ snapshot: Type.String({ description: 'snapshot id: the new volume is a writable clone of it' }) }, { additionalProperties: false }),
  Type.Object({ image: Type.String({ description: 'disk image id: the new volume is a clone of it' }) }, { additionalProperties: false }),
  Type.Object(
    { backup: Type.String({ description: 'backup id: the new volume is the backed-up disk rebuilt (bare-metal recovery)' }) },
    { additionalProperties: false },
  ),
]);
export type VolumeSource = Static<typeof VolumeSource>;

export const VolumeSpec = Type.Object({
  sizeBytes: Type.Integer(),
  tenant: Type.String(),
  blockSize: Type.Optional(Type.Integer()),
  source: Type.Optional(VolumeSource),
  /** The instance this volume should be attached to. */
  attachedTo: Type.Optional(Type.String()),
  /** An instance that owns this volume (its boot disk made from an image) and deletes it with itself. */
  ownedBy: Type.Optional(Type.String()),
  /** Host to create the volume on; chosen by the controller when absent. */
  host: Type.Optional(Type.String()),
  /** The instance (id) it is made for: it goes to that instance's host, once the instance is placed. */
  forInstance: Type.Optional(Type.String()),
});
export type VolumeSpec = Static<typeof VolumeSpec>;

export const VolumeStatus = Type.Object({
  phase: Type.Enum(VOLUME_PHASES),
  conditions: Type.Array(Condition),
  hostId: Type.Optional(Type.String()),
  hostName: Type.Optional(Type.String()),
  /** Size as the host reports it. */
  sizeBytes: Type.Optional(Type.Integer()),
  usedBytes: Type.Optional(Type.Integer()),
  /** The instance whose running VM has the volume plugged in, as its host reports. */
  attachedTo: Type.Optional(Type.String()),
  observedGeneration: Type.Integer(),
  lastOp: Type.Optional(LastOp),
  message: Type.Optional(Type.String()),
  /** While the volume is rebuilt from a backup. */
  progress: Type.Optional(BackupProgress),
});
export type VolumeStatus = Static<typeof VolumeStatus>;

export const VolumeResource = resourceSchema('Volume', VolumeSpec, VolumeStatus);
export type Volume = Resource<VolumeSpec, VolumeStatus>;

const SNAPSHOT_PHASES = ['pending', 'creating', 'ready', 'deleting', 'failed'] as const;

export const SnapshotSpec = Type.Object({ volume: Type.String({ description: 'id of the snapshotted volume' }) });
export type SnapshotSpec = Static<typeof SnapshotSpec>;

export const SnapshotStatus = Type.Object({
  phase: Type.Enum(SNAPSHOT_PHASES),
  conditions: Type.Array(Condition),
  hostId: Type.Optional(Type.String()),
  /** Size of the volume when snapshotted. */
  sizeBytes: Type.Optional(Type.Integer()),
  lastOp: Type.Optional(LastOp),
  message: Type.Optional(Type.String()),
});
export type SnapshotStatus = Static<typeof SnapshotStatus>;

export const SnapshotResource = resourceSchema('Snapshot', SnapshotSpec, SnapshotStatus);
export type Snapshot = Resource<SnapshotSpec, SnapshotStatus>;
