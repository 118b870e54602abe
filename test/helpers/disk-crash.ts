/**
 * Crash harness for the disk engine: runs `outrig disk serve` as a child process, drives a write
 * workload with flushes over NBD, SIGKILLs the server at a random moment, and then checks that
 * the disk is consistent, every write acknowledged before the last completed flush (every
 * acknowledged write, in write-through mode) reads back exactly, and no 4 KiB unit holds anything
 * but one of the values written to it.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { checkFile } from '../../src/disk/check.ts';
import { DiskEngine } from '../../src/disk/engine.ts';
import { NbdClient } from '../../src/disk/nbd/client.ts';
import { spawnOutrig, type Daemon } from './processes.ts';
import { waitUntil } from './wait.ts';

export const UNIT = 4096;

/** Content of unit `u` as written by write `id` (0 = zeros): self-describing so mix-ups are caught. */
export function unitContent(id: number, u: number): Buffer {
  if (id === 0) return Buffer.alloc(UNIT);
  const b = Buffer.alloc(UNIT);
  let seed = createHash('sha256').update(`${id}:${u}`).digest();
  for (let off = 0; off < UNIT; off += 32) {
    seed.copy(b, off);
    seed = createHash('sha256').update(seed).digest();
  }
  b.writeUInt32LE(id, 0);
  b.writeUInt32LE(u, 4);
  return b;
}

function identify(b: Buffer, u: number): number | null {
  if (b.every((x) => x === 0)) return 0;
  const id = b.readUInt32LE(0);
  return b.readUInt32LE(4) === u && unitContent(id, u).equals(b) ? id : null;
}

interface WriteRec {
  id: number;
  units: number[];
  acked: boolean;
}

export interface CycleResult {
  writes: number;
  acked: number;
  flushes: number;
  verifiedUnits: number;
  durableUnits: number;
  killedAfterMs: number;
}

export class CrashHarness {
  /** Per unit: the value ids it may hold after the next crash, oldest first; [0] is the durable floor. */
  private baseline: number[];
  private nextId = 1;

  constructor(
    readonly file: string,
    readonly socket: string,
    readonly units: number,
    readonly cache: 'writeback' | 'writethrough',
    private readonly rnd: () => number,
  ) {
    this.baseline = new Array<number>(units).fill(0);
  }

  async cycle(runMs: number): Promise<CycleResult> {
    const server: Daemon = spawnOutrig(['disk', 'serve', this.file, '--socket', this.socket, '--cache', this.cache], {});
    await waitUntil(
      'server socket',
      () => {
        if (server.proc.exitCode !== null) throw new Error(`server exited: ${server.output()}`);
        return existsSync(this.socket);
      },
      20_000,
      20,
    );
    const client = await waitUntil('connect', () => NbdClient.connect(this.socket, '').catch(() => undefined), 10_000, 20);
    const history = new Map<number, WriteRec[]>(); // unit -> writes touching it, in issue order
    const writes: WriteRec[] = [];
    const busy = new Set<number>();
    let durableFloor = new Map<number, number>(); // unit -> id durable by a completed flush
    let flushes = 0;
    let stop = false;

    const started = Date.now();

    const issue = async (): Promise<void> => {
      while (!stop) {
        const len = 1 + Math.floor(this.rnd() * 16);
        const start = Math.floor(this.rnd() * (this.units - len));
        const span = Array.from({ length: len }, (_, i) => start + i);
        if (span.some((u) => busy.has(u))) continue;
        const kind = this.rnd();
        const id = kind < 0.1 ? 0 : this.nextId++;
        const rec: WriteRec = { id, units: span, acked: false };
        span.forEach((u) => busy.add(u));
        for (const u of span) {
          if (!history.has(u)) history.set(u, []);
          history.get(u)!.push(rec);
        }
        writes.push(rec);
        try {
          if (id === 0) await client.writeZeroes(start * UNIT, len * UNIT);
          else await client.write(start * UNIT, Buffer.concat(span.map((u) => unitContent(id, u))));
          rec.acked = true;
        } catch {
          return; // the server is gone
        } finally {
          span.forEach((u) => busy.delete(u));
        }
        if (this.rnd() < 0.08) {
          // Everything acknowledged before this flush is sent must survive once it completes.
          const covered = new Map<number, number>();
          for (const [u, h] of history) {
            const last = [...h].reverse().find((w) => w.acked);
            if (last) covered.set(u, last.id);
          }
          try {
            await client.flush();
            flushes++;
            durableFloor = new Map([...durableFloor, ...covered]);
          } catch {
            return;
          }
        }
      }
    };
    const workers = Array.from({ length: 8 }, () => issue());
    await new Promise((r) => setTimeout(r, runMs));
    const killedAt = Date.now() - started;
    server.proc.kill('SIGKILL');
    stop = true;
    await server.exited;
    client.destroy();
    await Promise.all(workers);

    // The disk must be consistent: a torn journal tail is fine, anything else is not.
    const report = checkFile(this.file);
    if (!report.clean) throw new Error(`disk check after crash: ${JSON.stringify(report.findings)}`);

    const e = await DiskEngine.open(this.file, { readOnly: true });
    let durableUnits = 0;
    try {
      const all = e.readBuffer(0, this.units * UNIT);
      for (let u = 0; u < this.units; u++) {
        const got = identify(all.subarray(u * UNIT, (u + 1) * UNIT), u);
        const h = history.get(u) ?? [];
        // The floor: what a completed flush (or, write-through, an acknowledgement) made durable.
        let floorIdx = -1;
        if (this.cache === 'writethrough') floorIdx = h.map((w) => w.acked).lastIndexOf(true);
        else {
          const fid = durableFloor.get(u);
          if (fid !== undefined) floorIdx = h.findIndex((w) => w.id === fid);
        }
        const allowed = floorIdx >= 0 ? h.slice(floorIdx).map((w) => w.id) : [...this.baseline.slice(u, u + 1), ...h.map((w) => w.id)];
        if (floorIdx >= 0) durableUnits++;
        if (got === null) throw new Error(`unit ${u} holds data that was never written to it`);
        if (!allowed.includes(got)) {
          throw new Error(
            `unit ${u} holds write ${got}, allowed ${JSON.stringify(allowed)} (${this.cache}; history ${JSON.stringify(h.map((w) => [w.id, w.acked]))})`,
          );
        }
        this.baseline[u] = got;
      }
    } finally {
      await e.close();
    }
    return { writes: writes.length, acked: writes.filter((w) => w.acked).length, flushes, verifiedUnits: this.units, durableUnits, killedAfterMs: killedAt };
  }
}
