import type { OpHandler } from './types.ts';

export const networkEnsure: OpHandler<'network.ensure'> = {
  kind: 'network.ensure',
  journaled: true,
  refreshesVolumes: true,
  run: (op, { network }) => network.ensure(op.segment, op.peers, op.macs),
};
