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
import { explore } from '../../helpers/power-loss/explore.ts';
import { WORKLOADS } from '../../helpers/power-loss/workloads.ts';

for (const w of WORKLOADS) {
  const large = w.size > 4 << 20;
  test(`power loss at any point loses no acknowledged write: ${w.name}`, async () => {
    const r = await explore(w, large ? { states: 12, seed: 2, recoveryEvery: 1, recoveryStates: 2 } : { states: 100, seed: 7, recoveryEvery: 5, recoveryStates: 3 });
    assert.ok(r.states >= (large ? 12 : 100));
    assert.deepEqual(r.failures.slice(0, 5), [], `${r.failures.length} of ${r.states} crash states failed`);
  });
}

test('with the data syncs made no-ops, the simulator finds acknowledged writes lost', async () => {
  for (const w of WORKLOADS.filter((x) => x.size <= 4 << 20)) {
    const r = await explore(w, { states: 60, seed: 7, noopSync: true });
    assert.ok(r.failures.length > 0, `${w.name}: ${r.states} states, no failure found with no-op syncs`);
    assert.ok(r.failures.some((f) => /reads (zeros|request \d+), may read/.test(f.problem)), JSON.stringify(r.failures.slice(0, 3)));
  }
});
