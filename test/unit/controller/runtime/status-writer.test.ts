/** The status writer: a plan is written only over the generation it was made from, only when it changes something, and tagged so watches can tell it from a user's change. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StatusWriter } from '../../../../src/controller/runtime/status-writer.ts';
import type { ResourceEvent } from '../../../../src/store/index.ts';
import { openStore } from '../../../../src/store/index.ts';

test('stale plans are not written, no-op plans write nothing, and writes carry their origin', async () => {
  const store = await openStore({ kind: 'sqlite', path: ':memory:' });
  const events: ResourceEvent<unknown, unknown>[] = [];
  store.volumes.watch((e) => events.push(e as ResourceEvent<unknown, unknown>));
  const w = new StatusWriter();
  const v = await store.volumes.create({ name: 'd', spec: { sizeBytes: 1, tenant: 't' }, status: { phase: 'pending', conditions: [], observedGeneration: 0 } });
  assert.deepEqual(
    events.map((e) => [e.origin, !!e.before, !!e.after]),
    [['other', false, true]],
  );

  assert.equal(await w.write(store.volumes, v, (st) => ({ ...st, phase: 'creating' as const })), true);
  assert.equal(events.at(-1)?.origin, 'status');
  const now = (await store.volumes.get(v.id))!;
  assert.equal(await w.write(store.volumes, now, (st) => st), false, 'nothing changes: nothing written');
  assert.equal(events.length, 2);

  // A user changes the spec: a plan made from the old generation is dropped.
  await store.volumes.update(v.id, (c) => ({ spec: { ...c.spec, sizeBytes: 2 } }));
  assert.equal(events.at(-1)?.origin, 'other');
  assert.equal(await w.write(store.volumes, now, (st) => ({ ...st, phase: 'failed' as const })), false);
  assert.equal((await store.volumes.get(v.id))!.status.phase, 'creating');

  // A condition of the caller's (what else must still hold) is checked in the same compare-and-set.
  const fresh = (await store.volumes.get(v.id))!;
  assert.equal(await w.write(store.volumes, fresh, (st) => ({ ...st, message: 'x' }), { still: () => false }), false);
  await store.volumes.delete(v.id);
  assert.deepEqual([events.at(-1)?.origin, !!events.at(-1)?.before, !!events.at(-1)?.after], ['other', true, false]);
  await store.close();
});
