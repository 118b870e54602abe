import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pickSnapshot } from '../../../src/controller/snapshots/refs.ts';
import type { Snapshot } from '../../../src/model/volume.ts';

const snap = (id: string, name: string, volume: string) => ({ id, name, spec: { volume } }) as Snapshot;
const volumes = [
  { id: 'v-1', name: 'data' },
  { id: 'v-2', name: 'logs' },
];
const snaps = [snap('s-1', 'nightly', 'v-1'), snap('s-2', 'nightly', 'v-2'), snap('s-3', 'weekly', 'v-1')];
const picked = (ref: string, volume?: string) => {
  const p = pickSnapshot(ref, snaps, volumes, volume);
  return p.ok ? p.snapshot.id : `${p.status} ${p.code}: ${p.message}`;
};

test('a snapshot by id, VOLUME/NAME, volume apart, or a name one volume has', () => {
  assert.equal(picked('s-2'), 's-2');
  assert.equal(picked('data/nightly'), 's-1');
  assert.equal(picked('v-2/nightly'), 's-2', 'the volume by id');
  assert.equal(picked('logs/s-2'), 's-2', 'the snapshot by id within its volume');
  assert.equal(picked('nightly', 'logs'), 's-2');
  assert.equal(picked('weekly'), 's-3');
});

test('an ambiguous name lists the candidates; a missing one says what the volume has', () => {
  assert.equal(
    picked('nightly'),
    "409 ambiguous_ref: snapshot 'nightly' is ambiguous: 2 volumes have a snapshot of that name (data/nightly, logs/nightly); name one as VOLUME/SNAPSHOT",
  );
  assert.equal(picked('monthly'), "404 not_found: snapshot 'monthly' not found");
  assert.equal(picked('logs/weekly'), "404 not_found: volume 'logs' has no snapshot 'weekly' (its snapshots: nightly)");
  assert.equal(picked('cache/nightly'), "404 not_found: volume 'cache' not found");
  assert.equal(picked('s-3', 'logs'), "404 not_found: volume 'logs' has no snapshot 's-3' (its snapshots: nightly)", 'an id of another volume is not taken');
});
