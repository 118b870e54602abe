/** Backup policy use cases the API calls: create, change, run now, delete. */
import type { BackupPolicy, BackupPolicySpec } from '../../model/backup.ts';
import type { Ctx } from '../context.ts';
import { ServiceError } from './errors.ts';

export interface CreateBackupPolicyInput {
  name: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** Checked by the caller (schedule, retention, repository). */
  spec: BackupPolicySpec;
}

export class BackupPolicyService {
  constructor(private readonly ctx: Ctx) {}

  async create(b: CreateBackupPolicyInput): Promise<BackupPolicy> {
    const { store, runtime } = this.ctx;
    if (await store.backupPolicies.find(b.name)) throw new ServiceError(409, 'exists', `a backup policy named '${b.name}' exists`);
    const p = await store.backupPolicies.create({
      name: b.name,
      labels: b.labels,
      annotations: b.annotations,
      spec: b.spec,
      status: { phase: b.spec.paused ? 'paused' : 'active', conditions: [], observedGeneration: 0, expired: 0 },
    });
    await runtime.reconcileNow('backupPolicy', p.id);
    return (await store.backupPolicies.get(p.id)) ?? p;
  }

  /** Deletes the policy; the backups it made stay. */
  async remove(ref: string): Promise<BackupPolicy> {
    const p = await this.ctx.store.backupPolicies.mustFind(ref);
    await this.ctx.store.backupPolicies.delete(p.id);
    return p;
  }

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
