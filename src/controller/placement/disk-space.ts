/**
 * Volume placement with disk space in mind. Pure.
 *
 * Volumes are thin, so what a host's disk must hold is not what its volumes hold now but what they
 * may still allocate. A host's report says what its volumes may allocate (their unmapped blocks and
 * journals: src/disk/space.ts); placement adds what the controller has promised the host since:
 * volumes placed there and not reported yet (made from their full size) and growth not carried out
 * yet. A new volume of size S (it may allocate S and its journal) fits a host when
 *
 *     need + promised ≤ free × diskOvercommit
 *
 * With the default overcommit of 1, thin volumes never promise more than the disk holds; above 1
 * they may, and a volume placed beyond the free space carries an `Overcommitted` condition.
 * Hosts without a report (agents older than the accounting) are unknown: allowed, ranked after the
 * hosts that report.
 */
import { formatBytes } from '../../common/bytes.ts';
import type { StorageReport } from '../../model/agent-protocol.ts';

/** A volume placed on (or bound for) a host, as placement counts it. */
export interface BoundVolume {
  /** Its size in the spec (what it will be). */
  sizeBytes: number;
  /** Its size in the same report as the host's storage figures; absent when that report does not have it yet. */
  reportedSizeBytes?: number;
}

export interface DiskRoom {
  totalBytes: number;
  freeBytes: number;
  /** What the host's volumes may still allocate, with what it has been promised and not reported yet. */
  promisedBytes: number;
  /** What new volumes may still be promised: floor(free × overcommit) − promised, at least 0. */
  canPromiseBytes: number;
  /** The most the host could promise with no volume at all: floor(total × overcommit). */
  everBytes: number;
}

/** What a request asks: its bytes, and how to say it ("a 1 GiB volume"). */
export interface DiskNeed {
  bytes: number;
  what: string;
}

/** `why`: the host's side alone ("can promise 20 MiB more (...)"), for messages that name several hosts. */
export type DiskFit = { ok: true; overcommitted?: string } | { ok: false; never: boolean; message: string; why: string };

/** `newVolumeBytes` is what a volume not made yet may allocate (src/disk/space.ts newVolumeMayAllocate). */
export function promisedBytes(s: StorageReport, bound: BoundVolume[], newVolumeBytes: (sizeBytes: number) => number): number {
  let p = s.mayAllocateBytes;
  for (const v of bound) {
    if (v.reportedSizeBytes === undefined) p += newVolumeBytes(v.sizeBytes);
    else if (v.sizeBytes > v.reportedSizeBytes) p += v.sizeBytes - v.reportedSizeBytes;
  }
  return p;
}

export function diskRoom(s: StorageReport, bound: BoundVolume[], overcommit: number, newVolumeBytes: (sizeBytes: number) => number): DiskRoom {
  const promised = promisedBytes(s, bound, newVolumeBytes);
  return {
    totalBytes: s.totalBytes,
    freeBytes: s.freeBytes,
    promisedBytes: promised,
    canPromiseBytes: Math.max(0, Math.floor(s.freeBytes * overcommit) - promised),
    everBytes: Math.floor(s.totalBytes * overcommit),
  };
}

/** "20 MiB more (60 MiB free, 40 MiB promised to its volumes)". */
function roomText(room: DiskRoom, overcommit: number): string {
  const free = overcommit === 1 ? `${formatBytes(room.freeBytes)} free` : `${formatBytes(room.freeBytes)} free × overcommit ${overcommit}`;
  return `${formatBytes(room.canPromiseBytes)} more (${free}, ${formatBytes(room.promisedBytes)} promised to its volumes)`;
}

/** Whether a host can take `need`; a host without a report (room undefined) can, as far as anyone knows. */
export function fitsDisk(hostName: string, room: DiskRoom | undefined, need: DiskNeed, overcommit: number): DiskFit {
  if (!room) return { ok: true };
  if (need.bytes > room.canPromiseBytes) {
    const never = need.bytes > room.everBytes;
    const why = never
      ? `has a disk of ${formatBytes(room.totalBytes)}${overcommit === 1 ? '' : ` (× overcommit ${overcommit})`}`
      : `can promise ${roomText(room, overcommit)}`;
    return { ok: false, never, why, message: `host ${hostName} ${never ? 'can never' : 'cannot'} hold ${need.what}: it ${why}` };
  }
  if (need.bytes + room.promisedBytes > room.freeBytes) {
    return {
      ok: true,
      overcommitted: `host ${hostName} promises its volumes ${formatBytes(need.bytes + room.promisedBytes)} with ${formatBytes(room.freeBytes)} free (disk overcommit ${overcommit}): guests filling their volumes could run its disk full`,
    };
  }
  return { ok: true };
}

export interface VolumeHostCandidate {
  id: string;
  name: string;
  /** Undefined: the host does not report its disk space. */
  room?: DiskRoom;
  /** The tie-break among hosts without a report (and how volumes were placed before disk space was known). */
  freeMemoryMiB: number;
}

type VolumeHostChoice = { ok: true; hostId: string; hostName: string; overcommitted?: string } | { ok: false; never: boolean; message: string };

/**
 * The host for a volume free to go anywhere: among the candidates (ready, schedulable for its
 * tenant) that can hold it, the one with the most room left to promise; hosts without a report
 * after every host with one, by free memory. `never` when no candidate could hold it even empty.
 */
export function chooseVolumeHost(candidates: VolumeHostCandidate[], need: DiskNeed, overcommit: number): VolumeHostChoice {
  const fits: { c: VolumeHostCandidate; overcommitted?: string }[] = [];
  const refusals: { c: VolumeHostCandidate; never: boolean; why: string }[] = [];
  for (const c of candidates) {
    const f = fitsDisk(c.name, c.room, need, overcommit);
    if (f.ok) fits.push({ c, overcommitted: f.overcommitted });
    else refusals.push({ c, never: f.never, why: f.why });
  }
  fits.sort(
    (a, b) =>
      Number(!a.c.room) - Number(!b.c.room) ||
      (a.c.room && b.c.room ? b.c.room.canPromiseBytes - a.c.room.canPromiseBytes : b.c.freeMemoryMiB - a.c.freeMemoryMiB) ||
      a.c.name.localeCompare(b.c.name),
  );
  const best = fits[0];
  if (best) return { ok: true, hostId: best.c.id, hostName: best.c.name, overcommitted: best.overcommitted };
  const never = refusals.length > 0 && refusals.every((r) => r.never);
  const shown = refusals.slice(0, 5).map((r) => `${r.c.name} ${r.why}`);
  const more = refusals.length > shown.length ? `; and ${refusals.length - shown.length} more` : '';
  const head = never ? `no host can ever hold ${need.what}` : `0/${candidates.length} hosts can hold ${need.what}`;
  return { ok: false, never, message: `${head}: ${shown.join('; ')}${more}${never ? beyond(candidates, need, overcommit) : ''}` };
}

/**
 * How far a request no host could ever hold goes beyond the most free space of any of them, and
 * what bounds it: "; that is 1355 times the most free space of a host (75.6 GiB on h1), past the
 * disk overcommit of 1 (controller --disk-overcommit)".
 */
function beyond(candidates: VolumeHostCandidate[], need: DiskNeed, overcommit: number): string {
  const most = candidates.filter((c) => c.room).sort((a, b) => b.room!.freeBytes - a.room!.freeBytes)[0];
  if (!most?.room) return '';
  const free = most.room.freeBytes;
  const times = free > 0 ? need.bytes / free : Infinity;
  const ratio = times >= 10 ? `${Math.round(times)} times` : `${times.toFixed(1)} times`;
  return `; that is ${ratio} the most free space of a host (${formatBytes(free)} on ${most.name}), past the disk overcommit of ${overcommit} (controller --disk-overcommit)`;
}
