import type { OpHandler } from './types.ts';

export const volumeDelete: OpHandler<'volume.delete'> = {
  kind: 'volume.delete',
  journaled: true,
  refreshesVolumes: true,
  run: (op, { storage }) => storage.deleteVolume(op.volumeId),
};
