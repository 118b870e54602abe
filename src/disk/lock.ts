/**
 * One writer per disk file: a lock file, made with O_EXCL so that of two openers only one makes
 * it, naming the owner's pid. A lock whose owner is gone is taken over by moving it aside under a
 * name of the taker's own (a rename only one taker can win) and making a new one; a lock moved
 * aside that turns out to be a live owner's (it took over in between) is put back.
 */
import { linkSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { DiskError, EPERM } from './errors.ts';

export function lockPath(path: string): string {
  return `${path}.lock`;
}

function ownerOf(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : 0;
  } catch {
    return undefined; // gone
  }
}

/** Another live process (this one's own lock is its to take again, as before an unclean close). */
function alive(pid: number): boolean {
  if (pid === process.pid || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function takeLock(path: string): void {
  const lp = lockPath(path);
  for (let attempt = 0; attempt < 10; attempt++) {
    try {
      writeFileSync(lp, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const owner = ownerOf(lp);
    if (owner === undefined) continue;
    if (alive(owner)) throw new DiskError(`${path} is in use by process ${owner}`, EPERM);
    const aside = `${lp}.${process.pid}.stale`;
    try {
      renameSync(lp, aside);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw e;
    }
    const moved = ownerOf(aside);
    if (moved !== undefined && moved !== owner && alive(moved)) {
      try {
        linkSync(aside, lp);
      } catch {
        // someone made a lock meanwhile: theirs stands
      }
      rmSync(aside, { force: true });
      throw new DiskError(`${path} is in use by process ${moved}`, EPERM);
    }
    rmSync(aside, { force: true });
  }
  throw new DiskError(`could not take ${lp}: other processes keep taking it`, EPERM);
}

export function releaseLock(path: string): void {
  rmSync(lockPath(path), { force: true });
}
