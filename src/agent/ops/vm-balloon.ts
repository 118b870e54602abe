/** Moves the guest's balloon to a target. */
import type { OpHandler } from './types.ts';

export const vmBalloon: OpHandler<'vm.balloon'> = {
  kind: 'vm.balloon',
  // Setting a balloon target is idempotent and frequent: answered without the journal.
  journaled: false,
  refreshesVolumes: false,
  run: (op, { vms }) => vms.balloon(op.instanceId, op.targetMiB),
};
