/**
 * What an operation handler is: one per operation kind (the registry in index.ts holds them all),
 * and the agent's services it works with.
 */
import type { Logger } from 'pino';
import type { AgentOp } from '../../model/agent-protocol.ts';
import type { VolumeBackups } from '../backups.ts';
import type { ImageCache } from '../image-cache.ts';
import type { HostNetwork } from '../networks.ts';
import type { ProgressSink } from '../progress.ts';
import type { Storage } from '../storage.ts';
import type { Supplicant } from '../supplicant.ts';
import type { VmManager } from '../vm-manager.ts';
import type { Cancellations } from './cancellations.ts';

export type OpKind = AgentOp['kind'];
export type OpOf<K extends OpKind> = Extract<AgentOp, { kind: K }>;
/** What an operation answers besides success (a backup's snapshot id and figures), if anything. */
export type OpResult = void | Record<string, unknown>;

export interface OpContext {
  vms: VmManager;
  storage: Storage;
  backups: VolumeBackups;
  network: HostNetwork;
  supplicant: Supplicant;
  images: Pick<ImageCache, 'download'>;
  /** Volumes being filled from a backup: not reported until they hold the whole disk. */
  filling: Set<string>;
  /** Operations that can be cancelled (backups), while they run. */
  cancellations: Cancellations;
  /** Sends an operation's progress to the controller. */
  progress(opId: string): ProgressSink;
  log: Logger;
}

export interface OpHandler<K extends OpKind> {
  kind: K;
  /**
   * Answered through the operation journal: a repeated id gets the first answer and the work is
   * not done again. Handlers that must act on every delivery say false.
   */
  journaled: boolean;
  /** The volume list and disk space are read again (and reported) once it ends, whether it worked or not. */
  refreshesVolumes: boolean;
  run(op: OpOf<K>, ctx: OpContext): Promise<OpResult>;
}
