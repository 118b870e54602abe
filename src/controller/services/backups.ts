/** Backup actions the API takes: where new backups go, cancelling a run, and operations it awaits itself (restores). */
import type { AgentOp, BackupRepoRef } from '../../model/agent-protocol.ts';
import type { Backup } from '../../model/backup.ts';
import { backupSettled } from '../../model/backup.ts';
import type { Ctx } from '../context.ts';
import { repoOf } from '../backups/repository.ts';
import type { OpResult } from '../runtime/op-tracker.ts';

/** A cancel of a backup that has no run left to stop. */
export class CancelRefused extends Error {}

export class BackupService {
  constructor(private readonly ctx: Ctx) {}

  get defaultRepository(): string {
    return this.ctx.backup.defaultRepository;
  }

  repoOf(b: Pick<Backup, 'spec'>): BackupRepoRef {
    return repoOf(this.ctx.backup, b);
  }

  /**
   * Asks a pending or running backup to stop: the agent stops the run, removes its partial work and
   * the disk-engine snapshot, and the backup ends as cancelled. Throws CancelRefused for one that ended.
   * The caller has it reconciled.
   */
  async cancel(ref: string): Promise<Backup> {
    const { ctx } = this;
    const b = await ctx.store.backups.mustFind(ref);
    let refused: string | undefined;
    await ctx.status.edit(ctx.store.backups, b.id, (st, cur) => {
      if (st.phase === 'deleting') refused = `backup '${cur.name}' is being deleted (a running one is stopped by that)`;
      else if (backupSettled(st.phase)) refused = `backup '${cur.name}' is ${st.phase}: there is no run to cancel (\`outrig backup delete ${cur.name}\` removes it)`;
      if (refused || st.cancel) return null;
      return { ...st, cancel: { requestedAt: ctx.clock.now().toISOString() } };
    });
    if (refused) throw new CancelRefused(refused);
    return b;
  }

  /** Sends an operation whose answer the caller awaits itself (no resource folds it): a system-state or files restore. */
  sendDirect(hostId: string, op: AgentOp): Promise<OpResult> {
    return this.ctx.ops.send({ kind: 'direct', key: hostId }, hostId, op);
  }
}
