/**
 * The instance-create use case against an in-memory store: a create with no room is refused and
 * leaves nothing behind, a failure after the record was written undoes every step, admission is
 * decided once per create (the reconciler finds it placed), and a create leaves the instance with
 * its claims for the reconciler.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { capacity, decide } from '../../../src/controller/instances/placement.ts';
import { InstanceReconciler } from '../../../src/controller/instances/reconciler.ts';
import { ServiceError } from '../../../src/controller/services/errors.ts';
import { InstanceService } from '../../../src/controller/services/instances.ts';
import type { Kind } from '../../../src/controller/runtime/reconciler.ts';
import { testCtx, type TestCtx } from '../../helpers/controller-ctx.ts';
import { addHost, addImage, basics } from '../../helpers/controller-fixtures.ts';

const GiB = 1024 ** 3;

/** A host with one network and a kernel and a disk image; the placement decision counted. */
async function setup(): Promise<{ t: TestCtx; svc: InstanceService; decisions: () => number; netId: string; free: number }> {
  const t = await testCtx();
  await basics(t.store);
  await addHost(t.store, 'h-1', t.clock.now());
  t.hub.connected.add('h-1');
  await addImage(t.store, 'tiny');
  await t.store.images.create({
    name: 'disk-img',
    spec: { kind: 'disk', virtualSizeBytes: GiB, readyMarker: 'READY', guestPorts: [], files: { disk: { sha256: 'c'.repeat(64), size: 1 } } },
    status: { phase: 'ready', conditions: [], filesPresent: ['disk'] },
  });
  const net = await t.store.networks.create({
    name: 'net',
    spec: { tenant: 'default', subnet: '10.9.0.0/24', segment: 100 },
    status: { phase: 'active', conditions: [], hosts: [] },
  });
  let n = 0;
  const counted: typeof decide = (...args) => {
    n++;
    return decide(...args);
  };
  const [h] = await capacity(t.ctx);
  return { t, svc: new InstanceService(t.ctx, counted), decisions: () => n, netId: net.id, free: h!.allocatable.memoryMiB - h!.allocated.memoryMiB };
}

const base = { vcpus: 1, memoryMiB: 256 };

test('a create with no room on any host is refused with no_room and leaves no instance, claim or volume', async () => {
  const { t, svc, netId, free } = await setup();
  await svc.create({ ...base, name: 'big1', image: 'tiny', memoryMiB: free - 512 });
  const before = { instances: await t.store.instances.count(), volumes: await t.store.volumes.count(), claims: (await t.store.claims.addresses(netId)).length };
  await assert.rejects(
    svc.create({ ...base, name: 'big2', image: 'disk-img', memoryMiB: 1024, networks: ['net'] }),
    (e: unknown) =>
      e instanceof ServiceError && e.status === 422 && e.code === 'no_room' && /^no host has room for instance big2 now: .*--wait-for-room/.test(e.message),
  );
  assert.deepEqual(
    { instances: await t.store.instances.count(), volumes: await t.store.volumes.count(), claims: (await t.store.claims.addresses(netId)).length },
    before,
  );
  assert.equal(await t.store.instances.find('big2'), undefined);
  await t.close();
});

test('a create that fails after its record was written is undone: no instance, claim, boot volume or attachment stays', async () => {
  const { t, svc, netId } = await setup();
  const data = await t.store.volumes.create({
    name: 'data',
    spec: { sizeBytes: 64 * 1024 * 1024, tenant: 'default' },
    status: { phase: 'available', conditions: [], observedGeneration: 0 },
  });
  const update = t.store.volumes.update.bind(t.store.volumes);
  // The attachment of the data volume, the last step, fails.
  t.store.volumes.update = (async (id, fn) => {
    if (id === data.id) throw new Error('disk full');
    return update(id, fn);
  }) as typeof t.store.volumes.update;
  await assert.rejects(svc.create({ ...base, name: 'web', image: 'disk-img', volumes: ['data'], networks: ['net'] }), /disk full/);
  assert.equal(await t.store.instances.find('web'), undefined);
  assert.equal(await t.store.volumes.find('web-root'), undefined, 'the boot volume made for it is gone');
  assert.deepEqual(await t.store.claims.addresses(netId), [], 'its address is free again');
  assert.equal((await t.store.volumes.get(data.id))?.spec.attachedTo, undefined);
  await t.close();
});

test('admission is decided once per create: the reconciler finds the instance placed and does not place it again', async () => {
  const { t, svc, decisions } = await setup();
  const reconciler = new InstanceReconciler(t.ctx);
  (t.ctx.runtime as unknown as { reconcileNow: (k: Kind, key: string) => Promise<void> }).reconcileNow = (_k, key) => reconciler.reconcile(key);
  let locked = 0;
  const serialize = t.ctx.serialize;
  t.ctx.serialize = (fn) => {
    locked++;
    return serialize(fn);
  };
  const inst = await svc.create({ ...base, name: 'web', image: 'tiny' });
  assert.equal(decisions(), 1);
  assert.equal(locked, 1, 'the reconciler did not take the placement lock to place it again');
  assert.equal(inst.status.hostId, 'h-1');
  assert.equal(inst.status.lastOp?.kind, 'vm.start', 'the reconciler carried on from the placement');
  // Waiting for room decides nothing at create: placement is the reconciler's.
  await svc.create({ ...base, name: 'later', image: 'tiny', waitForRoom: true });
  assert.equal(decisions(), 1);
  await t.close();
});

test('a create leaves the instance for the reconciler: placed with its memory, its address claimed, its boot volume pending', async () => {
  const { t, svc, netId } = await setup();
  const inst = await svc.create({ ...base, name: 'web', image: 'disk-img', networks: ['net'], start: false });
  const cur = (await t.store.instances.get(inst.id))!;
  assert.equal(cur.status.phase, 'scheduled');
  assert.equal(cur.status.hostId, 'h-1');
  assert.equal(cur.status.memory?.pool, 'default');
  assert.equal(cur.status.conditions.find((c) => c.type === 'Scheduled')?.reason, 'Placed');
  assert.equal(cur.spec.powerState, 'stopped');
  const claims = await t.store.claims.addresses(netId);
  assert.deepEqual(
    claims.map((c) => c.instanceId),
    [inst.id],
  );
  assert.equal(cur.spec.nics?.[0]?.address, '10.9.0.1');
  const root = (await t.store.volumes.find('web-root'))!;
  assert.equal(cur.spec.bootVolume, root.id);
  assert.equal(root.spec.ownedBy, inst.id);
  assert.equal(root.status.phase, 'pending');
  assert.ok(
    t.enqueued.some((e) => e.kind === 'instance' && e.key === inst.id && e.now),
    'the reconciler is asked to run it now',
  );
  assert.ok(t.enqueued.some((e) => e.kind === 'volume' && e.key === root.id));
  assert.ok(t.enqueued.some((e) => e.kind === 'network' && e.key === netId));
  await t.close();
});
