import type { OpHandler } from './types.ts';

export const backupRestoreSystemState: OpHandler<'backup.restore-system-state'> = {
  kind: 'backup.restore-system-state',
  journaled: true,
  refreshesVolumes: true,
  run: (op, { backups }) => backups.restoreSystemState(op.volumeId, op.repository, op.snapshotId),
};
