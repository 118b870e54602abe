import type { OpHandler } from './types.ts';

export const vmStop: OpHandler<'vm.stop'> = {
  kind: 'vm.stop',
  journaled: true,
  refreshesVolumes: false,
  run: (op, { vms }) => vms.stop(op.instanceId, { force: op.force }),
};
