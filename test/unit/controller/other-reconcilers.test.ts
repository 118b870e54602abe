/**
 * The network, backup, memory-pool and host-cluster reconcilers against an in-memory store, a fake
 * clock and played agents: what each sends, to whom, and how the answers come back through the
 * operation tracker to the resource that sent them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BackupReconciler } from '../../../src/controller/backups/reconciler.ts';
import { HostClusterReconciler } from '../../../src/controller/host-clusters/reconciler.ts';
import { MemoryReconciler } from '../../../src/controller/memory/reconciler.ts';
import { NetworkReconciler } from '../../../src/controller/networks/reconciler.ts';
import { getCondition } from '../../../src/model/conditions.ts';
import { testCtx } from '../../helpers/controller-ctx.ts';
import { addHost, addInstance, addVolume, basics } from '../../helpers/controller-fixtures.ts';

const settle = () => new Promise((r) => setImmediate(r));

test('a network goes to the hosts of its instances; their answers are folded into its status', async () => {
  const t = await testCtx();
  await basics(t.store);
  await addHost(t.store, 'h-1', t.clock.now());
  await t.store.hosts.updateStatus(
    'h-1',
    (c) => ({
      status: {
        ...c.status,
        inventory: { ...c.status.inventory!, network: { backend: 'vxlan', underlay: { address: '10.9.0.1', dev: 'eth0', mtu: 1500 } } } as never,
      },
    }),
    'other',
  );
  t.hub.connected.add('h-1');
  const net = await t.store.networks.create({
    name: 'blue',
    spec: { tenant: 'default', subnet: '10.0.0.0/24', segment: 4001 },
    status: { phase: 'active', conditions: [], hosts: [] },
  });
  const inst = await addInstance(t.store, 'web1', {
    nics: [{ network: net.id, networkName: 'blue', mac: '52:54:00:00:00:01', address: '10.0.0.2', prefix: 24 }] as never,
  });
  await t.store.instances.updateStatus(inst.id, (c) => ({ status: { ...c.status, hostId: 'h-1', phase: 'running' } }), 'other');
  const r = new NetworkReconciler(t.ctx);
  await r.reconcile(net.id);
  await settle();
  const sent = t.hub.sent.find((s) => s.op.kind === 'network.ensure')!;
  assert.equal(sent.hostId, 'h-1');
  assert.deepEqual(t.ctx.ops.get(sent.op.opId)?.owner, { kind: 'network', key: net.id });
  assert.equal((await t.store.networks.get(net.id))!.status.hosts[0]?.state, 'sent');
  t.ctx.ops.onResult('h-1', sent.op.opId, { ok: true });
  t.hub.answered(sent.op.opId);
  assert.ok(t.enqueued.some((e) => e.kind === 'network' && e.key === net.id));
  await r.reconcile(net.id);
  assert.equal((await t.store.networks.get(net.id))!.status.hosts[0]?.state, 'ready');
  assert.deepEqual(t.ctx.ops.ofOwner({ kind: 'network', key: net.id }), [], 'folded answers leave the tracker');
  await t.close();
});

test('a backup is carried out by its volume host; the answer completes it and wakes its policy', async () => {
  const t = await testCtx();
  await basics(t.store);
  await addHost(t.store, 'h-1', t.clock.now());
  t.hub.connected.add('h-1');
  const v = await addVolume(t.store, 'data');
  await t.store.volumes.updateStatus(v.id, (c) => ({ status: { ...c.status, phase: 'available', hostId: 'h-1' } }), 'other');
  const b = await t.store.backups.create({
    name: 'b1',
    spec: { volume: v.id, repository: '/backups', scope: `volumes/${v.id}`, tags: [], policy: 'bp-1' },
    status: { phase: 'pending', conditions: [] },
  });
  const r = new BackupReconciler(t.ctx);
  await r.reconcile(b.id);
  await settle();
  const sent = t.hub.sent.at(-1)!;
  assert.equal(sent.op.kind, 'backup.create');
  const op = sent.op as Extract<typeof sent.op, { kind: 'backup.create' }>;
  assert.equal(op.repository.path, `/backups/volumes/${v.id}`);
  assert.notEqual(op.repository.passphrase, 'test-passphrase', "the scope's key, not the master secret");
  assert.equal((await t.store.backups.get(b.id))!.status.phase, 'running');
  const result = { snapshotId: 'snap1', bmrReady: true, files: 3, bytes: 10, addedBytes: 10, partitions: 1, filesystems: [], systemState: [], seconds: 1 };
  t.ctx.ops.onResult('h-1', op.opId, { ok: true, result });
  t.hub.answered(op.opId);
  await r.reconcile(b.id);
  const done = (await t.store.backups.get(b.id))!;
  assert.equal(done.status.phase, 'completed');
  assert.equal(done.status.result?.snapshotId, 'snap1');
  assert.ok(
    t.enqueued.some((e) => e.kind === 'backupPolicy' && e.key === 'bp-1'),
    "its policy's retention is looked at",
  );
  await t.close();
});

test("a memory pool's status follows its hosts; a failed balloon move is forgotten so it is tried again", async () => {
  const t = await testCtx();
  await basics(t.store);
  await addHost(t.store, 'h-1', t.clock.now());
  t.hub.connected.add('h-1');
  const pool = (await t.store.memoryPools.list())[0]!;
  const r = new MemoryReconciler(t.ctx);
  await r.reconcile(pool.id);
  const st = (await t.store.memoryPools.get(pool.id))!.status;
  assert.deepEqual(st.hosts, ['h-1']);
  assert.equal(st.phase, 'active');
  assert.equal(getCondition(st.conditions, 'Pressure')?.status, 'False');

  // A balloon move's failure is the pool's to fold (the record names the pool and the instance).
  void t.ctx.ops.send(
    { kind: 'memory', key: pool.id },
    'h-1',
    { opId: 'balloon/i-1/1', kind: 'vm.balloon', instanceId: 'i-1', targetMiB: 128 },
    { subject: 'i-1', wakeOnFailureOnly: true },
  );
  await settle();
  t.ctx.ops.onResult('h-1', 'balloon/i-1/1', { ok: true });
  assert.equal(t.enqueued.filter((e) => e.kind === 'memory').length, 0, 'a move that worked wakes nothing');
  void t.ctx.ops.send(
    { kind: 'memory', key: pool.id },
    'h-1',
    { opId: 'balloon/i-1/2', kind: 'vm.balloon', instanceId: 'i-1', targetMiB: 128 },
    { subject: 'i-1', wakeOnFailureOnly: true },
  );
  await settle();
  t.ctx.ops.onResult('h-1', 'balloon/i-1/2', { ok: false, error: 'no balloon device' });
  assert.deepEqual(
    t.enqueued.filter((e) => e.kind === 'memory'),
    [{ kind: 'memory', key: pool.id }],
  );
  await r.reconcile(pool.id);
  await settle();
  assert.deepEqual(t.ctx.ops.ofOwner({ kind: 'memory', key: pool.id }), [], 'both answers folded and forgotten');
  await t.close();
});

test("a dedicated host cluster's condition turns False when another tenant's instance is on its hosts", async () => {
  const t = await testCtx();
  await basics(t.store);
  await addHost(t.store, 'h-1', t.clock.now());
  const c = await t.store.hostClusters.create({
    name: 'acme-only',
    spec: { tenant: 'acme', hosts: ['h-1'] } as never,
    status: { phase: 'active', conditions: [], principals: [] } as never,
  });
  const r = new HostClusterReconciler(t.ctx);
  await r.reconcile(c.id);
  assert.equal(getCondition((await t.store.hostClusters.get(c.id))!.status.conditions, 'Dedicated')?.status, 'True');
  const inst = await addInstance(t.store, 'intruder', { tenant: 'other' });
  await t.store.instances.updateStatus(inst.id, (x) => ({ status: { ...x.status, hostId: 'h-1', phase: 'running' } }), 'other');
  await r.reconcile(c.id);
  assert.equal(getCondition((await t.store.hostClusters.get(c.id))!.status.conditions, 'Dedicated')?.status, 'False');
  await t.close();
});
