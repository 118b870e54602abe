/**
 * One writer per disk file: a lock file, made with O_EXCL so that of two openers only one makes
 * it, naming the owner's pid. A lock whose owner is gone is removed under a second lock (one
 * remover at a time, so it never removes a lock someone made meanwhile) and the takers race on
 * O_EXCL again. (Moving a stale lock aside and putting back one that turned out live left a
 * window in which a third taker made a new lock while the live one was aside: two owners.)
 * A lock appears with its pid already in it (written aside, then hard-linked into place, which
 * fails if it exists): made with O_EXCL and then written, it was empty for a moment, and a taker
 * that read it then took it for a dead owner's and removed it: two owners again.
 */
import { randomBytes } from 'node:crypto';
import { linkSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { DiskError, EPERM } from './errors.ts';

function lockPath(path: string): string {
  return `${path}.lock`;
}

/** Makes `file` holding this process's pid, at once; false if it exists. */
function makeOwned(file: string): boolean {
  const aside = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  writeFileSync(aside, `${process.pid}\n`, { mode: 0o600 });
  try {
    linkSync(aside, file);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw e;
  } finally {
    rmSync(aside, { force: true });
  }
  // A file system without hard links: O_EXCL, with the moment of an empty lock that comes with it.
  try {
    writeFileSync(file, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
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
    if (makeOwned(lp)) return;
    const owner = ownerOf(lp);
    if (owner === undefined) continue;
    if (alive(owner)) throw new DiskError(`${path} is in use by process ${owner}`, EPERM);
    // A stale lock is removed only under the takeover lock, by one taker at a time. While it
    // exists nobody can make a new one (O_EXCL), so the owner read under the takeover lock is
    // still the file's owner when it is removed; then every taker races on O_EXCL again.
    underTakeoverLock(lp, () => {
      const now = ownerOf(lp);
      if (now !== undefined && !alive(now)) rmSync(lp, { force: true });
    });
  }
  throw new DiskError(`could not take ${lp}: other processes keep taking it`, EPERM);
}

const pause = new Int32Array(new SharedArrayBuffer(4));

/** Runs fn holding `<lock>.takeover` (held for microseconds; one left by a dead process is removed). */
function underTakeoverLock(lp: string, fn: () => void): void {
  const tp = `${lp}.takeover`;
  for (let i = 0; ; i++) {
    if (makeOwned(tp)) break;
    const holder = ownerOf(tp);
    if (holder !== undefined && !alive(holder) && holder !== process.pid) rmSync(tp, { force: true });
    if (i >= 2000) throw new DiskError(`could not take ${tp}: process ${holder} holds it`, EPERM);
    Atomics.wait(pause, 0, 0, 1);
  }
  try {
    fn();
  } finally {
    rmSync(tp, { force: true });
  }
}

export function releaseLock(path: string): void {
  rmSync(lockPath(path), { force: true });
}
