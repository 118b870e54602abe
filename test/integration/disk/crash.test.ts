/**
 * Crash safety: SIGKILL of `outrig disk serve` at random moments during a write workload with
 * flushes. `npm run soak:disk` runs the same harness for hundreds of cycles.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { DiskEngine } from '../../../src/disk/engine.ts';
import { CrashHarness, UNIT } from '../../helpers/disk-crash.ts';
import { tempDir } from '../../helpers/tmp.ts';

function prng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return s / 2 ** 32;
  };
}

for (const cache of ['writeback', 'writethrough'] as const) {
  test(`SIGKILL during writes (${cache}): consistent, flushed writes intact, no foreign data`, async () => {
    const dir = tempDir('outrig-crash-');
    try {
      const file = join(dir.path, 'd.odsk');
      const units = 2048; // 8 MiB
      // A small journal so checkpoints (and crashes during them) happen within a few cycles.
      DiskEngine.create(file, { size: units * UNIT, journalSize: 128 * 1024 });
      const seed = Date.now() & 0xffff;
      const rnd = prng(seed);
      const h = new CrashHarness(file, join(dir.path, 's.sock'), units, cache, rnd);
      let durable = 0;
      for (let i = 0; i < 4; i++) {
        const r = await h.cycle(150 + Math.floor(rnd() * 500)).catch((e: Error) => {
          throw new Error(`cycle ${i} (seed ${seed}): ${e.message}`);
        });
        assert.ok(r.acked > 0, 'the workload made progress before the kill');
        durable += r.durableUnits;
      }
      assert.ok(durable > 0, 'some writes were durable before a kill, so the check had teeth');
    } finally {
      dir.remove();
    }
  });
}
