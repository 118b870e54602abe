import assert from 'node:assert/strict';
import { test } from 'node:test';
import { detachReleased, planVolume, volumeOpIds, type VolumePlanContext } from '../../../src/controller/volumes/plan.ts';
import { planSnapshot } from '../../../src/controller/snapshots/plan.ts';
import type { LastOp } from '../../../src/model/instance.ts';
import type { Snapshot, Volume, VolumePhase } from '../../../src/model/volume.ts';

const now = new Date('2026-01-01T00:00:00Z');
const op = (opId: string, kind: string, state: LastOp['state'], error?: string): LastOp => ({ opId, kind, state, error, at: now.toISOString() });

function vol(over: { phase?: VolumePhase; size?: number; lastOp?: LastOp; attachedTo?: string; generation?: number; hostId?: string | null } = {}): Volume {
  return {
    id: 'v-1',
    name: 'data',
    labels: {},
    annotations: {},
    spec: { sizeBytes: over.size ?? 1 << 30, tenant: 'default', attachedTo: over.attachedTo },
    status: { phase: over.phase ?? 'creating', conditions: [], hostId: over.hostId === null ? undefined : 'h-1', observedGeneration: 0, lastOp: over.lastOp },
    createdAt: now.toISOString(),
    updatedAt: now.toISOString(),
    generation: over.generation ?? 1,
  };
}

const ctx = (over: Partial<VolumePlanContext> = {}): VolumePlanContext => ({
  host: { exists: true, connected: true, name: 'h1' },
  lastOpInFlight: false,
  now,
  ...over,
});
const report = (size = 1 << 30) => ({ id: 'v-1', sizeBytes: size, usedBytes: 0, snapshots: [] });

test('a placed volume the host lacks gets created, once', () => {
  const p = planVolume(vol(), ctx());
  assert.deepEqual(p.send, { opId: 'v-1/ensure', kind: 'volume.ensure' });
  const waiting = planVolume(vol({ lastOp: op('v-1/ensure', 'volume.ensure', 'sent') }), ctx({ lastOpInFlight: true }));
  assert.equal(waiting.send, undefined);
  assert.equal(waiting.status.phase, 'creating');
});

test('a reported volume is available, or in use when attached; its sizes mirror the host', () => {
  const a = planVolume(vol({ lastOp: op('v-1/ensure', 'volume.ensure', 'succeeded') }), ctx({ observed: { ...report(), usedBytes: 4096 } }));
  assert.equal(a.status.phase, 'available');
  assert.equal(a.status.usedBytes, 4096);
  const b = planVolume(vol({ attachedTo: 'i-1' }), ctx({ observed: report(), pluggedInto: 'i-1' }));
  assert.equal(b.status.phase, 'in-use');
  assert.equal(b.status.attachedTo, 'i-1');
});

test('growing the spec sends one resize per generation; a failed create or a vanished volume is failed', () => {
  const v = vol({ size: 2 * 2 ** 30, generation: 3, phase: 'available' });
  assert.deepEqual(planVolume(v, ctx({ observed: report() })).send, { opId: volumeOpIds(v).resize, kind: 'volume.resize' });
  const failed = planVolume(vol({ lastOp: op('v-1/ensure', 'volume.ensure', 'failed', 'no space') }), ctx());
  assert.equal(failed.status.phase, 'failed');
  assert.match(failed.status.message ?? '', /no space/);
  const gone = planVolume(vol({ phase: 'available', lastOp: op('v-1/ensure', 'volume.ensure', 'succeeded') }), ctx());
  assert.equal(gone.status.phase, 'failed');
  assert.match(gone.status.message ?? '', /gone from host h1/);
});

test('deleting: sent once, removed when the host no longer has it, kept with the reason when refused', () => {
  const d = vol({ phase: 'deleting' });
  assert.deepEqual(planVolume(d, ctx({ observed: report() })).send, { opId: 'v-1/delete', kind: 'volume.delete' });
  assert.equal(planVolume(vol({ phase: 'deleting', lastOp: op('v-1/delete', 'volume.delete', 'succeeded') }), ctx()).remove, true);
  const refused = planVolume(vol({ phase: 'deleting', lastOp: op('v-1/delete', 'volume.delete', 'failed', 'has clones') }), ctx({ observed: report() }));
  assert.equal(refused.remove, undefined);
  assert.match(refused.status.message ?? '', /has clones/);
  assert.equal(planVolume(vol({ phase: 'deleting', hostId: null }), ctx()).remove, true);
});

test('snapshots wait for their volume, are taken once, and are ready when the host lists them', () => {
  const s: Snapshot = {
    id: 's-1',
    name: 'snap',
    labels: {},
    annotations: {},
    spec: { volume: 'v-1' },
    status: { phase: 'pending', conditions: [] },
    createdAt: '',
    updatedAt: '',
    generation: 1,
  };
  const v = vol({ phase: 'available' });
  assert.equal(planSnapshot(s, { volume: v, host: { exists: true, connected: true }, lastOpInFlight: false, now }).status.phase, 'pending');
  const take = planSnapshot(s, { volume: v, host: { exists: true, connected: true }, observedVolume: report(), lastOpInFlight: false, now });
  assert.deepEqual(take.send, { opId: 's-1/ensure', kind: 'snapshot.ensure' });
  const ready = planSnapshot(s, {
    volume: v,
    host: { exists: true, connected: true },
    observedVolume: { ...report(), snapshots: ['s-1'] },
    lastOpInFlight: false,
    now,
  });
  assert.equal(ready.status.phase, 'ready');
  assert.equal(ready.status.sizeBytes, 1 << 30);
  const del = planSnapshot(
    { ...s, status: { phase: 'deleting', conditions: [], hostId: 'h-1' } },
    { volume: v, host: { exists: true, connected: true }, observedVolume: { ...report(), snapshots: ['s-1'] }, lastOpInFlight: false, now },
  );
  assert.deepEqual(del.send, { opId: 's-1/delete', kind: 'snapshot.delete' });
});

test('a volume its guest unplugged is detached in the spec, once, only for the attach that plugged it', () => {
  const v = vol({ phase: 'in-use', attachedTo: 'i-1', generation: 5 });
  const change = detachReleased(v, { instanceId: 'i-1', tag: 'g5' }, now);
  assert.equal(change?.spec.attachedTo, undefined);
  assert.match(change?.status.conditions.find((c) => c.type === 'GuestReleased' && c.status === 'True')?.message ?? '', /guest of instance i-1 unplugged it/);
  assert.equal(detachReleased(v, { instanceId: 'i-1', tag: 'g4' }, now), undefined, 'an older attach: the user attached it again since');
  assert.equal(detachReleased(v, { instanceId: 'i-2', tag: 'g5' }, now), undefined, 'another instance');
  assert.equal(detachReleased(v, undefined, now), undefined);
  assert.equal(
    detachReleased({ ...v, spec: change!.spec, status: change!.status, generation: 6 }, { instanceId: 'i-1', tag: 'g5' }, now),
    undefined,
    'already done',
  );
  const replugged = planVolume({ ...v, spec: { ...v.spec, attachedTo: 'i-1' }, status: change!.status }, ctx({ observed: report(), pluggedInto: 'i-1' }));
  assert.equal(replugged.status.conditions.find((c) => c.type === 'GuestReleased')?.status, 'False', 'plugged in again');
});
