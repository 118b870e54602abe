/**
 * The instance reconciler against an in-memory store, a fake clock and agents played by the test:
 * placement, the start operation and its answer (taken only from the host it went to), backoff
 * through the runtime on a transient error, and a TerminalError for what retrying cannot fix.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger } from '../../../src/common/log.ts';
import { InstanceReconciler } from '../../../src/controller/instances/reconciler.ts';
import { Manager } from '../../../src/controller/runtime/manager.ts';
import { KINDS, TerminalError } from '../../../src/controller/runtime/reconciler.ts';
import type { VmReport } from '../../../src/model/agent-protocol.ts';
import { testCtx } from '../../helpers/controller-ctx.ts';
import { addHost, addImage, addInstance, basics } from '../../helpers/controller-fixtures.ts';

const running = (instanceId: string, generation: number): VmReport => ({
  instanceId,
  state: 'running',
  accel: 'tcg',
  forwards: [],
  generation,
  restartSeq: 0,
  disks: [],
  bootedAt: '2026-12-01T00:00:00Z',
  readyAt: '2026-12-01T00:00:01Z',
});

test('an instance is placed, started on its host, and running once the answer and the report agree', async () => {
  const t = await testCtx();
  await basics(t.store);
  await addHost(t.store, 'h-1', t.clock.now());
  t.hub.connected.add('h-1');
  await addImage(t.store, 'tiny');
  const inst = await addInstance(t.store, 'web1');
  const r = new InstanceReconciler(t.ctx);

  await r.reconcile(inst.id);
  let cur = (await t.store.instances.get(inst.id))!;
  assert.equal(cur.status.hostId, 'h-1');
  assert.equal(cur.status.lastOp?.kind, 'vm.start');
  assert.equal(cur.status.lastOp?.state, 'sent');
  await new Promise((res) => setImmediate(res));
  assert.deepEqual(
    t.hub.sent.map((s) => [s.hostId, s.op.kind]),
    [['h-1', 'vm.start']],
  );
  const opId = cur.status.lastOp!.opId;
  assert.deepEqual(t.ctx.ops.get(opId)?.owner, { kind: 'instance', key: inst.id });

  await r.reconcile(inst.id);
  assert.equal(t.hub.sent.length, 1, 'in flight: not sent twice');

  assert.equal(t.ctx.ops.onResult('h-2', opId, { ok: true }), false, 'another host cannot answer for h-1');
  assert.equal(t.ctx.ops.onResult('h-1', opId, { ok: true }), true);
  t.hub.answered(opId);
  assert.ok(
    t.enqueued.some((e) => e.kind === 'instance' && e.key === inst.id),
    'the answer wakes its owner',
  );
  t.hub.vms.set('h-1', new Map([[inst.id, running(inst.id, inst.generation)]]));
  await r.reconcile(inst.id);
  cur = (await t.store.instances.get(inst.id))!;
  assert.equal(cur.status.phase, 'running');
  assert.equal(cur.status.lastOp?.state, 'succeeded');
  assert.equal(t.ctx.ops.get(opId), undefined, 'the folded answer left the tracker');
  await t.close();
});

test('with no host able to take it, an instance stays pending with the reason', async () => {
  const t = await testCtx();
  await basics(t.store);
  await addHost(t.store, 'h-1', t.clock.now(), { memoryMiB: 512 });
  t.hub.connected.add('h-1');
  await addImage(t.store, 'tiny');
  const inst = await addInstance(t.store, 'big', { memoryMiB: 64 * 1024 });
  await new InstanceReconciler(t.ctx).reconcile(inst.id);
  const cur = (await t.store.instances.get(inst.id))!;
  assert.equal(cur.status.phase, 'pending');
  assert.equal(cur.status.hostId, undefined);
  assert.match(cur.status.message ?? '', /no host can ever hold 1 vCPUs and 65536 MiB/);
  assert.equal(t.hub.sent.length, 0);
  await t.close();
});

test('a network that is gone is a TerminalError: not retried', async () => {
  const t = await testCtx();
  await basics(t.store);
  await addHost(t.store, 'h-1', t.clock.now());
  t.hub.connected.add('h-1');
  await addImage(t.store, 'tiny');
  const inst = await addInstance(t.store, 'lost-net', {
    nics: [{ network: 'n-gone', networkName: 'gone', mac: '52:54:00:00:00:01', address: '10.0.0.2', prefix: 24 }] as never,
  });
  const r = new InstanceReconciler(t.ctx);
  await assert.rejects(r.reconcile(inst.id), (e: unknown) => e instanceof TerminalError && /network gone of instance lost-net is gone/.test(e.message));
  await t.close();
});

test('through the runtime: a transient failure is retried after its backoff, a TerminalError is not', async () => {
  const t = await testCtx();
  await basics(t.store);
  await addHost(t.store, 'h-1', t.clock.now());
  t.hub.connected.add('h-1');
  await addImage(t.store, 'tiny');
  const ok = await addInstance(t.store, 'web1');
  const doomed = await addInstance(t.store, 'doomed', {
    nics: [{ network: 'n-gone', networkName: 'gone', mac: '52:54:00:00:00:02', address: '10.0.0.3', prefix: 24 }] as never,
  });
  // The hub is not there yet for the first runs (a controller starting): a transient error.
  let hubMissing = 2;
  const hub = t.ctx.hub;
  const ctx = {
    ...t.ctx,
    hub: () =>
      hubMissing-- > 0
        ? (() => {
            throw new Error('the controller has no agent hub yet');
          })()
        : hub(),
  };
  const errors: string[] = [];
  const manager = new Manager({
    log: createLogger('test', { level: 'silent' }),
    clock: t.clock,
    random: () => 1,
    backoff: { baseMs: 1000, maxMs: 60_000 },
    onError: (_k, key) => errors.push(key),
  });
  manager.register(new InstanceReconciler({ ...ctx, runtime: manager }), async () => [ok.id, doomed.id]);
  for (const kind of KINDS) if (kind !== 'instance') manager.register({ kind, reconcile: async () => undefined }, async () => []);
  await manager.start();
  await manager.idle();
  const q = manager.queue('instance');
  assert.equal(q.failuresOf(ok.id) + q.failuresOf(doomed.id), 2, 'both failed once on the missing hub');
  assert.deepEqual([...q.delayed().values()], [1000, 1000]);
  t.clock.advance(1000);
  await manager.idle();
  assert.equal((await t.store.instances.get(ok.id))!.status.lastOp?.kind, 'vm.start', 'retried after its backoff and started');
  assert.equal(q.failuresOf(ok.id), 0);
  assert.equal(q.failuresOf(doomed.id), 0, 'a TerminalError clears the count');
  assert.equal(q.delayed().has(doomed.id), false, 'and schedules no retry');
  assert.equal(errors.filter((k) => k === doomed.id).length, 2, 'the transient error, then the terminal one');
  manager.stop();
  await t.close();
});

test('an instance of a disk image whose boot volume is not made yet waits instead of failing', async () => {
  const t = await testCtx();
  await basics(t.store);
  await addHost(t.store, 'h-1', t.clock.now());
  t.hub.connected.add('h-1');
  await t.store.images.create({
    name: 'myos',
    spec: { kind: 'disk', virtualSizeBytes: 1 << 30, guestPorts: [], files: { disk: { sha256: 'c'.repeat(64), size: 1 } } },
    status: { phase: 'ready', conditions: [], filesPresent: ['disk'] },
  });
  // What the API has written so far: the instance, not yet its boot volume.
  const inst = await addInstance(t.store, 'vm2', { image: 'myos' });
  await new InstanceReconciler(t.ctx).reconcile(inst.id);
  const cur = (await t.store.instances.get(inst.id))!;
  assert.notEqual(cur.status.phase, 'failed');
  assert.match(cur.status.message ?? '', /waiting for its boot volume/);
  assert.equal(t.hub.sent.length, 0, 'no VM started without a disk');
  await t.close();
});
