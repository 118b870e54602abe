/** Cancels a running operation (a backup): it then answers failed with "cancelled on request". */
import type { OpHandler } from './types.ts';

export const opCancel: OpHandler<'op.cancel'> = {
  kind: 'op.cancel',
  // A cancel must act again on a re-sent run, so it is answered without the journal.
  journaled: false,
  refreshesVolumes: false,
  run: async (op, { cancellations, log }) => {
    if (cancellations.isRunning(op.target)) log.info({ op: op.target }, 'operation cancelled');
    return { running: cancellations.cancel(op.target, new Error('cancelled on request')) };
  },
};
