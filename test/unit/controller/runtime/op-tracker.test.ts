/** The operation tracker: target checks, owners woken, answers kept across a controller restart. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { createLogger } from '../../../../src/common/log.ts';
import { FakeClock } from '../../../../src/controller/runtime/clock.ts';
import { OpTracker, type OpResult, type OpTransport } from '../../../../src/controller/runtime/op-tracker.ts';
import type { ObjectRef } from '../../../../src/controller/runtime/reconciler.ts';
import type { AgentOp } from '../../../../src/model/agent-protocol.ts';
import { openStore } from '../../../../src/store/index.ts';
import { tempDir } from '../../../helpers/tmp.ts';

const log = createLogger('test', { level: 'silent' });

class Transport implements OpTransport {
  readonly sent: [string, AgentOp][] = [];
  readonly inflight = new Set<string>();
  connected = true;
  sendOp(hostId: string, op: AgentOp): Promise<OpResult> {
    if (!this.connected) return Promise.reject(new Error('not connected'));
    this.sent.push([hostId, op]);
    this.inflight.add(op.opId);
    return new Promise(() => undefined);
  }
  isInFlight(_h: string, opId: string): boolean {
    return this.inflight.has(opId);
  }
}

const stop = (opId: string): AgentOp => ({ opId, kind: 'vm.stop', instanceId: 'i-1', generation: 1 });

test('answers reach their owner; an answer from another host is dropped; the records survive a controller restart', async () => {
  const dir = tempDir();
  const path = join(dir.path, 'outrig.db');
  const clock = new FakeClock();
  const woken: ObjectRef[] = [];

  // First controller: sends two operations, then stops before their answers come.
  let store = await openStore({ kind: 'sqlite', path });
  let transport = new Transport();
  let ops = new OpTracker({ db: store.db, transport: () => transport, clock, log, wake: (r) => woken.push(r) });
  await ops.load();
  void ops.send({ kind: 'instance', key: 'i-1' }, 'h-1', stop('i-1/stop'));
  void ops.send({ kind: 'volume', key: 'v-1' }, 'h-2', { opId: 'v-1/delete', kind: 'volume.delete', volumeId: 'v-1' });
  await new Promise((r) => setImmediate(r));
  assert.equal(transport.sent.length, 2);
  assert.equal(ops.inFlight('i-1/stop'), true);
  assert.equal(ops.get('i-1/stop')?.state, 'sent');
  await ops.close();
  await store.close();

  // Second controller on the same store: it knows where each operation went.
  store = await openStore({ kind: 'sqlite', path });
  transport = new Transport();
  ops = new OpTracker({ db: store.db, transport: () => transport, clock, log, wake: (r) => woken.push(r) });
  await ops.load();
  assert.equal(ops.targetOf('i-1/stop'), 'h-1');
  assert.equal(ops.targetOf('v-1/delete'), 'h-2');
  assert.equal(ops.inFlight('i-1/stop'), false, 'not in flight on any stream of this controller: its owner sends it again');

  assert.equal(ops.onResult('h-2', 'i-1/stop', { ok: true }), false, 'another host cannot answer for h-1');
  assert.equal(ops.answer('i-1/stop'), undefined);
  assert.equal(woken.length, 0);
  assert.equal(ops.onResult('h-1', 'i-1/stop', { ok: false, error: 'no such VM' }), true);
  assert.deepEqual(woken, [{ kind: 'instance', key: 'i-1' }], 'the owner, named by the record, is woken: no id prefix is read');
  assert.deepEqual(ops.answer('i-1/stop'), { ok: false, error: 'no such VM', result: undefined });
  assert.equal(ops.onResult('h-1', 'unknown/op', { ok: true }), false, 'an operation nobody sent');
  await ops.close();
  await store.close();

  // Third: the answer itself was kept; once the owner settles it, it is gone.
  store = await openStore({ kind: 'sqlite', path });
  ops = new OpTracker({ db: store.db, transport: () => transport, clock, log, wake: (r) => woken.push(r) });
  await ops.load();
  assert.equal(ops.get('i-1/stop')?.state, 'answered');
  assert.equal(ops.answer('i-1/stop')?.error, 'no such VM');
  await ops.settle('i-1/stop');
  await ops.forgetOwner({ kind: 'volume', key: 'v-1' });
  const rows = await store.db.selectFrom('operations').selectAll().execute();
  assert.deepEqual(rows, []);
  await ops.close();
  await store.close();
  dir.remove();
});

test('a timeout, a send that fails and a dropped stream wake the owner; progress acknowledges', async () => {
  const store = await openStore({ kind: 'sqlite', path: ':memory:' });
  const clock = new FakeClock();
  const woken: string[] = [];
  const transport = new Transport();
  const ops = new OpTracker({ db: store.db, transport: () => transport, clock, log, wake: (r) => woken.push(r.key) });
  void ops.send(
    { kind: 'backup', key: 'b-1' },
    'h-1',
    { opId: 'b-1/create', kind: 'backup.create', backupId: 'b-1', volumeId: 'v-1', repository: { path: '/r', passphrase: 'x' }, source: 'v', tags: [] },
    { timeoutMs: 30_000 },
  );
  await new Promise((r) => setImmediate(r));
  assert.equal(ops.onProgress('h-1', 'b-1/create')?.state, 'acknowledged');
  assert.equal(ops.onProgress('h-2', 'b-1/create'), undefined, 'progress from another host is not taken');
  clock.advance(30_001);
  assert.equal(ops.get('b-1/create')?.state, 'timed-out');
  assert.equal(ops.inFlight('b-1/create'), false);
  assert.deepEqual(woken, ['b-1']);

  void ops.send({ kind: 'instance', key: 'i-2' }, 'h-1', stop('i-2/stop'));
  await new Promise((r) => setImmediate(r));
  ops.onDisconnect('h-1');
  assert.deepEqual(woken, ['b-1', 'i-2']);

  transport.connected = false;
  await assert.rejects(ops.send({ kind: 'instance', key: 'i-3' }, 'h-1', stop('i-3/stop')), /not connected/);
  assert.deepEqual(woken, ['b-1', 'i-2', 'i-3']);

  // A direct operation's answer goes to its caller only, and its record at once.
  transport.connected = true;
  void ops.send({ kind: 'direct', key: 'h-1' }, 'h-1', { opId: 'restore/1', kind: 'host.principal' });
  await new Promise((r) => setImmediate(r));
  assert.equal(ops.onResult('h-1', 'restore/1', { ok: true }), true);
  assert.deepEqual(woken, ['b-1', 'i-2', 'i-3']);
  await new Promise((r) => setImmediate(r));
  assert.equal(ops.get('restore/1'), undefined);
  await ops.close();
  await store.close();
});
