/**
 * The power-loss simulator (issue 17): runs a workload on a real disk file with every write and
 * sync recorded, then builds crash states from the log (model.ts), opens each as the engine would
 * after the power came back, and checks it: every sector reads a value it may read (acknowledged
 * data exactly, nothing unacknowledged where it must not be, no garbage), and `disk check` finds
 * nothing wrong. Some states get a recovery session: opened for writing, a smaller workload run on
 * them with its own log, and crash states of that checked in turn, against what the first crash
 * left (a second crash is where reused journal numbers bite).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkFile } from '../../../src/disk/check.ts';
import { DiskEngine } from '../../../src/disk/engine.ts';
import { SUPERBLOCK_SIZE, SUPERBLOCK_SLOTS } from '../../../src/disk/format.ts';
import { tempDir } from '../tmp.ts';
import { allowedValues, crashImage, crashStates, rng, SECTOR, sectorValue, type CrashState, type Request } from './model.ts';
import { IoRecorder, type IoEvent } from './recorder.ts';
import { Driver, type Workload } from './workloads.ts';

export interface ExploreOptions {
  /** Crash states of the workload's own log. */
  states: number;
  seed: number;
  /** The engine's syncs do nothing (the bug the simulator must catch). */
  noopSync?: boolean;
  /** One state in this many also gets a recovery session, with this many crash states of its own. */
  recoveryEvery?: number;
  recoveryStates?: number;
}

export interface Failure {
  workload: string;
  state: string;
  problem: string;
}

export interface ExploreResult {
  states: number;
  failures: Failure[];
}

interface Session {
  initial: Buffer;
  events: IoEvent[];
  requests: Map<number, Request>;
  nextId: number;
}

/** Runs `work` on the disk at `path` (opened with `w.cache`) with its I/O recorded; leaves the file as the session left it. */
async function recordSession(path: string, w: Workload, firstId: number, noopSync: boolean, work: (d: Driver) => Promise<void>): Promise<Session> {
  const initial = readFileSync(path);
  const rec = new IoRecorder(path);
  rec.install({ noopSync });
  let engine: DiskEngine | undefined;
  try {
    engine = await DiskEngine.open(path, { cache: w.cache });
    const d = new Driver(engine, rec, firstId);
    await work(d);
    return { initial, events: rec.events, requests: d.requests, nextId: d.nextId };
  } finally {
    rec.remove();
    // Not part of the log: the crash states are built from it, not from the file.
    await engine?.close();
  }
}

/** Checks one crash image; returns the problems found and each sector's value. */
/**
 * The superblock slot a crash state tore a write into, if any: a checkpoint cut there leaves that
 * copy damaged and the other one current, which `disk check` rightly warns about (it cannot tell
 * this from a copy damaged later) until the next checkpoint rewrites it (so a recovery session's
 * states may still show the first crash's).
 */
function tornSlot(events: IoEvent[], s: CrashState): number | undefined {
  const e = s.torn ? events[s.torn.event] : undefined;
  if (e?.t !== 'write') return undefined;
  const slot = SUPERBLOCK_SLOTS.findIndex((at) => e.pos < at + SUPERBLOCK_SIZE && e.pos + e.data.length > at);
  return slot < 0 ? undefined : slot;
}

async function checkState(
  file: string,
  img: Buffer,
  w: Workload,
  allowed: (sectors: number) => Set<number>[],
  torn: (number | undefined)[],
): Promise<{ problems: string[]; values: number[] }> {
  writeFileSync(file, img);
  const problems: string[] = [];
  const sectors = w.size / SECTOR;
  const values: number[] = new Array<number>(sectors).fill(0);
  let e: DiskEngine;
  try {
    e = await DiskEngine.open(file, { readOnly: true });
  } catch (err) {
    return { problems: [`does not open: ${(err as Error).message}`], values };
  }
  try {
    const want = allowed(sectors);
    const data = e.readBuffer(0, w.size);
    const bad: string[] = [];
    for (let s = 0; s < sectors; s++) {
      const v = sectorValue(data, s * SECTOR, s);
      values[s] = v;
      if (!want[s]!.has(v) && bad.length < 5)
        bad.push(`sector ${s} reads ${v < 0 ? 'garbage' : v === 0 ? 'zeros' : `request ${v}`}, may read ${[...want[s]!].join('|')}`);
    }
    if (bad.length) problems.push(...bad);
  } finally {
    await e.close();
  }
  const r = checkFile(file);
  const wrong = r.findings.filter(
    (f) =>
      f.severity !== 'note' &&
      !(f.severity === 'warning' && torn.some((slot) => slot !== undefined && f.message.startsWith(`superblock slot ${slot} is damaged`))),
  );
  if (wrong.length) problems.push(`disk check: ${wrong.map((f) => f.message).join('; ')}`);
  return { problems, values };
}

export async function explore(w: Workload, o: ExploreOptions): Promise<ExploreResult> {
  const dir = tempDir('outrig-power-loss-');
  const failures: Failure[] = [];
  let states = 0;
  try {
    const disk = join(dir.path, 'disk.odsk');
    DiskEngine.create(disk, { size: w.size, blockSize: w.blockSize, journalSize: w.journalSize });
    const rand = rng(o.seed);
    const first = await recordSession(disk, w, 1, !!o.noopSync, (d) => w.run(d, rand));
    const stateFile = join(dir.path, 'state.odsk');
    const fail = (state: string, problems: string[]) => {
      for (const problem of problems) failures.push({ workload: w.name, state, problem });
    };
    const level1 = crashStates(first.events, rand, o.states);
    for (const [i, s] of level1.entries()) {
      const img = crashImage(first.initial, first.events, s);
      const r = await checkState(stateFile, img, w, (n) => allowedValues(first.events, first.requests, s.cut, w.cache, n, () => 0), [
        tornSlot(first.events, s),
      ]);
      states++;
      fail(`${s.label} (of ${first.events.length})`, r.problems);
      if (r.problems.length || !o.recoveryEvery || i % o.recoveryEvery !== 0) continue;
      // The power comes back: a session on this state, then crashes of its own.
      const recovered = join(dir.path, 'recovered.odsk');
      writeFileSync(recovered, img);
      const second = await recordSession(recovered, w, first.nextId, !!o.noopSync, (d) => w.recovery(d, rand));
      for (const s2 of crashStates(second.events, rand, o.recoveryStates ?? 3)) {
        const img2 = crashImage(second.initial, second.events, s2);
        const r2 = await checkState(
          stateFile,
          img2,
          w,
          (n) => allowedValues(second.events, second.requests, s2.cut, w.cache, n, (sector) => r.values[sector]!),
          [tornSlot(first.events, s), tornSlot(second.events, s2)],
        );
        states++;
        fail(`after a recovery from "${s.label} (of ${first.events.length})": ${s2.label} (of ${second.events.length})`, r2.problems);
      }
    }
  } finally {
    dir.remove();
  }
  return { states, failures };
}
