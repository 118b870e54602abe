/**
 * Backups through the controller: each Backup resource is carried out by the agent of its volume's
 * host (backup.create), and forgotten in the repository when deleted (backup.forget). The cluster's
 * master secret stays with the controller: each backup is in the repository of its key scope (its
 * volume's, or its host's files'), whose passphrase is derived from the master and travels only
 * inside the operations that need it, on the mutual-TLS agent stream.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import { scopePassphrase } from '../../backup/crypto.ts';
import type { AgentOp, BackupRepoRef } from '../../model/agent-protocol.ts';
import { backupSettled, type Backup, type BackupProgress } from '../../model/backup.ts';
import type { Store } from '../../store/index.ts';
import type { AgentHub, OpResult } from '../agents/hub.ts';
import { backupOpIds, planBackup } from './plan.ts';

export interface BackupConfig {
  /** The repository backups go to unless they name one. */
  defaultRepository: string;
  /** The master secret every scope's passphrase is derived from (never sent to a host). */
  passphrase: string;
}

export class BackupReconciler {
  private readonly answers = new Map<string, OpResult>();

  constructor(
    private readonly o: {
      store: Store;
      hub: () => AgentHub;
      config: BackupConfig;
      clock: () => Date;
      log: Logger;
      enqueue: (id: string) => void;
      /** A policy's backup completed, failed or went: its retention may let older ones go. */
      settled: (policyId: string) => void;
    },
  ) {}

  get defaultRepository(): string {
    return this.o.config.defaultRepository;
  }

  /** The repository a backup is in and its passphrase: its scope's, or for a backup from before scopes, the shared one. */
  repoOf(b: Backup): BackupRepoRef {
    const scope = b.spec.scope;
    if (!scope) return { path: b.spec.repository, passphrase: this.o.config.passphrase };
    return { path: join(b.spec.repository, scope), passphrase: scopePassphrase(this.o.config.passphrase, scope) };
  }

  onOpResult(opId: string, result: OpResult): void {
    const id = opId.split('/')[0]!;
    // A cancel's own answer says only whether a run was there to stop: the run's answer is what counts.
    if (opId === backupOpIds({ id }).cancel) return;
    this.answers.set(opId, result);
    this.o.enqueue(id);
  }

  /**
   * Asks a pending or running backup to stop: the agent stops the run, removes its partial work and
   * the disk-engine snapshot, and the backup ends as cancelled. Throws CancelRefused for one that ended.
   * The caller has it reconciled.
   */
  async cancel(ref: string): Promise<Backup> {
    const b = await this.o.store.backups.mustFind(ref);
    let refused: string | undefined;
    await this.o.store.backups.update(b.id, (cur) => {
      if (cur.status.phase === 'deleting') refused = `backup '${cur.name}' is being deleted (a running one is stopped by that)`;
      else if (backupSettled(cur.status.phase)) refused = `backup '${cur.name}' is ${cur.status.phase}: there is no run to cancel (\`outrig backup delete ${cur.name}\` removes it)`;
      if (refused || cur.status.cancel) return null;
      return { status: { ...cur.status, cancel: { requestedAt: this.o.clock().toISOString() } } };
    });
    if (refused) throw new CancelRefused(refused);
    return b;
  }

  /** Progress of a running backup, written into its status (the agent sends it about once a second). */
  async onProgress(opId: string, progress: BackupProgress): Promise<void> {
    const id = opId.split('/')[0]!;
    await this.o.store.backups.update(id, (cur) => (cur.status.phase === 'running' ? { status: { ...cur.status, progress } } : null));
  }

  async reconcile(id: string): Promise<void> {
    const b = await this.o.store.backups.get(id);
    if (!b) return;
    const hub = this.o.hub();
    const volume = b.spec.volume ? await this.o.store.volumes.get(b.spec.volume) : undefined;
    const hostId = b.status.hostId ?? b.spec.host ?? volume?.status.hostId;
    const host = hostId ? await this.o.store.hosts.get(hostId) : undefined;
    const last = b.status.lastOp;
    const answer = last?.state === 'sent' ? this.answers.get(last.opId) : undefined;
    const plan = planBackup(b, {
      volume,
      host: { exists: !!host, connected: !!hostId && hub.isConnected(hostId), name: host?.name },
      answer,
      lastOpInFlight: !!hostId && !!last && hub.isInFlight(hostId, last.opId),
      now: this.o.clock(),
    });
    if (plan.remove) {
      await this.o.store.backups.delete(id);
      this.o.log.info({ backup: b.name }, 'backup deleted');
      return;
    }
    const wrote = await this.write(b, plan.status);
    if (wrote && b.spec.policy && plan.status.phase !== b.status.phase && backupSettled(plan.status.phase)) this.o.settled(b.spec.policy);
    if (answer) this.answers.delete(last!.opId);
    if (!wrote) return;
    const target = plan.status.hostId!;
    if (plan.send) this.sendOp(b, target, plan.send, plan.status);
    // Sent after the run (a re-sent one): the agent reads its messages in order.
    if (plan.cancel) hub.sendOp(target, { opId: plan.cancel.opId, kind: 'op.cancel', target: plan.cancel.target }).catch(() => this.o.enqueue(id));
  }

  private sendOp(b: Backup, target: string, send: NonNullable<ReturnType<typeof planBackup>['send']>, status: Backup['status']): void {
    const hub = this.o.hub();
    const repository = this.repoOf(b);
    const { opId, kind } = send;
    const op: AgentOp =
      kind === 'backup.create'
        ? { opId, kind, backupId: b.id, volumeId: b.spec.volume!, repository, tags: b.spec.tags, source: status.volumeName ?? b.spec.volume! }
        : kind === 'backup.files'
          ? { opId, kind, backupId: b.id, paths: b.spec.paths ?? [], repository, tags: b.spec.tags, bmr: b.spec.bmr }
          : { opId, kind, repository, snapshotId: status.result!.snapshotId };
    hub.sendOp(target, op).catch(() => this.o.enqueue(b.id));
  }

  /** Writes the planned status unless the backup changed meanwhile (deleted, a delete or cancel began): then it is planned again. */
  private async write(b: Backup, status: Backup['status']): Promise<boolean> {
    let wrote = false;
    await this.o.store.backups.update(b.id, (cur) => {
      if ((cur.status.phase === 'deleting') !== (b.status.phase === 'deleting') || JSON.stringify(cur.status.lastOp) !== JSON.stringify(b.status.lastOp)) return null;
      if (!!cur.status.cancel !== !!b.status.cancel) return null;
      if (JSON.stringify(cur.status) === JSON.stringify(status)) return null;
      wrote = true;
      return { status: { ...status, progress: status.phase === 'running' ? (cur.status.progress ?? status.progress) : status.progress } };
    });
    if (!wrote) {
      const cur = await this.o.store.backups.get(b.id);
      if (cur && JSON.stringify(cur.status) !== JSON.stringify(status)) this.o.enqueue(b.id);
    }
    return wrote;
  }
}

/** A cancel of a backup that has no run left to stop. */
export class CancelRefused extends Error {}
