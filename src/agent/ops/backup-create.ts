import type { OpHandler } from './types.ts';

export const backupCreate: OpHandler<'backup.create'> = {
  kind: 'backup.create',
  journaled: true,
  refreshesVolumes: true,
  run: async (op, { backups, cancellations, progress }) => ({
    ...(await cancellations.run(op.opId, (signal) => backups.backup(op, progress(op.opId), signal))),
  }),
};
