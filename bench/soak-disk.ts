/**
 * soak:disk — the crash harness for many cycles: SIGKILL of `outrig disk serve` at random moments
 * during writes with flushes, alternating write-back and write-through, on one disk file.
 * Usage: npm run soak:disk [-- --cycles 200 --seed N]
 */
import { join } from 'node:path';
import { DiskEngine } from '../src/disk/engine.ts';
import { CrashHarness, UNIT } from '../test/helpers/disk-crash.ts';
import { tempDir } from '../test/helpers/tmp.ts';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const cycles = arg('cycles', 200);
const seed = arg('seed', Date.now() & 0xffffff);
let s = seed >>> 0;
const rnd = () => {
  s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
  return s / 2 ** 32;
};

const dir = tempDir('outrig-soak-');
const units = 8192; // 32 MiB
const harnesses = (['writeback', 'writethrough'] as const).map((cache) => {
  const file = join(dir.path, `${cache}.odsk`);
  DiskEngine.create(file, { size: units * UNIT, journalSize: 256 * 1024 });
  return new CrashHarness(file, join(dir.path, `${cache}.sock`), units, cache, rnd);
});
const started = Date.now();
let acked = 0;
let durable = 0;
try {
  for (let i = 0; i < cycles; i++) {
    const h = harnesses[i % 2]!;
    const r = await h.cycle(100 + Math.floor(rnd() * 900));
    acked += r.acked;
    durable += r.durableUnits;
    if ((i + 1) % 10 === 0 || i === cycles - 1) {
      process.stderr.write(`cycle ${i + 1}/${cycles}: ${acked} writes acknowledged so far, ${durable} unit checks against a durability floor\n`);
    }
  }
  process.stdout.write(`soak_disk_cycles=${cycles} failures=0 seed=${seed} seconds=${Math.round((Date.now() - started) / 1000)}\n`);
} catch (e) {
  process.stdout.write(`soak_disk FAILED (seed ${seed}): ${(e as Error).message}\n`);
  process.exitCode = 1;
} finally {
  dir.remove();
}
