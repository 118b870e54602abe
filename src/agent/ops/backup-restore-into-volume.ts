import type { OpHandler } from './types.ts';

export const backupRestoreIntoVolume: OpHandler<'backup.restore-into-volume'> = {
  kind: 'backup.restore-into-volume',
  journaled: true,
  refreshesVolumes: true,
  run: (op, { backups }) => backups.restoreIntoVolume(op.volumeId, op.repository, op.snapshotId, op.include),
};
