/**
 * Keeps each dedicated host cluster's `Dedicated` condition true to what runs on its hosts.
 * Placement never puts another tenant's instance there and add-host refuses a host that holds one,
 * so a False condition means something got past both (instances placed before the rule existed,
 * a store edited by hand): it is shown on the cluster and logged, for an operator to move them.
 */
import type { Logger } from 'pino';
import { setCondition } from '../../model/conditions.ts';
import type { Store } from '../../store/index.ts';
import { dedicationCondition } from './plan.ts';

export class HostClusterReconciler {
  constructor(private readonly o: { store: Store; clock: () => Date; log: Logger }) {}

  async reconcile(id: string): Promise<void> {
    const c = await this.o.store.hostClusters.get(id);
    if (!c) return;
    const cond = dedicationCondition(c, await this.o.store.instances.list());
    const conditions = setCondition(c.status.conditions, cond, this.o.clock());
    if (conditions === c.status.conditions) return;
    await this.o.store.hostClusters.update(id, (cur) => {
      const next = setCondition(cur.status.conditions, cond, this.o.clock());
      return next === cur.status.conditions ? null : { status: { ...cur.status, conditions: next } };
    });
    if (cond.status === 'False') this.o.log.warn({ cluster: c.name }, cond.message);
  }
}
