/**
 * Keeps each dedicated host cluster's `Dedicated` condition true to what runs on its hosts.
 * Placement never puts another tenant's instance there and add-host refuses a host that holds one,
 * so a False condition means something got past both (instances placed before the rule existed,
 * a store edited by hand): it is shown on the cluster and logged, for an operator to move them.
 */
import { setCondition } from '../../model/conditions.ts';
import type { Ctx } from '../context.ts';
import type { Reconciler } from '../runtime/reconciler.ts';
import { dedicationCondition } from './plan.ts';

export class HostClusterReconciler implements Reconciler {
  readonly kind = 'hostCluster';

  constructor(private readonly o: Ctx) {}

  async reconcile(id: string): Promise<void> {
    const c = await this.o.store.hostClusters.get(id);
    if (!c) return;
    const cond = dedicationCondition(c, await this.o.store.instances.list());
    const conditions = setCondition(c.status.conditions, cond, this.o.clock.now());
    if (conditions === c.status.conditions) return;
    await this.o.status.edit(this.o.store.hostClusters, id, (st) => {
      const next = setCondition(st.conditions, cond, this.o.clock.now());
      return next === st.conditions ? null : { ...st, conditions: next };
    });
    if (cond.status === 'False') this.o.log.warn({ cluster: c.name }, cond.message);
  }
}
