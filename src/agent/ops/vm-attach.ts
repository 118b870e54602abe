import type { OpHandler } from './types.ts';

export const vmAttach: OpHandler<'vm.attach'> = {
  kind: 'vm.attach',
  journaled: true,
  refreshesVolumes: false,
  run: (op, { vms }) => vms.attach(op.instanceId, op.volumeId, op.tag),
};
