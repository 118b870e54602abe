import type { OpHandler } from './types.ts';

export const vmStart: OpHandler<'vm.start'> = {
  kind: 'vm.start',
  journaled: true,
  refreshesVolumes: false,
  run: (op, { vms }) => vms.start(op.instanceId, op.vm),
};
