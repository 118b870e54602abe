import type { OpHandler } from './types.ts';

export const vmRestart: OpHandler<'vm.restart'> = {
  kind: 'vm.restart',
  journaled: true,
  refreshesVolumes: false,
  run: (op, { vms }) => vms.restart(op.instanceId, op.vm, { force: op.force }),
};
