import type { OpHandler } from './types.ts';

export const backupFiles: OpHandler<'backup.files'> = {
  kind: 'backup.files',
  journaled: true,
  refreshesVolumes: true,
  run: async (op, { backups, cancellations, progress }) => ({
    ...(await cancellations.run(op.opId, (signal) => backups.files(op, progress(op.opId), signal))),
  }),
};
