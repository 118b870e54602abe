import type { OpHandler } from './types.ts';

export const networkRemove: OpHandler<'network.remove'> = {
  kind: 'network.remove',
  journaled: true,
  refreshesVolumes: true,
  run: (op, { network }) => network.remove(op.segment),
};
