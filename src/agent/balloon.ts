/** The guest's balloon over QMP: statistics polling, and what the guest holds and uses. */
import type { QmpClient } from '../hypervisor/index.ts';

export const MiB = 1024 * 1024;
/** How often the guest's balloon driver refreshes its statistics (seconds). */
const STATS_POLL_S = 2;

export function enableBalloonStats(q: QmpClient): Promise<unknown> {
  return q.execute('qom-set', { path: '/machine/peripheral/balloon0', property: 'guest-stats-polling-interval', value: STATS_POLL_S });
}

/**
 * What the guest holds (the balloon's actual size) and uses: in use = held minus its free and cache
 * memory; absent until the guest's driver has sent statistics.
 */
export async function sampleBalloon(q: QmpClient): Promise<{ actualMiB: number; usedMiB?: number }> {
  const b = (await q.execute('query-balloon')) as { actual: number };
  const st = (await q.execute('qom-get', { path: '/machine/peripheral/balloon0', property: 'guest-stats' })) as { stats: Record<string, number>; 'last-update': number };
  const free = st.stats['stat-free-memory'] ?? -1;
  const cache = st.stats['stat-disk-caches'] ?? -1;
  const usedMiB = st['last-update'] > 0 && free >= 0 ? Math.max(0, Math.round((b.actual - free - Math.max(0, cache)) / MiB)) : undefined;
  return { actualMiB: Math.round(b.actual / MiB), usedMiB };
}
