/**
 * Every operation sent to an agent, from sending to its answer: which host it went to (an answer
 * from any other host is dropped), which resource owns it (its answer enqueues that owner: no
 * routing by id prefixes), and its state (sent, acknowledged by progress, answered, timed out).
 * Kept in the store, so an answer that arrives after a controller restart still reaches its owner
 * and the target check still holds. The operation itself is not kept (it may carry secrets).
 */
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { AgentOp } from '../../model/agent-protocol.ts';
import type { Database, OperationRow } from '../../store/index.ts';
import type { Clock, Timer } from './clock.ts';
import type { Kind, ObjectRef } from './reconciler.ts';

export interface OpResult {
  ok: boolean;
  error?: string;
  result?: Record<string, unknown>;
}

/** What carries operations to agents (the agent hub). */
export interface OpTransport {
  sendOp(hostId: string, op: AgentOp): Promise<OpResult>;
  /** Whether the operation was sent on the host's current stream and not answered yet. */
  isInFlight(hostId: string, opId: string): boolean;
}

/** An operation's owner: a resource, or a caller that awaits the answer itself (`direct`: nobody reconciles it). */
export type Owner = ObjectRef | { kind: 'direct'; key: string };

type OpState = 'sent' | 'acknowledged' | 'answered' | 'timed-out';

interface TrackedOp {
  opId: string;
  hostId: string;
  owner: Owner;
  kind: AgentOp['kind'];
  subject?: string;
  /** Only a failed answer wakes the owner (frequent, idempotent operations: balloon moves). */
  wakeOnFailureOnly?: boolean;
  state: OpState;
  sentAt: string;
  answeredAt?: string;
  result?: OpResult;
}

/** Records older than this are dropped at start (an owner that never came back for its answer). */
const MAX_AGE_MS = 7 * 24 * 3600_000;

export class OpTracker {
  private readonly ops = new Map<string, TrackedOp>();
  private readonly byOwner = new Map<string, Set<string>>();
  private readonly timers = new Map<string, Timer>();
  /** Writes of answers and states not yet committed (close waits for them). */
  private readonly writing = new Set<Promise<unknown>>();

  constructor(
    private readonly o: {
      db: Kysely<Database>;
      transport: () => OpTransport;
      clock: Clock;
      log: Logger;
      /** An operation of this owner was answered, timed out or could not be sent: look at it again. */
      wake: (owner: ObjectRef) => void;
    },
  ) {}

  /** Loads the operations a previous run of the controller sent and did not settle. */
  async load(): Promise<void> {
    const cutoff = new Date(this.o.clock.now().getTime() - MAX_AGE_MS).toISOString();
    await this.o.db.deleteFrom('operations').where('sent_at', '<', cutoff).execute();
    for (const row of await this.o.db.selectFrom('operations').selectAll().execute()) this.remember(fromRow(row));
  }

  /**
   * Records the operation, then sends it. Resolves with the answer (direct owners await it);
   * rejects if it could not be sent or the stream dropped first (the owner is woken either way).
   */
  async send(owner: Owner, hostId: string, op: AgentOp, opts: { subject?: string; timeoutMs?: number; wakeOnFailureOnly?: boolean } = {}): Promise<OpResult> {
    const prev = this.ops.get(op.opId);
    const t: TrackedOp = {
      opId: op.opId,
      hostId,
      owner,
      kind: op.kind,
      subject: opts.subject,
      wakeOnFailureOnly: opts.wakeOnFailureOnly,
      state: 'sent',
      sentAt: this.o.clock.now().toISOString(),
    };
    if (prev && prev.hostId !== hostId) this.forgetInMemory(op.opId);
    this.remember(t);
    const row = toRow(t);
    await this.o.db
      .insertInto('operations')
      .values(row)
      .onConflict((oc) => oc.column('op_id').doUpdateSet({ host_id: row.host_id, state: row.state, sent_at: row.sent_at, answered_at: null, result: null }))
      .execute();
    if (opts.timeoutMs !== undefined) {
      this.timers.get(op.opId)?.cancel();
      this.timers.set(
        op.opId,
        this.o.clock.after(opts.timeoutMs, () => {
          this.timers.delete(op.opId);
          const cur = this.ops.get(op.opId);
          if (!cur || cur.state === 'answered' || cur.state === 'timed-out') return;
          cur.state = 'timed-out';
          this.persist(cur);
          this.o.log.warn({ opId: op.opId, hostId, kind: op.kind }, 'operation timed out');
          this.wakeOwner(cur);
        }),
      );
    }
    return this.o
      .transport()
      .sendOp(hostId, op)
      .catch((e: unknown) => {
        this.wakeOwner(t);
        throw e;
      });
  }

  /** The host an operation was sent to (the hub takes answers only from it). */
  targetOf(opId: string): string | undefined {
    return this.ops.get(opId)?.hostId;
  }

  get(opId: string): TrackedOp | undefined {
    return this.ops.get(opId);
  }

  /** Sent on the host's current stream, not answered and not timed out. */
  inFlight(opId: string | undefined): boolean {
    const t = opId ? this.ops.get(opId) : undefined;
    return !!t && (t.state === 'sent' || t.state === 'acknowledged') && this.o.transport().isInFlight(t.hostId, t.opId);
  }

  /** The answer to an operation, once it came. */
  answer(opId: string | undefined): OpResult | undefined {
    return opId ? this.ops.get(opId)?.result : undefined;
  }

  /** The owner's operations (answered or not). */
  ofOwner(owner: Owner): TrackedOp[] {
    return [...(this.byOwner.get(ownerKey(owner)) ?? [])].map((id) => this.ops.get(id)!);
  }

  /** The owner has taken the answer into its status: the record goes. */
  async settle(opId: string): Promise<void> {
    if (!this.ops.has(opId)) return;
    this.forgetInMemory(opId);
    await this.o.db.deleteFrom('operations').where('op_id', '=', opId).execute();
  }

  /** The owner is gone: so are its records. */
  async forgetOwner(owner: Owner): Promise<void> {
    const ids = [...(this.byOwner.get(ownerKey(owner)) ?? [])];
    if (!ids.length) return;
    for (const id of ids) this.forgetInMemory(id);
    await this.o.db.deleteFrom('operations').where('owner_kind', '=', owner.kind).where('owner_key', '=', owner.key).execute();
  }

  /** An answer from a host: false (dropped) unless the operation was sent to that host. */
  onResult(hostId: string, opId: string, result: OpResult): boolean {
    const t = this.ops.get(opId);
    if (!t || t.hostId !== hostId) return false;
    this.timers.get(opId)?.cancel();
    this.timers.delete(opId);
    t.state = 'answered';
    t.answeredAt = this.o.clock.now().toISOString();
    t.result = { ok: result.ok, error: result.error, result: result.result };
    if (t.owner.kind === 'direct') {
      void this.settle(opId).catch((e: Error) => this.o.log.warn({ err: e.message, opId }, 'could not forget an operation'));
      return true;
    }
    this.persist(t);
    if (!(t.wakeOnFailureOnly && result.ok)) this.wakeOwner(t);
    return true;
  }

  /** Progress proves the agent has the operation. */
  onProgress(hostId: string, opId: string): TrackedOp | undefined {
    const t = this.ops.get(opId);
    if (!t || t.hostId !== hostId) return undefined;
    if (t.state === 'sent') {
      t.state = 'acknowledged';
      this.persist(t);
    }
    return t;
  }

  /** A host's stream closed: what it had not answered must be looked at (and sent again on the next one). */
  onDisconnect(hostId: string): void {
    for (const t of this.ops.values()) if (t.hostId === hostId && (t.state === 'sent' || t.state === 'acknowledged')) this.wakeOwner(t);
  }

  /** Stops the timers and waits for the records being written. */
  async close(): Promise<void> {
    for (const t of this.timers.values()) t.cancel();
    this.timers.clear();
    await Promise.all([...this.writing]);
  }

  private wakeOwner(t: TrackedOp): void {
    if (t.owner.kind !== 'direct') this.o.wake(t.owner);
  }

  private persist(t: TrackedOp): void {
    const w = this.o.db
      .updateTable('operations')
      .set({ state: t.state, answered_at: t.answeredAt ?? null, result: t.result ? JSON.stringify(t.result) : null })
      .where('op_id', '=', t.opId)
      .execute()
      .catch((e: Error) => this.o.log.warn({ err: e.message, opId: t.opId }, 'could not record an operation'));
    this.writing.add(w);
    void w.finally(() => this.writing.delete(w));
  }

  private remember(t: TrackedOp): void {
    this.ops.set(t.opId, t);
    const k = ownerKey(t.owner);
    const set = this.byOwner.get(k) ?? new Set();
    set.add(t.opId);
    this.byOwner.set(k, set);
  }

  private forgetInMemory(opId: string): void {
    const t = this.ops.get(opId);
    if (!t) return;
    this.ops.delete(opId);
    this.timers.get(opId)?.cancel();
    this.timers.delete(opId);
    const k = ownerKey(t.owner);
    this.byOwner.get(k)?.delete(opId);
    if (!this.byOwner.get(k)?.size) this.byOwner.delete(k);
  }
}

function ownerKey(o: Owner): string {
  return `${o.kind}\u0000${o.key}`;
}

function toRow(t: TrackedOp): OperationRow {
  return {
    op_id: t.opId,
    host_id: t.hostId,
    owner_kind: t.owner.kind,
    owner_key: t.owner.key,
    kind: t.kind,
    subject: t.subject ?? null,
    state: t.state,
    sent_at: t.sentAt,
    answered_at: t.answeredAt ?? null,
    result: t.result ? JSON.stringify(t.result) : null,
  };
}

function fromRow(r: OperationRow): TrackedOp {
  return {
    opId: r.op_id,
    hostId: r.host_id,
    owner: { kind: r.owner_kind as Kind, key: r.owner_key },
    kind: r.kind as AgentOp['kind'],
    subject: r.subject ?? undefined,
    state: r.state as OpState,
    sentAt: r.sent_at,
    answeredAt: r.answered_at ?? undefined,
    result: r.result ? (JSON.parse(r.result) as OpResult) : undefined,
  };
}
