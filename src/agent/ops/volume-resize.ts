import type { OpHandler } from './types.ts';

export const volumeResize: OpHandler<'volume.resize'> = {
  kind: 'volume.resize',
  journaled: true,
  refreshesVolumes: true,
  run: async (op, { storage }) => {
    await storage.resize(op.volumeId, op.sizeBytes);
  },
};
