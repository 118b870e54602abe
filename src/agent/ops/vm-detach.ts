import type { OpHandler } from './types.ts';

export const vmDetach: OpHandler<'vm.detach'> = {
  kind: 'vm.detach',
  journaled: true,
  refreshesVolumes: false,
  run: (op, { vms }) => vms.detach(op.instanceId, op.volumeId),
};
