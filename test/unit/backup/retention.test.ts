import assert from 'node:assert/strict';
import { test } from 'node:test';
import { selectKeep } from '../../../src/backup/prune.ts';

const at = (iso: string, id = iso) => ({ id, time: new Date(iso).toISOString() });

test('retention: last, daily, weekly and monthly, newest of each bucket, with the reasons', () => {
  const snaps = [
    at('2026-01-01T10:00Z'),
    at('2026-01-15T10:00Z'),
    at('2026-02-02T10:00Z'),
    at('2026-02-03T09:00Z'),
    at('2026-02-03T18:00Z'),
    at('2026-02-04T08:00Z'),
  ];
  const keep = selectKeep(snaps, { last: 1, daily: 2, weekly: 2, monthly: 3 });
  assert.deepEqual([...keep.keys()].sort(), ['2026-01-15T10:00Z', '2026-02-03T18:00Z', '2026-02-04T08:00Z'].map((d) => new Date(d).toISOString()).sort().map((x) => snaps.find((s) => s.time === x)!.id));
  assert.deepEqual(keep.get('2026-02-04T08:00Z'), ['last', 'daily 2026-02-04', 'weekly 2026-W06', 'monthly 2026-02']);
  assert.deepEqual(keep.get('2026-02-03T18:00Z'), ['daily 2026-02-03']);
  assert.deepEqual(keep.get('2026-01-15T10:00Z'), ['weekly 2026-W03', 'monthly 2026-01']);
  assert.equal(keep.has('2026-02-03T09:00Z'), false, 'an older one of the same day is not kept');
  assert.throws(() => selectKeep(snaps, {}), /at least one retention rule/);
  assert.throws(() => selectKeep(snaps, { last: -1 }), /whole number/);
  assert.equal(selectKeep(snaps, { last: 0 }).size, 0);
});
