/** Events that touch many resources: what to look at again when a host or the memory configuration changes. */
import { backupSettled } from '../../model/backup.ts';
import type { Ctx } from '../context.ts';

/** Everything that lives on a host (and anything not placed yet) deserves a look when it changes. */
export async function enqueueHostResources(ctx: Ctx, hostId: string): Promise<void> {
  const { store, runtime } = ctx;
  for (const i of await store.instances.list()) if (!i.status.hostId || i.status.hostId === hostId) runtime.enqueue('instance', i.id);
  for (const v of await store.volumes.list()) if (!v.status.hostId || v.status.hostId === hostId) runtime.enqueue('volume', v.id);
  for (const s of await store.snapshots.list()) if (!s.status.hostId || s.status.hostId === hostId) runtime.enqueue('snapshot', s.id);
  for (const b of await store.backups.list()) if (!backupSettled(b.status.phase)) runtime.enqueue('backup', b.id);
}

/** Instances and volumes not placed yet: room may have been made for them. */
export async function enqueueWaitingForRoom(ctx: Ctx): Promise<void> {
  for (const i of await ctx.store.instances.list()) if (!i.status.hostId && i.status.phase !== 'deleting') ctx.runtime.enqueue('instance', i.id);
  for (const v of await ctx.store.volumes.list()) if (!v.status.hostId && v.status.phase !== 'deleting') ctx.runtime.enqueue('volume', v.id);
}

/**
 * A pool's balloon plan covers every guest in it (10,000 on a large cluster), so the changes that
 * may move memory are gathered for this long into one run rather than each running it.
 */
export const POOL_GATHER_MS = 1000;

/** Memory pools are few; any change that may move memory re-plans them all, within POOL_GATHER_MS. */
export function enqueuePools(ctx: Ctx): void {
  void ctx.store.memoryPools.list().then(
    (pools) => pools.forEach((p) => ctx.runtime.enqueueAfter('memory', p.id, POOL_GATHER_MS)),
    (e: Error) => ctx.log.warn({ err: e.message }, 'could not list memory pools'),
  );
}
