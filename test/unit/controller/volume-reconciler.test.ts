/**
 * The volume and snapshot reconcilers against an in-memory store, a fake clock and a played agent:
 * placement, volume.ensure with its answer folded in, a failed answer, a snapshot made once its
 * volume is on the host, and a deleted volume forgetting its operations.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SnapshotReconciler } from '../../../src/controller/snapshots/reconciler.ts';
import { VolumeReconciler } from '../../../src/controller/volumes/reconciler.ts';
import { testCtx } from '../../helpers/controller-ctx.ts';
import { addHost, addVolume, basics } from '../../helpers/controller-fixtures.ts';

const MiB = 1024 * 1024;

test('a volume is placed, made by its host, and available once the answer and the report agree', async () => {
  const t = await testCtx();
  await basics(t.store);
  await addHost(t.store, 'h-1', t.clock.now());
  t.hub.connected.add('h-1');
  const v = await addVolume(t.store, 'data');
  const r = new VolumeReconciler(t.ctx);
  await r.reconcile(v.id);
  let cur = (await t.store.volumes.get(v.id))!;
  assert.equal(cur.status.hostId, 'h-1');
  assert.equal(cur.status.lastOp?.kind, 'volume.ensure');
  await new Promise((res) => setImmediate(res));
  assert.deepEqual(
    t.hub.sent.map((s) => s.op.kind),
    ['volume.ensure'],
  );
  const opId = cur.status.lastOp!.opId;

  t.ctx.ops.onResult('h-1', opId, { ok: true });
  t.hub.answered(opId);
  t.hub.volumes.set('h-1', new Map([[v.id, { id: v.id, sizeBytes: 64 * MiB, usedBytes: 0, snapshots: [] }]]));
  await r.reconcile(v.id);
  cur = (await t.store.volumes.get(v.id))!;
  assert.equal(cur.status.phase, 'available');
  assert.equal(cur.status.lastOp?.state, 'succeeded');

  // A snapshot of it: made on the volume's host, ready once the report lists it.
  const s = await t.store.snapshots.create({ name: 'before', spec: { volume: v.id }, status: { phase: 'pending', conditions: [] } });
  const sr = new SnapshotReconciler(t.ctx);
  await sr.reconcile(s.id);
  await new Promise((res) => setImmediate(res));
  const sent = t.hub.sent.at(-1)!;
  assert.deepEqual([sent.hostId, sent.op.kind], ['h-1', 'snapshot.ensure']);
  assert.deepEqual(t.ctx.ops.get(sent.op.opId)?.owner, { kind: 'snapshot', key: s.id });
  t.ctx.ops.onResult('h-1', sent.op.opId, { ok: true });
  t.hub.answered(sent.op.opId);
  t.hub.volumes.set('h-1', new Map([[v.id, { id: v.id, sizeBytes: 64 * MiB, usedBytes: 0, snapshots: [s.id] }]]));
  await sr.reconcile(s.id);
  assert.equal((await t.store.snapshots.get(s.id))!.status.phase, 'ready');

  // Deleted: volume.delete, and once it is gone from the host the record and its operations go.
  await t.store.snapshots.delete(s.id);
  await t.ctx.status.edit(t.store.volumes, v.id, (st) => ({ ...st, phase: 'deleting' as const }));
  await r.reconcile(v.id);
  await new Promise((res) => setImmediate(res));
  const del = t.hub.sent.at(-1)!;
  assert.equal(del.op.kind, 'volume.delete');
  t.ctx.ops.onResult('h-1', del.op.opId, { ok: true });
  t.hub.answered(del.op.opId);
  t.hub.volumes.set('h-1', new Map());
  await r.reconcile(v.id);
  assert.equal(await t.store.volumes.get(v.id), undefined);
  assert.deepEqual(t.ctx.ops.ofOwner({ kind: 'volume', key: v.id }), []);
  await t.close();
});

test('a failed volume.ensure is recorded with its error; a volume no host could ever hold fails at once', async () => {
  const t = await testCtx();
  await basics(t.store);
  await addHost(t.store, 'h-1', t.clock.now());
  t.hub.connected.add('h-1');
  const v = await addVolume(t.store, 'data');
  const r = new VolumeReconciler(t.ctx);
  await r.reconcile(v.id);
  const opId = (await t.store.volumes.get(v.id))!.status.lastOp!.opId;
  t.ctx.ops.onResult('h-1', opId, { ok: false, error: 'no space left on device' });
  t.hub.answered(opId);
  await r.reconcile(v.id);
  const cur = (await t.store.volumes.get(v.id))!;
  assert.equal(cur.status.lastOp?.state, 'failed');
  assert.match(cur.status.lastOp?.error ?? '', /no space left/);

  await t.store.hosts.updateStatus(
    'h-1',
    (c) => ({
      status: {
        ...c.status,
        storage: { totalBytes: 100 * MiB, freeBytes: 50 * MiB, provisionedBytes: 0, mayAllocateBytes: 0, reportedAt: t.clock.now().toISOString() },
      },
    }),
    'other',
  );
  const huge = await addVolume(t.store, 'huge', { sizeBytes: 1024 * 1024 * MiB });
  await r.reconcile(huge.id);
  const h = (await t.store.volumes.get(huge.id))!;
  assert.equal(h.status.phase, 'failed');
  assert.equal(h.status.hostId, undefined);
  await t.close();
});
