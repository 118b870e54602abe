/**
 * fio over NBD for bench:disk, plus the two things fio cannot do itself here: one NBD FLUSH after
 * every 32 writes at QD32, and a page cache emptied before a cold read.
 *
 * Why not `fio --fsync=32`: fio before 3.38 (Debian 12 ships 3.33) picks "sync" for every I/O it
 * issues while the write count is a multiple of 32, so at QD32 each 32 writes are followed by
 * 32 flushes (measured: 992 syncs for 1,024 writes at QD32, 124 at QD4, 31 at QD1; fixed upstream
 * by commit 704a8cfe, "io_u: Ensure fsync only after write(s)"). So the flush-every-32 runs
 * replay a generated fio iolog instead: distinct random 4 KiB offsets, and one `sync` entry
 * (NBD_CMD_FLUSH in fio's nbd engine) after each 32 writes, issued at QD32 without waiting for
 * the writes before it, as fio 3.38+ issues `--fsync=32`. Each run checks fio's sync count.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { NbdClient } from '../../src/disk/nbd/client.ts';

export interface FioJob {
  rw: 'randwrite' | 'randread' | 'write' | 'read';
  bs: number;
  depth: number;
  offset: number;
  size: number;
  ioSize: number;
  /** Replay this many writes as distinct random 4 KiB offsets with a flush after every `flushEvery`. */
  flushEvery?: number;
}

export interface FioResult {
  iops: number;
  ios: number;
  syncs: number;
  seconds: number;
  /** Completion latency in microseconds: mean, median, 99th percentile. */
  lat: { mean: number; p50: number; p99: number };
}

interface FioSide {
  iops: number;
  total_ios: number;
  runtime: number;
  clat_ns: { mean: number; percentile?: Record<string, number> };
}

export class Fio {
  constructor(
    private readonly sock: string,
    private readonly dir: string,
    private readonly seed: () => number,
  ) {}

  run(j: FioJob): FioResult {
    const out = `${this.dir}/fio.json`;
    const args = [
      '--name=bench',
      '--ioengine=nbd',
      `--uri=nbd+unix:///?socket=${this.sock}`,
      `--iodepth=${j.depth}`,
      '--output-format=json',
      `--output=${out}`,
    ];
    if (j.flushEvery) {
      const log = `${this.dir}/replay.log`;
      writeReplayLog(log, j, this.seed);
      args.push(`--read_iolog=${log}`, '--replay_no_stall=1');
    } else {
      args.push(`--rw=${j.rw}`, `--bs=${j.bs}`, `--offset=${j.offset}`, `--size=${j.size}`, `--io_size=${j.ioSize}`, `--randseed=${this.seed()}`);
    }
    execFileSync('fio', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const job = (JSON.parse(readFileSync(out, 'utf8')) as { jobs: { read: FioSide; write: FioSide; sync?: { total_ios: number } }[] }).jobs[0]!;
    const side = j.rw.includes('read') ? job.read : job.write;
    const syncs = job.sync?.total_ios ?? 0;
    if (j.flushEvery && syncs !== Math.floor(side.total_ios / j.flushEvery)) {
      throw new Error(`fio issued ${syncs} flushes for ${side.total_ios} writes, expected one per ${j.flushEvery}`);
    }
    const pc = side.clat_ns.percentile ?? {};
    const lat = { mean: side.clat_ns.mean / 1000, p50: (pc['50.000000'] ?? 0) / 1000, p99: (pc['99.000000'] ?? 0) / 1000 };
    return { iops: side.iops, ios: side.total_ios, syncs, seconds: side.runtime / 1000, lat };
  }
}

/** A fio v2 iolog: `count` distinct random bs-sized offsets in the job's range, a sync after each flushEvery. */
function writeReplayLog(path: string, j: FioJob, seed: () => number): void {
  const slots = Math.floor(j.size / j.bs);
  const count = Math.min(slots, Math.floor(j.ioSize / j.bs));
  const perm = new Uint32Array(slots);
  for (let i = 0; i < slots; i++) perm[i] = i;
  const lines = ['fio version 2 iolog', 'nbd add', 'nbd open'];
  for (let i = 0; i < count; i++) {
    const k = i + Math.floor(((seed() % 2 ** 30) / 2 ** 30) * (slots - i));
    const v = perm[k]!;
    perm[k] = perm[i]!;
    lines.push(`nbd write ${j.offset + v * j.bs} ${j.bs}`);
    if ((i + 1) % j.flushEvery! === 0) lines.push('nbd sync 0 0');
  }
  lines.push('nbd close');
  writeFileSync(path, lines.join('\n') + '\n');
}

/** One NBD FLUSH, so a write-back step leaves nothing for the next step to make durable. */
export async function nbdFlush(sock: string): Promise<void> {
  const c = await NbdClient.connect(sock);
  try {
    await c.flush();
  } finally {
    await c.disconnect();
  }
}

/** Writes every dirty page of the machine to disk (sync(2)), so one step's write-back does not land in the next. */
export function syncAll(): void {
  execFileSync('sync');
}

/** Empties the page cache (needs root): the cold sequential read must come from the device. */
export function dropCaches(): void {
  syncAll();
  writeFileSync('/proc/sys/vm/drop_caches', '3');
}
