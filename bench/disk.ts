/**
 * bench:disk — Outrig's disk engine over NBD beside qemu-nbd serving raw (fallocated and sparse)
 * and qcow2 (default, lazy_refcounts=on, extended_l2=on with 128 KiB clusters) images, all on the
 * same filesystem, all driven by fio's NBD engine, in the ways guests write: write-through,
 * write-back with a flush every 32 writes, write-back without flushes, 4K random reads, and a
 * cold sequential read of a region filled by random writes (the cost of append allocation).
 * Medians of 3 rounds, targets in rotating order; see bench/disk/plan.ts for the steps.
 * Usage: npm run bench:disk [-- --quick] [-- --rounds N]   (--quick: one round, small sizes, two baselines)
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../test/helpers/tmp.ts';
import { Fio, dropCaches, nbdFlush, syncAll } from './disk/fio.ts';
import { plan, ROWS, type Step } from './disk/plan.ts';
import { analyse, figures, median, table, type Samples } from './disk/report.ts';
import { BASELINES, OUTRIG, QUICK_BASELINES, serve, type Cache, type Target } from './disk/targets.ts';

const quick = process.argv.includes('--quick');
const roundsArg = process.argv.indexOf('--rounds');
const ROUNDS = roundsArg > 0 ? Number(process.argv[roundsArg + 1]) : quick ? 1 : 3;
const targets: Target[] = [OUTRIG, ...BASELINES.filter((t) => !quick || QUICK_BASELINES.includes(t.key))];
const p = plan(quick);

const work = tempDir('outrig-bench-disk-');
const sock = join(work.path, 'nbd.sock');
let rng = (Date.now() & 0x7fffffff) >>> 0;
const seed = () => {
  rng = (Math.imul(rng ^ (rng >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
  return rng;
};
const fio = new Fio(sock, work.path, seed);
const samples: Samples = Object.fromEntries(ROWS.map((r) => [r.key, Object.fromEntries(targets.map((t) => [t.key, [] as number[]]))]));
const extra: Record<string, { syncs: number[]; seconds: number[]; meanLatUs: number[] }> = {};
const started = Date.now();
/** 1-minute load average after each session: other work on the machine shows up here. */
const load: string[] = [];

/** One target, one cache mode, a fresh image: the session's steps in order. */
async function session(t: Target, cache: Cache, steps: Step[]): Promise<void> {
  const image = join(work.path, `${t.key}.img`);
  rmSync(image, { force: true });
  t.create(image, p.diskSize);
  const t0 = Date.now();
  const s = await serve(t, cache, image, sock);
  try {
    let first = true;
    for (const step of steps) {
      // Nothing of the step before may be left to make durable: flush the server, sync the host.
      if (!first) {
        if (cache === 'writeback') await nbdFlush(sock);
        if (step.cold) dropCaches();
        else syncAll();
      }
      first = false;
      const r = fio.run(step.job);
      if (!step.row) continue;
      samples[step.row]![t.key]!.push(r.iops);
      const e = (extra[`${step.row}/${t.key}`] ??= { syncs: [], seconds: [], meanLatUs: [] });
      e.syncs.push(r.syncs);
      e.seconds.push(r.seconds);
      e.meanLatUs.push(Math.round(r.lat.mean));
      process.stderr.write(
        `  ${step.row.padEnd(20)} ${t.key.padEnd(12)} ${r.iops.toFixed(0).padStart(7)} IOPS  ${r.seconds.toFixed(1).padStart(5)} s${r.syncs ? `  ${r.syncs} flushes` : ''}\n`,
      );
    }
  } finally {
    await s.stop();
    rmSync(image, { force: true });
  }
  const l = readFileSync('/proc/loadavg', 'utf8').split(' ')[0]!;
  load.push(`${cache} ${t.key} ${l}`);
  process.stderr.write(`${cache} session on ${t.key}: ${((Date.now() - t0) / 1000).toFixed(0)} s, load ${l}\n`);
}

try {
  for (let round = 0; round < ROUNDS; round++) {
    // Rotate the order of the targets each round, so none always runs first or last.
    const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
    for (const { cache, steps } of p.sessions) for (const t of order) await session(t, cache, steps);
    process.stderr.write(`round ${round + 1}/${ROUNDS} done at ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  }
  const res = analyse(samples, targets);
  const { line, minWhere } = figures(res);
  const stamp = new Date().toISOString();
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  const results = {
    date: stamp,
    quick,
    rounds: ROUNDS,
    sizes: p.sizes,
    seconds: (Date.now() - started) / 1000,
    samples,
    extra,
    load,
    medians: Object.fromEntries(ROWS.map((r) => [r.key, Object.fromEntries(targets.map((t) => [t.key, median(samples[r.key]![t.key]!)]))])),
    analysis: res,
    figures: line,
  };
  writeFileSync(new URL(`./results/disk-${stamp.replace(/[:.]/g, '-')}.json`, import.meta.url), JSON.stringify(results, null, 2) + '\n');
  process.stderr.write(`\n${table(samples, targets, res)}\n\nlowest other ratio: ${minWhere}; ${((Date.now() - started) / 1000).toFixed(0)} s in all\n`);
  process.stdout.write(`${line}\n`);
} finally {
  work.remove();
}
