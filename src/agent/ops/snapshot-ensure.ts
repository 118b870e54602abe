import type { OpHandler } from './types.ts';

export const snapshotEnsure: OpHandler<'snapshot.ensure'> = {
  kind: 'snapshot.ensure',
  journaled: true,
  refreshesVolumes: true,
  run: (op, { storage }) => storage.createSnapshot(op.volumeId, op.snapshotId),
};
