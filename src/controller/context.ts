/**
 * What every reconciler and service of the controller shares: the store, the agents' observed
 * state (the hub), the operation tracker, the status writer, the runtime's queues and the clock.
 */
import type { Logger } from 'pino';
import type { Store } from '../store/index.ts';
import type { AgentHub } from './agents/hub.ts';
import type { BackupConfig } from './backups/repository.ts';
import type { HostLiveness } from './hosts/liveness.ts';
import type { ControllerMetrics } from './metrics.ts';
import type { AllocationPolicy } from './placement/scheduler.ts';
import type { Clock } from './runtime/clock.ts';
import type { Manager } from './runtime/manager.ts';
import type { OpTracker } from './runtime/op-tracker.ts';
import type { StatusWriter } from './runtime/status-writer.ts';

export interface ControllerOptions {
  lostAfterMs: number;
  /** Safety net: every resource is reconciled at least this often (events do the real work). */
  resyncMs?: number;
  allocation: AllocationPolicy;
  clock: Clock;
  log: Logger;
  metrics: ControllerMetrics;
  backup: BackupConfig;
}

export interface Ctx {
  store: Store;
  /** The agents' streams and latest reports; set once the hub exists (it needs the controller's events). */
  hub(): AgentHub;
  ops: OpTracker;
  status: StatusWriter;
  runtime: Manager;
  liveness: HostLiveness;
  clock: Clock;
  log: Logger;
  metrics: ControllerMetrics;
  allocation: AllocationPolicy;
  lostAfterMs: number;
  backup: BackupConfig;
  /** Placement is serialised so two resources never both take the last free capacity. */
  serialize<T>(fn: () => Promise<T>): Promise<T>;
}

/** A host as a plan sees it: whether it exists, its agent is connected, and its name. */
export function hostView(ctx: Ctx, h: { name: string } | undefined, hostId: string | undefined) {
  return { exists: !!h, connected: !!hostId && ctx.hub().isConnected(hostId), name: h?.name };
}
