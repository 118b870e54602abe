import type { OpHandler } from './types.ts';

export const vmDelete: OpHandler<'vm.delete'> = {
  kind: 'vm.delete',
  journaled: true,
  refreshesVolumes: false,
  run: (op, { vms }) => vms.delete(op.instanceId),
};
