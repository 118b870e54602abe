/**
 * The power-loss model, free of I/O: which writes of a recorded log (recorder.ts) a crash at a
 * given point must have kept, which it may have kept, the disk image that results from one choice,
 * and what each sector of the virtual disk may then read.
 *
 * Durability: a sync covers the writes made before its call, once it completes; everything else
 * before the cut may or may not have reached the device, whole or in sector-sized pieces (the
 * crash states of CrashMonkey and ALICE). Acknowledgement: a request's data must survive if it was
 * acknowledged before the cut and written through (the disk's cache mode, or FUA), or followed by
 * a flush called after its acknowledgement and itself acknowledged before the cut.
 *
 * Every sector a workload writes is filled with its request id and the sector's number, so a read
 * names the request it came from (or zero, or neither: garbage).
 */
import type { IoEvent } from './recorder.ts';

export const SECTOR = 512;

export interface Request {
  id: number;
  kind: 'write' | 'zero' | 'trim' | 'flush';
  offset: number;
  length: number;
  fua: boolean;
}

/** What request `req` writes into virtual sector `sector`. */
export function sectorPattern(req: number, sector: number): Buffer {
  const b = Buffer.alloc(SECTOR);
  for (let i = 0; i < SECTOR; i += 8) {
    b.writeUInt32LE(req, i);
    b.writeUInt32LE(sector, i + 4);
  }
  return b;
}

export function requestData(req: number, offset: number, length: number): Buffer {
  const parts: Buffer[] = [];
  for (let s = offset / SECTOR; s < (offset + length) / SECTOR; s++) parts.push(sectorPattern(req, s));
  return Buffer.concat(parts);
}

/** The request a sector's bytes came from, 0 for zeros, -1 for anything else. */
export function sectorValue(buf: Buffer, at: number, sector: number): number {
  const req = buf.readUInt32LE(at);
  const second = req === 0 ? 0 : sector;
  for (let i = at; i < at + SECTOR; i += 8) if (buf.readUInt32LE(i) !== req || buf.readUInt32LE(i + 4) !== second) return -1;
  return req;
}

/** A crash state: the log cut before event `cut`, with the undurable writes that landed. */
export interface CrashState {
  cut: number;
  /** Event indices of the undurable writes that reached the device whole. */
  landed: number[];
  /** One more undurable write that reached it in part: these of its sectors (by index in the write). */
  torn?: { event: number; sectors: number[] };
  label: string;
}

/** Writes before `durableBefore` are durable at the cut; the undurable ones are listed. */
export function durability(events: IoEvent[], cut: number): { durableBefore: number; undurable: number[] } {
  let durableBefore = 0;
  const starts = new Map<number, number>();
  for (let i = 0; i < cut; i++) {
    const e = events[i]!;
    if (e.t === 'sync-start') starts.set(e.id, i);
    else if (e.t === 'sync-end') durableBefore = Math.max(durableBefore, starts.get(e.id)!);
  }
  const undurable: number[] = [];
  for (let i = durableBefore; i < cut; i++) if (events[i]!.t === 'write') undurable.push(i);
  return { durableBefore, undurable };
}

/** The file as the crash leaves it. */
export function crashImage(initial: Buffer, events: IoEvent[], s: CrashState): Buffer {
  const { durableBefore } = durability(events, s.cut);
  const landed = new Set(s.landed);
  let img = Buffer.from(initial);
  const put = (pos: number, data: Buffer) => {
    if (pos + data.length > img.length) img = Buffer.concat([img, Buffer.alloc(pos + data.length - img.length)]);
    data.copy(img, pos);
  };
  for (let i = 0; i < s.cut; i++) {
    const e = events[i]!;
    if (e.t === 'truncate') {
      img = e.size <= img.length ? img.subarray(0, e.size) : Buffer.concat([img, Buffer.alloc(e.size - img.length)]);
    } else if (e.t === 'write') {
      if (i < durableBefore || landed.has(i)) put(e.pos, e.data);
      else if (s.torn?.event === i) for (const k of s.torn.sectors) put(e.pos + k * SECTOR, e.data.subarray(k * SECTOR, (k + 1) * SECTOR));
    }
  }
  return img;
}

/** The seeded generator: the same seed explores the same states. */
export { mulberry32 as rng } from '../../../bench/memory/rng.ts';

/** One crash state at a random cut: see stateAt. */
export function pickState(events: IoEvent[], rand: () => number): CrashState {
  // Half the cuts fall just before a sync completes (everything since the last one in flight, the
  // richest states, as CrashMonkey crashes at persistence points), half anywhere.
  const syncEnds = events.flatMap((e, i) => (e.t === 'sync-end' ? [i] : []));
  const cut = syncEnds.length && rand() < 0.5 ? syncEnds[Math.floor(rand() * syncEnds.length)]! : 1 + Math.floor(rand() * events.length);
  return stateAt(events, cut, rand);
}

/** A crash state at `cut`: nothing in flight landed, everything, a prefix, a random subset, or a prefix and a torn write. */
export function stateAt(events: IoEvent[], cut: number, rand: () => number): CrashState {
  const { undurable } = durability(events, cut);
  const n = undurable.length;
  const r = rand();
  if (!n || r < 0.15) return { cut, landed: [], label: `cut before event ${cut}: nothing in flight landed` };
  if (r < 0.3) return { cut, landed: undurable, label: `cut before event ${cut}: all ${n} writes in flight landed` };
  if (r < 0.5) {
    const k = Math.floor(rand() * n);
    return { cut, landed: undurable.slice(0, k), label: `cut before event ${cut}: the first ${k} of ${n} writes in flight landed` };
  }
  if (r < 0.75) {
    const landed = undurable.filter(() => rand() < 0.5);
    return { cut, landed, label: `cut before event ${cut}: ${landed.length} of ${n} writes in flight landed, at random` };
  }
  const k = Math.floor(rand() * n);
  const e = events[undurable[k]!]!;
  const sectors = e.t === 'write' ? Math.ceil(e.data.length / SECTOR) : 0;
  const torn = Array.from({ length: sectors }, (_, i) => i).filter(() => rand() < 0.5);
  return {
    cut,
    landed: undurable.slice(0, k),
    torn: { event: undurable[k]!, sectors: torn },
    label: `cut before event ${cut}: the first ${k} of ${n} writes in flight landed, then ${torn.length} of ${sectors} sectors of the next`,
  };
}

/**
 * `count` crash states of a log, the systematic ones first: the end of the log (everything done),
 * then at each persistence point (just before a sync completes) every combination of the writes
 * in flight when there are at most four, else none, all, some prefixes, random subsets and torn
 * writes; then random states (pickState) for the rest.
 */
export function crashStates(events: IoEvent[], rand: () => number, count: number): CrashState[] {
  const out: CrashState[] = [{ cut: events.length, landed: durability(events, events.length).undurable, label: 'at the end of the log' }];
  events.forEach((e, cut) => {
    if (e.t !== 'sync-end') return;
    const { undurable } = durability(events, cut);
    const n = undurable.length;
    const at = `cut before event ${cut} (sync ${e.id} completes)`;
    if (n <= 4) {
      for (let m = 0; m < 1 << n; m++)
        out.push({ cut, landed: undurable.filter((_, i) => m & (1 << i)), label: `${at}, writes ${m.toString(2).padStart(n, '0')} of ${n} in flight landed` });
    } else {
      out.push({ cut, landed: [], label: `${at}, none of ${n} in flight landed` }, { cut, landed: undurable, label: `${at}, all ${n} in flight landed` });
      for (let k = 0; k < 4; k++) out.push(stateAt(events, cut, rand));
    }
  });
  while (out.length < count) out.push(pickState(events, rand));
  return out.slice(0, count);
}

/**
 * For each virtual sector, the values it may read after the crash: the last request on it whose
 * data had to survive (or `baseline`, if none), and any request on it issued after that one.
 */
export function allowedValues(
  events: IoEvent[],
  requests: Map<number, Request>,
  cut: number,
  cache: 'writeback' | 'writethrough',
  sectors: number,
  baseline: (sector: number) => number,
): Set<number>[] {
  const issue = new Map<number, number>();
  const ack = new Map<number, number>();
  for (let i = 0; i < cut; i++) {
    const e = events[i]!;
    if (e.t === 'issue') issue.set(e.req, i);
    else if (e.t === 'ack') ack.set(e.req, i);
  }
  const flushes = [...requests.values()].filter((r) => r.kind === 'flush' && ack.has(r.id)).map((r) => issue.get(r.id)!);
  const mustSurvive = (r: Request) => {
    const a = ack.get(r.id);
    if (a === undefined) return false;
    return cache === 'writethrough' || r.fua || flushes.some((f) => f > a);
  };
  const bySector: number[][] = Array.from({ length: sectors }, () => []);
  const issued = [...requests.values()].filter((r) => r.kind !== 'flush' && issue.has(r.id)).sort((x, y) => issue.get(x.id)! - issue.get(y.id)!);
  for (const r of issued) for (let s = r.offset / SECTOR; s < (r.offset + r.length) / SECTOR; s++) bySector[s]!.push(r.id);
  const valueOf = (id: number) => (requests.get(id)!.kind === 'write' ? id : 0);
  return bySector.map((ids, s) => {
    let last = -1;
    ids.forEach((id, i) => {
      if (mustSurvive(requests.get(id)!)) last = i;
    });
    const out = new Set<number>([last < 0 ? baseline(s) : valueOf(ids[last]!)]);
    for (const id of ids.slice(last + 1)) out.add(valueOf(id));
    return out;
  });
}
