import type { OpHandler } from './types.ts';

export const backupRestoreFiles: OpHandler<'backup.restore-files'> = {
  kind: 'backup.restore-files',
  journaled: true,
  refreshesVolumes: true,
  run: (op, { backups }) => backups.restoreFiles(op.repository, op.snapshotId, op.target, op.include),
};
