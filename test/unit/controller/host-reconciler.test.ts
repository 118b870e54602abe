/**
 * The host reconciler and its liveness deadline, on a fake clock: a host whose heartbeats stop is
 * found lost by its own deadline timer (no polling of the host table), and ready again when they return.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AgentEvents } from '../../../src/controller/hosts/events.ts';
import { HostReconciler } from '../../../src/controller/hosts/reconciler.ts';
import { FakeClock } from '../../../src/controller/runtime/clock.ts';
import { PROTOCOL_VERSION } from '../../../src/model/agent-protocol.ts';
import { getCondition } from '../../../src/model/conditions.ts';
import { testCtx } from '../../helpers/controller-ctx.ts';
import { addHost } from '../../helpers/controller-fixtures.ts';

test('heartbeats that stop make a host lost once its deadline passes, and coming back makes it ready', async () => {
  const t = await testCtx();
  const h = await addHost(t.store, 'h-1', t.clock.now());
  t.hub.connected.add('h-1');
  const r = new HostReconciler(t.ctx);
  t.ctx.liveness.heartbeat('h-1', t.clock.now());
  await r.reconcile(h.id);
  let cur = (await t.store.hosts.get(h.id))!;
  assert.equal(cur.status.phase, 'ready');
  assert.equal(getCondition(cur.status.conditions, 'Heartbeat')?.status, 'True');

  // Heartbeats keep coming: the deadline moves and nothing wakes the reconciler.
  for (let i = 0; i < 5; i++) {
    t.clock.advance(2000);
    t.ctx.liveness.heartbeat('h-1', t.clock.now());
  }
  t.clock.advance(9000);
  assert.equal(t.enqueued.length, 0, 'no wake while heartbeats arrive');

  // They stop: the deadline timer wakes the host once, lostAfterMs after the last one.
  t.hub.drop('h-1');
  t.clock.advance(1001);
  assert.deepEqual(t.enqueued, [{ kind: 'host', key: 'h-1' }]);
  await r.reconcile(h.id);
  cur = (await t.store.hosts.get(h.id))!;
  assert.equal(cur.status.phase, 'lost');
  assert.equal(cur.status.agent.connected, false);
  assert.equal(getCondition(cur.status.conditions, 'Heartbeat')?.reason, 'HeartbeatsStopped');
  t.clock.advance(60_000);
  assert.equal(t.enqueued.filter((e) => e.kind === 'host').length, 1, 'a lost host is not polled');

  t.hub.connected.add('h-1');
  t.ctx.liveness.heartbeat('h-1', t.clock.now());
  await r.reconcile(h.id);
  assert.equal((await t.store.hosts.get(h.id))!.status.phase, 'ready');
  await t.close();
});

test('a cordoned host is cordoned, and its phase change wakes what lives on it', async () => {
  const t = await testCtx();
  const h = await addHost(t.store, 'h-1', t.clock.now());
  t.hub.connected.add('h-1');
  const inst = await t.store.instances.create({
    name: 'x',
    spec: { vcpus: 1, memoryMiB: 64, tenant: 'default', powerState: 'running', forwardPorts: [], restartSeq: 0 },
    status: { phase: 'running', conditions: [], hostId: 'h-1', network: { forwards: [] }, observedGeneration: 1 },
  });
  await t.store.hosts.update(h.id, (c) => ({ spec: { ...c.spec, cordoned: true } }));
  t.ctx.liveness.heartbeat('h-1', t.clock.now());
  await new HostReconciler(t.ctx).reconcile(h.id);
  assert.equal((await t.store.hosts.get(h.id))!.status.phase, 'cordoned');
  assert.ok(t.enqueued.some((e) => e.kind === 'instance' && e.key === inst.id));
  await t.close();
});

test('a controller that has just started gives hosts lostAfterMs to reconnect; a host recorded lost stays lost', async () => {
  // The store as a controller left it: heartbeats persisted 30 s before this start (longer ago than lostAfterMs).
  const clock = new FakeClock(Date.parse('2026-12-01T00:00:30Z'));
  const before = new Date('2026-12-01T00:00:00Z');
  const t = await testCtx({ clock });
  const up = await addHost(t.store, 'h-up', before);
  const gone = await addHost(t.store, 'h-gone', before);
  await t.store.hosts.updateStatus(gone.id, (c) => ({ status: { ...c.status, phase: 'lost', agent: { ...c.status.agent, connected: false } } }), 'other');
  const r = new HostReconciler(t.ctx);
  await r.reconcile(up.id);
  await r.reconcile(gone.id);
  assert.equal((await t.store.hosts.get(up.id))!.status.phase, 'ready', 'not lost the moment the controller starts');
  assert.equal((await t.store.hosts.get(gone.id))!.status.phase, 'lost');

  // The host that was up does not come back: lost once its grace has passed, woken by its deadline.
  t.clock.advance(t.ctx.lostAfterMs + 1);
  assert.deepEqual(t.enqueued, [{ kind: 'host', key: up.id }]);
  await r.reconcile(up.id);
  const cur = (await t.store.hosts.get(up.id))!;
  assert.equal(cur.status.phase, 'lost');
  assert.equal(cur.status.agent.lastHeartbeatAt, before.toISOString(), 'the recorded heartbeat is the last one heard, not the start');
  await t.close();
});

test("a host's heartbeat is written with its hello, and not again by the reports that follow it", async () => {
  const t = await testCtx();
  const h = await addHost(t.store, 'h-1', t.clock.now());
  t.hub.connected.add('h-1');
  const writes: string[] = [];
  t.store.hosts.watch((e) => writes.push(e.id));
  const events = new AgentEvents(t.ctx);
  await events.onHello({
    type: 'hello',
    protocol: PROTOCOL_VERSION,
    hostId: h.id,
    name: h.name,
    agentVersion: 'test',
    inventory: h.status.inventory!,
    vms: [],
    volumes: [],
  });
  assert.equal(writes.length, 1, 'the hello records the connection and its heartbeat');
  for (let i = 0; i < 29; i++) {
    t.clock.advance(10_000);
    events.onReport(h.id, [], false);
  }
  await new Promise((r) => setImmediate(r));
  assert.equal(writes.length, 1, 'heartbeats for under five minutes after the hello: held in memory');
  t.clock.advance(10_000);
  events.onReport(h.id, [], false);
  await new Promise((r) => setImmediate(r));
  assert.equal(writes.length, 2, 'then written once');
  await t.close();
});
