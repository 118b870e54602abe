/** The guest's balloon over QMP: statistics polling, and what the guest holds and uses. */
import { qomGetGuestStats, qomSet, queryBalloon, type QmpExecutor } from '../hypervisor/index.ts';

export const MiB = 1024 * 1024;
/** How often the guest's balloon driver refreshes its statistics (seconds). */
const STATS_POLL_S = 2;
const BALLOON = '/machine/peripheral/balloon0';

export function enableBalloonStats(q: QmpExecutor): Promise<void> {
  return qomSet(q, BALLOON, 'guest-stats-polling-interval', STATS_POLL_S);
}

/**
 * What the guest holds (the balloon's actual size) and uses: in use = held minus its free and cache
 * memory; absent until the guest's driver has sent statistics.
 */
export async function sampleBalloon(q: QmpExecutor): Promise<{ actualMiB: number; usedMiB?: number }> {
  const b = await queryBalloon(q);
  const st = await qomGetGuestStats(q, BALLOON);
  const free = st.stats['stat-free-memory'] ?? -1;
  const cache = st.stats['stat-disk-caches'] ?? -1;
  const usedMiB = st['last-update'] > 0 && free >= 0 ? Math.max(0, Math.round((b.actual - free - Math.max(0, cache)) / MiB)) : undefined;
  return { actualMiB: Math.round(b.actual / MiB), usedMiB };
}
