/**
 * Backups through the controller: each Backup resource is carried out by the agent of its volume's
 * host (backup.create), and forgotten in the repository when deleted (backup.forget). The cluster's
 * master secret stays with the controller: each backup is in the repository of its key scope (its
 * volume's, or its host's files'), whose passphrase is derived from the master and travels only
 * inside the operations that need it, on the mutual-TLS agent stream.
 */
import type { AgentOp } from '../../model/agent-protocol.ts';
import { backupSettled, type Backup } from '../../model/backup.ts';
import type { Ctx } from '../context.ts';
import type { Reconciler } from '../runtime/reconciler.ts';
import { planBackup } from './plan.ts';
import { repoOf } from './repository.ts';

export class BackupReconciler implements Reconciler {
  readonly kind = 'backup';

  constructor(private readonly ctx: Ctx) {}

  async reconcile(id: string): Promise<void> {
    const { ctx } = this;
    const b = await ctx.store.backups.get(id);
    if (!b) return;
    const hub = ctx.hub();
    const volume = b.spec.volume ? await ctx.store.volumes.get(b.spec.volume) : undefined;
    const hostId = b.status.hostId ?? b.spec.host ?? volume?.status.hostId;
    const host = hostId ? await ctx.store.hosts.get(hostId) : undefined;
    const last = b.status.lastOp;
    const answer = last?.state === 'sent' ? ctx.ops.answer(last.opId) : undefined;
    const plan = planBackup(b, {
      volume,
      host: { exists: !!host, connected: !!hostId && hub.isConnected(hostId), name: host?.name },
      answer,
      lastOpInFlight: ctx.ops.inFlight(last?.opId),
      now: ctx.clock.now(),
    });
    if (plan.remove) {
      await ctx.store.backups.delete(id);
      await ctx.ops.forgetOwner({ kind: 'backup', key: id });
      ctx.log.info({ backup: b.name }, 'backup deleted');
      return;
    }
    const wrote = await this.write(b, plan.status);
    // A policy's backup completed, failed or went: its retention may let older ones go.
    if (wrote && b.spec.policy && plan.status.phase !== b.status.phase && backupSettled(plan.status.phase)) ctx.runtime.enqueue('backupPolicy', b.spec.policy);
    if (answer) await ctx.ops.settle(last!.opId);
    if (!wrote) return;
    const target = plan.status.hostId!;
    if (plan.send) this.sendOp(b, target, plan.send, plan.status);
    // Sent after the run (a re-sent one): the agent reads its messages in order. A cancel's own
    // answer says only whether a run was there to stop: the run's answer is what counts.
    if (plan.cancel)
      ctx.ops
        .send({ kind: 'direct', key: id }, target, { opId: plan.cancel.opId, kind: 'op.cancel', target: plan.cancel.target })
        .catch(() => ctx.runtime.enqueue('backup', id));
  }

  private sendOp(b: Backup, target: string, send: NonNullable<ReturnType<typeof planBackup>['send']>, status: Backup['status']): void {
    const repository = repoOf(this.ctx.backup, b);
    const { opId, kind } = send;
    const op: AgentOp =
      kind === 'backup.create'
        ? { opId, kind, backupId: b.id, volumeId: b.spec.volume!, repository, tags: b.spec.tags, source: status.volumeName ?? b.spec.volume! }
        : kind === 'backup.files'
          ? { opId, kind, backupId: b.id, paths: b.spec.paths ?? [], repository, tags: b.spec.tags, bmr: b.spec.bmr }
          : { opId, kind, repository, snapshotId: status.result!.snapshotId };
    this.ctx.ops.send({ kind: 'backup', key: b.id }, target, op).catch(() => undefined);
  }

  /** Writes the planned status unless the backup changed meanwhile (deleted, a delete or cancel began): then it is planned again. */
  private async write(b: Backup, status: Backup['status']): Promise<boolean> {
    const { ctx } = this;
    const still = (cur: Backup['status'], read: Backup['status']) =>
      JSON.stringify(cur.lastOp) === JSON.stringify(read.lastOp) && !!cur.cancel === !!read.cancel;
    const wrote = await ctx.status.write(
      ctx.store.backups,
      b,
      (cur) => ({ ...status, progress: status.phase === 'running' ? (cur.progress ?? status.progress) : status.progress }),
      { still },
    );
    if (!wrote) {
      const cur = await ctx.store.backups.get(b.id);
      if (cur && JSON.stringify(cur.status) !== JSON.stringify(status)) ctx.runtime.enqueue('backup', b.id);
    }
    return wrote;
  }
}
