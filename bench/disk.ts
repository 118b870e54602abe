/**
 * bench:disk — Outrig's disk engine over NBD beside qemu-nbd serving (a) a fresh qcow2 and (b) a
 * fallocated raw file, all on the same filesystem, all driven by fio's NBD engine.
 * Two durability settings, compared like for like: write-through (every write durable before its
 * reply) and write-back (durable at FLUSH).
 * Usage: npm run bench:disk [-- --quick]   (--quick: smaller runs, for a smoke test)
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DiskEngine } from '../src/disk/engine.ts';
import { spawnOutrig, stopDaemon, type Daemon } from '../test/helpers/processes.ts';
import { tempDir } from '../test/helpers/tmp.ts';
import { waitUntil } from '../test/helpers/wait.ts';

const quick = process.argv.includes('--quick');
const DISK_SIZE = 8 * 1024 ** 3;
const REGION = quick ? '128M' : '2G';

type Target = 'outrig' | 'qcow2' | 'raw';
type Cache = 'writethrough' | 'writeback';

interface Workload {
  key: string;
  title: string;
  rw: string;
  bs: string;
  depth: number;
  /** Needs a disk that has never been written (first-touch allocation). */
  fresh: boolean;
  ioSize: string;
}

const WORKLOADS: Workload[] = [
  { key: 'alloc_qd1', title: '4K random write QD1, empty disk (allocating)', rw: 'randwrite', bs: '4k', depth: 1, fresh: true, ioSize: quick ? '4M' : '48M' },
  { key: 'alloc_qd32', title: '4K random write QD32, empty disk (allocating)', rw: 'randwrite', bs: '4k', depth: 32, fresh: true, ioSize: quick ? '16M' : '100M' },
  { key: 'over_qd1', title: '4K random write QD1, written disk (overwrite)', rw: 'randwrite', bs: '4k', depth: 1, fresh: false, ioSize: quick ? '4M' : '48M' },
  { key: 'over_qd32', title: '4K random write QD32, written disk (overwrite)', rw: 'randwrite', bs: '4k', depth: 32, fresh: false, ioSize: quick ? '16M' : '100M' },
  { key: 'read_qd32', title: '4K random read QD32', rw: 'randread', bs: '4k', depth: 32, fresh: false, ioSize: quick ? '32M' : '200M' },
  { key: 'seq_1m', title: '1 MiB sequential write QD4', rw: 'write', bs: '1M', depth: 4, fresh: false, ioSize: quick ? '64M' : '2G' },
];

const work = tempDir('outrig-bench-disk-');
const sock = join(work.path, 'nbd.sock');
const uri = `nbd+unix:///?socket=${sock}`;

function fio(w: Workload, extra: string[] = []): { iops: number; mibs: number } {
  const out = join(work.path, 'fio.json');
  execFileSync(
    'fio',
    ['--name=bench', '--ioengine=nbd', `--uri=${uri}`, `--rw=${w.rw}`, `--bs=${w.bs}`, `--iodepth=${w.depth}`, `--size=${REGION}`, `--io_size=${w.ioSize}`, '--randrepeat=0', '--output-format=json', `--output=${out}`, ...extra],
    { stdio: 'ignore' },
  );
  const j = (JSON.parse(readFileSync(out, 'utf8')) as { jobs: { read: { iops: number; bw: number }; write: { iops: number; bw: number } }[] }).jobs[0]!;
  const side = w.rw.includes('read') ? j.read : j.write;
  return { iops: side.iops, mibs: side.bw / 1024 };
}

/** Fills the benchmark region so overwrite and read runs find data everywhere. */
function fill(): void {
  fio({ key: 'fill', title: 'fill', rw: 'write', bs: '1M', depth: 8, fresh: false, ioSize: REGION });
}

async function serve(target: Target, cache: Cache, image: string): Promise<{ stop: () => Promise<void> }> {
  rmSync(sock, { force: true });
  let proc: ChildProcess | Daemon;
  if (target === 'outrig') {
    proc = spawnOutrig(['disk', 'serve', image, '--socket', sock, '--cache', cache], { OUTRIG_LOG_LEVEL: 'warn' });
  } else {
    proc = spawn('qemu-nbd', ['-f', target, `--cache=${cache}`, '--aio=threads', '-k', sock, '-t', image], { stdio: 'ignore' });
  }
  await waitUntil(`${target} socket`, () => existsSync(sock), 20_000, 20);
  return {
    async stop() {
      if ('proc' in proc) await stopDaemon(proc);
      else {
        proc.kill('SIGTERM');
        await new Promise((r) => (proc as ChildProcess).once('exit', r));
      }
    },
  };
}

function makeImage(target: Target, name: string): string {
  const path = join(work.path, `${name}.${target === 'outrig' ? 'odsk' : target}`);
  rmSync(path, { force: true });
  if (target === 'outrig') DiskEngine.create(path, { size: DISK_SIZE });
  else if (target === 'qcow2') execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', path, String(DISK_SIZE)]);
  else execFileSync('fallocate', ['-l', String(DISK_SIZE), path]);
  return path;
}

async function measure(target: Target, cache: Cache, w: Workload): Promise<number> {
  const image = makeImage(target, `${target}-${w.key}`);
  const s = await serve(target, cache, image);
  try {
    // Warm every server up the same way (JIT, caches, allocation of metadata) on a region the
    // measurement never touches, so short runs measure steady state rather than start-up.
    fio({ ...w, ioSize: quick ? '4M' : '16M' }, ['--offset=6G', '--size=512M']);
    if (!w.fresh) fill();
    return fio(w).iops;
  } finally {
    await s.stop();
    rmSync(image, { force: true });
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

const results: Record<Cache, Record<string, Record<Target, number>>> = { writethrough: {}, writeback: {} };
try {
  for (const cache of ['writethrough', 'writeback'] as const) {
    for (const w of WORKLOADS) {
      // Repeat in rotating order and keep the median: queue-depth-1 runs are the noisiest.
      const reps = quick ? 1 : w.depth === 1 ? 3 : 2;
      const samples: Record<Target, number[]> = { outrig: [], qcow2: [], raw: [] };
      const order: Target[] = ['raw', 'qcow2', 'outrig'];
      for (let r = 0; r < reps; r++) {
        for (const t of order) samples[t].push(await measure(t, cache, w));
        order.push(order.shift()!);
      }
      const row: Record<Target, number> = { outrig: median(samples.outrig), qcow2: median(samples.qcow2), raw: median(samples.raw) };
      results[cache][w.key] = row;
      process.stderr.write(`${cache.padEnd(12)} ${w.title.padEnd(48)} outrig ${row.outrig.toFixed(0).padStart(7)}  qcow2 ${row.qcow2.toFixed(0).padStart(7)}  raw ${row.raw.toFixed(0).padStart(7)}  (IOPS)\n`);
    }
  }
  const ratio = (c: Cache, k: string, t: Target) => results[c][k]!.outrig / results[c][k]![t];
  const allocVsQcow2 = ratio('writethrough', 'alloc_qd32', 'qcow2');
  const allocVsRaw = ratio('writethrough', 'alloc_qd32', 'raw');
  let minOther = Infinity;
  let minWhere = '';
  for (const c of ['writethrough', 'writeback'] as const) {
    for (const w of WORKLOADS) {
      if (c === 'writethrough' && w.key === 'alloc_qd32') continue;
      const r = ratio(c, w.key, 'raw');
      if (r < minOther) {
        minOther = r;
        minWhere = `${c} ${w.key}`;
      }
    }
  }
  const lines = [
    '| durability | workload | Outrig IOPS | qemu-nbd qcow2 | qemu-nbd raw | vs qcow2 | vs raw |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const c of ['writethrough', 'writeback'] as const) {
    for (const w of WORKLOADS) {
      const r = results[c][w.key]!;
      lines.push(`| ${c} | ${w.title} | ${r.outrig.toFixed(0)} | ${r.qcow2.toFixed(0)} | ${r.raw.toFixed(0)} | ${(r.outrig / r.qcow2).toFixed(2)} | ${(r.outrig / r.raw).toFixed(2)} |`);
    }
  }
  const stamp = new Date().toISOString();
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  writeFileSync(new URL(`./results/disk-${stamp.replace(/[:.]/g, '-')}.json`, import.meta.url), JSON.stringify({ date: stamp, quick, region: REGION, results }, null, 2) + '\n');
  process.stderr.write(`\n${lines.join('\n')}\n\nlowest other ratio: ${minWhere}\n`);
  process.stdout.write(`alloc_qd32_vs_qcow2=${allocVsQcow2.toFixed(2)} alloc_qd32_vs_raw=${allocVsRaw.toFixed(2)} min_other_vs_raw=${minOther.toFixed(2)}\n`);
} finally {
  work.remove();
}
