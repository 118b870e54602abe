/**
 * Repository locks, as files under locks/: many shared holders (backup, restore, verify) or one
 * exclusive holder (prune). A lock names its holder and is refreshed while held; one not refreshed
 * for STALE_MS belongs to a process that died and is ignored (and removed by the next exclusive
 * locker). Taking a lock writes it first and then looks for conflicts, so two lockers that race
 * both see each other and at least one backs off.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { RepoStorage } from './storage.ts';

const STALE_MS = 30 * 60_000;
const REFRESH_MS = 5 * 60_000;

interface LockRecord {
  exclusive: boolean;
  host: string;
  pid: number;
  purpose: string;
  time: string;
}

class LockedError extends Error {}

export interface Lock {
  release(): Promise<void>;
}

/** Whether two lock holders cannot both hold the repository. */
function conflicts(a: LockRecord, b: LockRecord): boolean {
  return a.exclusive || b.exclusive;
}

function isStale(l: LockRecord, now: Date): boolean {
  return now.getTime() - Date.parse(l.time) > STALE_MS;
}

export async function acquireLock(storage: RepoStorage, purpose: string, exclusive: boolean, now: () => Date = () => new Date()): Promise<Lock> {
  const name = randomBytes(16).toString('hex');
  const mine = (): LockRecord => ({ exclusive, host: hostname(), pid: process.pid, purpose, time: now().toISOString() });
  await storage.write('locks', name, Buffer.from(JSON.stringify(mine())), { exclusive: true });
  for (const f of await storage.list('locks')) {
    if (f.name === name) continue;
    let other: LockRecord;
    try {
      other = JSON.parse((await storage.read('locks', f.name)).toString('utf8')) as LockRecord;
    } catch {
      continue; // released meanwhile
    }
    if (isStale(other, now())) {
      if (exclusive) await storage.remove('locks', f.name);
      continue;
    }
    if (conflicts(mine(), other)) {
      await storage.remove('locks', name);
      throw new LockedError(
        `the repository is locked ${other.exclusive ? 'exclusively ' : ''}by ${other.purpose} (pid ${other.pid} on ${other.host}, since ${other.time}); try again when it is done`,
      );
    }
  }
  const timer = setInterval(() => void storage.write('locks', name, Buffer.from(JSON.stringify(mine()))).catch(() => undefined), REFRESH_MS);
  timer.unref();
  return {
    async release() {
      clearInterval(timer);
      await storage.remove('locks', name);
    },
  };
}
