import type { OpHandler } from './types.ts';

export const snapshotDelete: OpHandler<'snapshot.delete'> = {
  kind: 'snapshot.delete',
  journaled: true,
  refreshesVolumes: true,
  run: (op, { storage }) => storage.deleteSnapshot(op.volumeId, op.snapshotId),
};
