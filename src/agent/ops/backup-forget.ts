import type { OpHandler } from './types.ts';

export const backupForget: OpHandler<'backup.forget'> = {
  kind: 'backup.forget',
  journaled: true,
  refreshesVolumes: true,
  run: (op, { backups }) => backups.forget(op.repository, op.snapshotId),
};
