/**
 * The one shape every reconciler has: `reconcile(key)` reads the desired and observed state of one
 * resource, acts, and says when (if ever) it wants to look again. Errors are retried with backoff;
 * a TerminalError is not (retrying cannot fix it: it is logged and counted, and the resource waits
 * for its next change).
 */

/** The resource kinds the runtime runs reconcilers for; also the owners of agent operations. */
export const KINDS = ['host', 'instance', 'volume', 'snapshot', 'memory', 'backup', 'backupPolicy', 'network', 'hostCluster'] as const;
export type Kind = (typeof KINDS)[number];

export interface ReconcileResult {
  /** Look at the key again after this many ms (a deadline, a schedule), even if nothing changes. */
  requeueAfter?: number;
}

export interface Reconciler {
  readonly kind: Kind;
  reconcile(key: string): Promise<ReconcileResult | void>;
}

export class TerminalError extends Error {
  override readonly name = 'TerminalError';
}

/** A (kind, key) pair: what an event or an operation answer points the runtime at. */
export interface ObjectRef {
  kind: Kind;
  key: string;
}
