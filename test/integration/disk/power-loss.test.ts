/**
 * The power-loss simulator (test/helpers/power-loss) over a bounded, seeded set of crash states of
 * every workload: write-through and write-back with FLUSH and FUA, one connection and four at
 * once, zeroes and discards, checkpoints and journal wrap-around, and large rounds of several
 * journal records each, some states followed by a recovery session and crashes of their own.
 * `npm run soak:crash` explores many more.
 *
 * What it has found: kill -9 tests (crash.test.ts) keep the page cache, so they cannot see a
 * missing fsync; this does (the no-op sync test below). And on the journal before e96f9a5 (run
 * with the erasing of unreplayed records taken out) the large-rounds test below fails, as it did
 * at seeds 1 and 2 with more states: after a recovery from the crash state "cut before event 5
 * (sync 1 completes), writes 101 of 3 in flight landed" (the data and the round's second record,
 * not its first), the end of the recovery session's log reads "sector 9344 reads request 1, may
 * read 0": the stale second record came back to life behind the new one (issue 17, finding 1),
 * found without being told where to look.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DiskEngine } from '../../../src/disk/engine.ts';
import { explore } from '../../helpers/power-loss/explore.ts';
import { crashImage, durability } from '../../helpers/power-loss/model.ts';
import { IoRecorder } from '../../helpers/power-loss/recorder.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { WORKLOADS } from '../../helpers/power-loss/workloads.ts';

for (const w of WORKLOADS) {
  const large = w.size > 4 << 20;
  test(`power loss at any point loses no acknowledged write: ${w.name}`, async () => {
    const r = await explore(
      w,
      large ? { states: 12, seed: 2, recoveryEvery: 1, recoveryStates: 2 } : { states: 100, seed: 7, recoveryEvery: 5, recoveryStates: 3 },
    );
    assert.ok(r.states >= (large ? 12 : 100));
    assert.deepEqual(r.failures.slice(0, 5), [], `${r.failures.length} of ${r.states} crash states failed`);
  });
}

test('with the data syncs made no-ops, the simulator finds acknowledged writes lost', async () => {
  for (const w of WORKLOADS.filter((x) => x.size <= 4 << 20)) {
    const r = await explore(w, { states: 60, seed: 7, noopSync: true });
    assert.ok(r.failures.length > 0, `${w.name}: ${r.states} states, no failure found with no-op syncs`);
    assert.ok(
      r.failures.some((f) => /reads (zeros|request \d+), may read/.test(f.problem)),
      JSON.stringify(r.failures.slice(0, 3)),
    );
  }
});

// Issue 17, finding 5: on main before this (94608ff) create wrote the superblock and returned with
// nothing synced, so a power cut after it could leave an empty file ("2 writes of the new disk
// may be lost").
test('a disk is durable once create returns: every crash state after it opens', async () => {
  const dir = tempDir('outrig-power-loss-');
  try {
    const path = join(dir.path, 'new.odsk');
    const rec = new IoRecorder(path);
    rec.install();
    try {
      DiskEngine.create(path, { size: 2 << 20, blockSize: 4096, journalSize: 64 * 1024 });
    } finally {
      rec.remove();
    }
    const { undurable } = durability(rec.events, rec.events.length);
    assert.equal(undurable.length, 0, `${undurable.length} writes of the new disk may be lost`);
    // The power cut right after create returned, with nothing that was still in flight landed.
    const state = join(dir.path, 'state.odsk');
    writeFileSync(state, crashImage(Buffer.alloc(0), rec.events, { cut: rec.events.length, landed: [], label: 'after create' }));
    const e = await DiskEngine.open(state, { readOnly: true });
    assert.equal(e.virtualSize, 2 << 20);
    await e.close();
  } finally {
    dir.remove();
  }
});
