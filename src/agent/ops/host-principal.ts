import type { OpHandler } from './types.ts';

export const hostPrincipal: OpHandler<'host.principal'> = {
  kind: 'host.principal',
  journaled: true,
  refreshesVolumes: true,
  run: (op, { supplicant }) => supplicant.apply(op.certificate),
};
