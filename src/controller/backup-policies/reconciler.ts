/**
 * The backup policy reconciler: runs each policy on its schedule (or when asked), making one Backup
 * per selected instance's boot volume, and lets go of the backups its retention rules no longer keep
 * (deleting a Backup forgets its snapshot in the repository).
 */
import { backupName, backupScope, type BackupPolicy, type BackupPolicyStatus } from '../../model/backup.ts';
import type { Ctx } from '../context.ts';
import type { ReconcileResult, Reconciler } from '../runtime/reconciler.ts';
import { expired, nextRun, planRun } from './plan.ts';

/** Longest wait before a policy is looked at again, whatever its schedule says (clock changes, missed timers). */
const MAX_SLEEP_MS = 60_000;

const POLICY_LABEL = 'outrig.io/backup-policy';
const INSTANCE_LABEL = 'outrig.io/instance';

export class BackupPolicyReconciler implements Reconciler {
  readonly kind = 'backupPolicy';

  constructor(private readonly ctx: Ctx) {}

  async reconcile(id: string): Promise<ReconcileResult | void> {
    const p = await this.ctx.store.backupPolicies.get(id);
    if (!p) return;
    const now = this.ctx.clock.now();
    const st: BackupPolicyStatus = structuredClone(p.status);
    const scheduleChanged = st.observedGeneration !== p.generation;
    st.observedGeneration = p.generation;
    st.phase = p.spec.paused ? 'paused' : 'active';
    let next = st.nextRunAt && !scheduleChanged ? new Date(st.nextRunAt) : nextRun(p.spec.schedule, now);
    const due = !p.spec.paused && next <= now;
    if (due || st.runRequestedAt) {
      st.lastRun = await this.run(p, now);
      st.runRequestedAt = undefined;
      if (due) next = nextRun(p.spec.schedule, now);
    }
    st.nextRunAt = p.spec.paused ? undefined : next.toISOString();

    const gone = expired(p, await this.ctx.store.backups.list());
    for (const b of gone) {
      await this.ctx.status.edit(this.ctx.store.backups, b.id, (bst) => (bst.phase === 'deleting' ? null : { ...bst, phase: 'deleting' as const }));
      this.ctx.runtime.enqueue('backup', b.id);
    }
    if (gone.length) this.ctx.log.info({ policy: p.name, backups: gone.map((b) => b.name) }, 'backups expired by retention');
    st.expired += gone.length;

    // A user's change (or a second "run now") meanwhile: leave it for the next pass.
    await this.ctx.status.write(this.ctx.store.backupPolicies, p, () => st, { still: (cur, read) => cur.runRequestedAt === read.runRequestedAt });
    if (!p.spec.paused) return { requeueAfter: Math.min(Math.max(next.getTime() - now.getTime(), 0), MAX_SLEEP_MS) };
  }

  /** Two runs within one second (run now, then the schedule) would pick the same name: the second gets a suffix. */
  private async freeName(base: string): Promise<string> {
    let name = base;
    for (let n = 2; await this.ctx.store.backups.find(name); n++) name = `${base.slice(0, 63 - String(n).length - 1)}-${n}`;
    return name;
  }

  private async run(p: BackupPolicy, now: Date): Promise<NonNullable<BackupPolicyStatus['lastRun']>> {
    const plan = planRun(p, await this.ctx.store.instances.list(), await this.ctx.store.backups.list());
    const started: string[] = [];
    for (const { instance, volumeId } of plan.backups) {
      const vol = await this.ctx.store.volumes.get(volumeId);
      const b = await this.ctx.store.backups.create({
        name: await this.freeName(backupName(`${p.name}-${instance.name}`, now)),
        labels: { [POLICY_LABEL]: p.name, [INSTANCE_LABEL]: instance.name },
        spec: { volume: volumeId, repository: p.spec.repository, scope: backupScope({ volume: volumeId }), tags: [`policy=${p.name}`], policy: p.id },
        status: { phase: 'pending', conditions: [], volumeName: vol?.name },
      });
      started.push(b.name);
      this.ctx.runtime.enqueue('backup', b.id);
    }
    this.ctx.log.info({ policy: p.name, started, skipped: plan.skipped }, 'backup policy ran');
    return { at: now.toISOString(), started, skipped: plan.skipped };
  }
}
