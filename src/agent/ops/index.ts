/**
 * The operation registry: the handler of every operation kind the controller sends. Typed over the
 * protocol's kinds, so a kind added to AgentOp without a handler here does not compile.
 */
import type { AgentOp } from '../../model/agent-protocol.ts';
import { backupCreate } from './backup-create.ts';
import { backupFiles } from './backup-files.ts';
import { backupForget } from './backup-forget.ts';
import { backupRestoreFiles } from './backup-restore-files.ts';
import { backupRestoreIntoVolume } from './backup-restore-into-volume.ts';
import { backupRestoreSystemState } from './backup-restore-system-state.ts';
import { hostPrincipal } from './host-principal.ts';
import { networkEnsure } from './network-ensure.ts';
import { networkRemove } from './network-remove.ts';
import { opCancel } from './op-cancel.ts';
import { snapshotDelete } from './snapshot-delete.ts';
import { snapshotEnsure } from './snapshot-ensure.ts';
import type { OpContext, OpHandler, OpKind, OpResult } from './types.ts';
import { vmAttach } from './vm-attach.ts';
import { vmBalloon } from './vm-balloon.ts';
import { vmDelete } from './vm-delete.ts';
import { vmDetach } from './vm-detach.ts';
import { vmRestart } from './vm-restart.ts';
import { vmStart } from './vm-start.ts';
import { vmStop } from './vm-stop.ts';
import { volumeDelete } from './volume-delete.ts';
import { volumeEnsure } from './volume-ensure.ts';
import { volumeResize } from './volume-resize.ts';

export { Cancellations } from './cancellations.ts';
export type { OpContext, OpHandler, OpKind, OpOf, OpResult } from './types.ts';

export const handlers: { readonly [K in OpKind]: OpHandler<K> } = {
  'vm.start': vmStart,
  'vm.restart': vmRestart,
  'vm.stop': vmStop,
  'vm.delete': vmDelete,
  'vm.attach': vmAttach,
  'vm.detach': vmDetach,
  'vm.balloon': vmBalloon,
  'op.cancel': opCancel,
  'volume.ensure': volumeEnsure,
  'volume.resize': volumeResize,
  'volume.delete': volumeDelete,
  'snapshot.ensure': snapshotEnsure,
  'snapshot.delete': snapshotDelete,
  'backup.create': backupCreate,
  'backup.files': backupFiles,
  'backup.restore-files': backupRestoreFiles,
  'backup.forget': backupForget,
  'backup.restore-system-state': backupRestoreSystemState,
  'backup.restore-into-volume': backupRestoreIntoVolume,
  'network.ensure': networkEnsure,
  'network.remove': networkRemove,
  'host.principal': hostPrincipal,
};

/**
 * The handler of an operation, typed for it. (TypeScript cannot relate `handlers[op.kind]` to `op`
 * by itself; the record's type above is what guarantees the pairing.)
 */
export function handlerOf<K extends OpKind>(op: Extract<AgentOp, { kind: K }>): OpHandler<K> {
  return handlers[op.kind as K] as OpHandler<K>;
}

/** Runs the operation's handler. */
export function runOp(op: AgentOp, ctx: OpContext): Promise<OpResult> {
  return handlerOf(op).run(op, ctx);
}
