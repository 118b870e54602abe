/**
 * Carries out an operation and gives the answer to send: through the operation journal unless its
 * handler says not, and with the volume list read again after the ones that change storage.
 */
import type { Logger } from 'pino';
import type { AgentMessage, AgentOp } from '../../model/agent-protocol.ts';
import type { OpJournal } from '../op-journal.ts';
import { handlerOf, handlers } from './index.ts';
import type { OpContext, OpResult } from './types.ts';

export type OpResultMessage = Extract<AgentMessage, { type: 'op-result' }>;

interface OpDispatcherOptions {
  journal: Pick<OpJournal, 'run'>;
  ctx: OpContext;
  /** Reads the volumes and disk space again and reports them. */
  refreshVolumes: () => Promise<void>;
  log: Logger;
}

export class OpDispatcher {
  constructor(private readonly o: OpDispatcherOptions) {}

  async answer(op: AgentOp): Promise<OpResultMessage> {
    const opId = op.opId;
    // The stream is not schema-checked: a kind this agent has no handler for is refused, not looked up.
    if (!Object.hasOwn(handlers, op.kind)) {
      this.o.log.warn({ op: opId, kind: String(op.kind) }, 'unknown operation kind');
      return { type: 'op-result', opId, ok: false, error: `this agent does not know operation kind ${JSON.stringify(op.kind)}` };
    }
    if (!handlerOf(op).journaled) {
      return this.run(op).then(
        (result): OpResultMessage => ({ type: 'op-result', opId, ok: true, ...(result ? { result } : {}) }),
        (e: Error): OpResultMessage => ({ type: 'op-result', opId, ok: false, error: e.message }),
      );
    }
    this.o.log.info({ op: opId, kind: op.kind }, 'operation');
    const r = await this.o.journal.run(opId, () => this.run(op));
    if (!r.ok) this.o.log.warn({ op: opId, err: r.error }, 'operation failed');
    return { type: 'op-result', opId, ok: r.ok, error: r.error, result: r.result };
  }

  private async run(op: AgentOp): Promise<OpResult> {
    const h = handlerOf(op);
    if (!h.refreshesVolumes) return h.run(op, this.o.ctx);
    try {
      return await h.run(op, this.o.ctx);
    } finally {
      await this.o.refreshVolumes().catch((e: Error) => this.o.log.warn({ err: e.message }, 'could not list volumes'));
    }
  }
}
