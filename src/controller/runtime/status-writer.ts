/**
 * The one writer of status (a lint rule keeps every other module off the store's updateStatus).
 * Reconciled status: a status is planned from a resource as read; it is written
 * only over that same generation (a user's change meanwhile means the plan is stale: nothing is
 * written and the change's own event brings the resource back), and only when it differs from what
 * is stored (no write, no event). `observedGeneration` is the plan's to set: it says which
 * generation the status acted on.
 */
import type { Resource } from '../../model/common.ts';
import type { ResourceRepository, StatusChange } from '../../store/index.ts';

type AnyStatus = { phase: string; observedGeneration?: number };

interface WriteOptions<St> {
  /** Besides the generation, what must still hold of the stored status for the plan to apply. */
  still?: (cur: St, planned: St) => boolean;
}

export class StatusWriter {
  /** Writes `edit` applied to the stored status; true if something was written. */
  async write<S, St extends AnyStatus>(
    repo: ResourceRepository<S, St>,
    res: Resource<S, St>,
    edit: (st: St) => void | St,
    o: WriteOptions<St> = {},
  ): Promise<boolean> {
    let wrote = false;
    await repo.updateStatus(
      res.id,
      (cur) => {
        if (cur.generation !== res.generation || (cur.status.phase === 'deleting') !== (res.status.phase === 'deleting')) return null;
        if (o.still && !o.still(cur.status, res.status)) return null;
        const st = structuredClone(cur.status);
        const next = edit(st) ?? st;
        if (JSON.stringify(next) === JSON.stringify(cur.status)) return null;
        wrote = true;
        return { status: next };
      },
      'status',
    );
    return wrote;
  }

  /** A status edit that is not a plan (an action's mark, an answer folded in): applied to whatever is stored. */
  async edit<S, St extends AnyStatus>(
    repo: ResourceRepository<S, St>,
    id: string,
    edit: (st: St, cur: Resource<S, St>) => St | null,
  ): Promise<Resource<S, St>> {
    return repo.updateStatus(
      id,
      (cur) => {
        const next = edit(structuredClone(cur.status), cur);
        return next === null || JSON.stringify(next) === JSON.stringify(cur.status) ? null : { status: next };
      },
      'status',
    );
  }

  /**
   * A user's action recorded in status by a service (deletion requested, a host's trust decided, a
   * principal certificate issued with the spec change that needs it), applied to whatever is stored.
   * Unlike edit, it wakes the resource's own reconciler, which takes the action from there.
   */
  async record<S, St extends AnyStatus>(
    repo: ResourceRepository<S, St>,
    id: string,
    change: (cur: Resource<S, St>) => StatusChange<S, St> | null,
  ): Promise<Resource<S, St>> {
    return repo.updateStatus(id, change, 'other');
  }

  /** Marks a resource being deleted (its reconciler carries the deletion out); nothing if it is already. */
  async requestDeletion<S, St extends AnyStatus>(repo: ResourceRepository<S, St>, id: string): Promise<Resource<S, St>> {
    return this.record(repo, id, (cur) => (cur.status.phase === 'deleting' ? null : { status: { ...cur.status, phase: 'deleting' } }));
  }
}
