/** Backup policy use cases the API calls: change one, run one now. */
import type { BackupPolicy, BackupPolicySpec } from '../../model/backup.ts';
import type { Ctx } from '../context.ts';

export class BackupPolicyService {
  constructor(private readonly ctx: Ctx) {}

  /** Replaces the policy's spec (checked by the caller); its next run is planned again. */
  async change(ref: string, spec: BackupPolicySpec): Promise<BackupPolicy> {
    const { store, runtime } = this.ctx;
    const p = await store.backupPolicies.mustFind(ref);
    await store.backupPolicies.update(p.id, () => ({ spec }));
    await runtime.reconcileNow('backupPolicy', p.id);
    return store.backupPolicies.mustFind(p.id);
  }

  /** Asks for a run now, its schedule left as it is: the policy's reconciler starts it. */
  async runNow(ref: string): Promise<BackupPolicy> {
    const { store, runtime, clock } = this.ctx;
    const p = await store.backupPolicies.mustFind(ref);
    await this.ctx.status.record(store.backupPolicies, p.id, (cur) => ({ status: { ...cur.status, runRequestedAt: clock.now().toISOString() } }));
    await runtime.reconcileNow('backupPolicy', p.id);
    return store.backupPolicies.mustFind(p.id);
  }
}
