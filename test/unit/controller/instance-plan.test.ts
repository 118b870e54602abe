import assert from 'node:assert/strict';
import { test } from 'node:test';
import { opIds, planInstance, type PlanContext } from '../../../src/controller/instances/plan.ts';
import { getCondition } from '../../../src/model/common.ts';
import type { VmReport } from '../../../src/model/agent-protocol.ts';
import type { Instance, InstancePhase, LastOp } from '../../../src/model/instance.ts';

const now = new Date('2026-01-01T00:00:00Z');

function inst(
  over: { phase?: InstancePhase; powerState?: 'running' | 'stopped'; generation?: number; restartSeq?: number; lastOp?: LastOp; hostId?: string | null } = {},
): Instance {
  return {
    id: 'i-1',
    name: 'web1',
    labels: {},
    annotations: {},
    spec: {
      image: 'test',
      vcpus: 1,
      memoryMiB: 256,
      tenant: 'default',
      powerState: over.powerState ?? 'running',
      forwardPorts: [80],
      restartSeq: over.restartSeq ?? 0,
    },
    status: {
      phase: over.phase ?? 'scheduled',
      conditions: [],
      hostId: over.hostId === null ? undefined : (over.hostId ?? 'h-1'),
      network: { forwards: [] },
      observedGeneration: 0,
      lastOp: over.lastOp,
    },
    createdAt: now.toISOString(),
    updatedAt: now.toISOString(),
    generation: over.generation ?? 1,
  };
}

const vm = (state: VmReport['state'], over: Partial<VmReport> = {}): VmReport => ({
  instanceId: 'i-1',
  state,
  accel: 'tcg',
  forwards: [{ guestPort: 80, hostAddress: '127.0.0.1', hostPort: 40000 }],
  generation: 1,
  restartSeq: 0,
  disks: [],
  ...over,
});

const ctx = (over: Partial<PlanContext> = {}): PlanContext => ({
  hostExists: true,
  hostName: 'h1',
  hostConnected: true,
  lastOpInFlight: false,
  now,
  desiredDisks: [],
  ...over,
});
const op = (opId: string, kind: string, state: LastOp['state'], error?: string): LastOp => ({ opId, kind, state, error, at: now.toISOString() });

test('a placed instance with no VM gets a start operation', () => {
  const i = inst();
  const p = planInstance(i, ctx());
  assert.deepEqual(p.send, { opId: opIds(i).start, kind: 'vm.start' });
  assert.equal(p.status.phase, 'starting');
  assert.equal(p.status.lastOp?.state, 'sent');
});

test('while an operation is in flight nothing else is sent', () => {
  const i = inst({ lastOp: op('i-1/g1/start', 'vm.start', 'sent') });
  const p = planInstance(i, ctx({ lastOpInFlight: true }));
  assert.equal(p.send, undefined);
  assert.equal(p.status.phase, 'starting');
});

test('an operation sent before a controller restart is sent again under the same id', () => {
  const i = inst({ lastOp: op('i-1/g1/start', 'vm.start', 'sent') });
  const p = planInstance(i, ctx({ lastOpInFlight: false }));
  assert.deepEqual(p.send, { opId: 'i-1/g1/start', kind: 'vm.start' });
});

test('a running VM makes the instance running, mirrors forwards and readiness', () => {
  const i = inst({ lastOp: op('i-1/g1/start', 'vm.start', 'succeeded') });
  const p = planInstance(i, ctx({ vm: vm('running', { readyAt: now.toISOString(), bootedAt: now.toISOString() }) }));
  assert.equal(p.send, undefined);
  assert.equal(p.status.phase, 'running');
  assert.equal(p.status.observedGeneration, 1);
  assert.equal(p.status.network.forwards[0]?.hostPort, 40000);
  assert.equal(getCondition(p.status.conditions, 'GuestReady')?.status, 'True');
});

test("a failed start is shown as failed and not retried behind the user's back", () => {
  const i = inst({ lastOp: op('i-1/g1/start', 'vm.start', 'failed', 'qemu exited with code 1') });
  const p = planInstance(i, ctx());
  assert.equal(p.send, undefined);
  assert.equal(p.status.phase, 'failed');
  assert.match(p.status.message ?? '', /qemu exited with code 1/);
});

test('a VM that powered itself off is stopped; one that died is failed; neither is restarted', () => {
  const i = inst({ phase: 'running', lastOp: op('i-1/g1/start', 'vm.start', 'succeeded') });
  const off = planInstance(i, ctx({ vm: vm('stopped', { lastExit: { at: now.toISOString(), reason: 'guest-shutdown' } }) }));
  assert.equal(off.status.phase, 'stopped');
  assert.equal(off.send, undefined);
  const died = planInstance(i, ctx({ vm: vm('stopped', { lastExit: { at: now.toISOString(), reason: 'process-exited' } }) }));
  assert.equal(died.status.phase, 'failed');
  assert.equal(died.send, undefined);
});

test('a user start after that is a new generation and so a new operation', () => {
  const i = inst({ phase: 'stopped', generation: 2, lastOp: op('i-1/g1/start', 'vm.start', 'succeeded') });
  const p = planInstance(i, ctx({ vm: vm('stopped') }));
  assert.deepEqual(p.send, { opId: 'i-1/g2/start', kind: 'vm.start' });
});

test('stopping: a running VM gets a stop; a stopped one makes the instance stopped', () => {
  const i = inst({ powerState: 'stopped', generation: 2, phase: 'running', lastOp: op('i-1/g1/start', 'vm.start', 'succeeded') });
  const p = planInstance(i, ctx({ vm: vm('running') }));
  assert.deepEqual(p.send, { opId: 'i-1/g2/stop', kind: 'vm.stop' });
  assert.equal(p.status.phase, 'stopping');
  const done = planInstance({ ...i, status: { ...i.status, lastOp: op('i-1/g2/stop', 'vm.stop', 'succeeded') } }, ctx({ vm: vm('stopped') }));
  assert.equal(done.status.phase, 'stopped');
  assert.equal(done.send, undefined);
});

test('a restart request on a running VM sends one restart operation', () => {
  const i = inst({ restartSeq: 1, generation: 2, phase: 'running', lastOp: op('i-1/g1/start', 'vm.start', 'succeeded') });
  const p = planInstance(i, ctx({ vm: vm('running', { restartSeq: 0 }) }));
  assert.deepEqual(p.send, { opId: 'i-1/r1/restart', kind: 'vm.restart' });
  const after = planInstance(
    { ...i, status: { ...i.status, lastOp: op('i-1/r1/restart', 'vm.restart', 'succeeded') } },
    ctx({ vm: vm('running', { restartSeq: 1 }) }),
  );
  assert.equal(after.send, undefined);
  assert.equal(after.status.phase, 'running');
});

test('while the host is disconnected the phase is kept and the condition says why', () => {
  const i = inst({ phase: 'running' });
  const p = planInstance(i, ctx({ hostConnected: false }));
  assert.equal(p.status.phase, 'running');
  assert.equal(p.send, undefined);
  assert.equal(getCondition(p.status.conditions, 'HostConnected')?.status, 'False');
});

test('deleting: unplaced rows go at once; placed ones after the agent removed the VM', () => {
  assert.equal(planInstance(inst({ phase: 'deleting', hostId: null }), ctx()).remove, true);
  const i = inst({ phase: 'deleting' });
  const p = planInstance(i, ctx({ vm: vm('running') }));
  assert.deepEqual(p.send, { opId: 'i-1/delete', kind: 'vm.delete' });
  assert.equal(planInstance({ ...i, status: { ...i.status, lastOp: op('i-1/delete', 'vm.delete', 'succeeded') } }, ctx()).remove, true);
  const away = planInstance(i, ctx({ hostConnected: false }));
  assert.equal(away.remove, undefined);
  assert.match(away.status.message ?? '', /waiting for host h1/);
  assert.equal(planInstance(i, ctx({ hostExists: false })).remove, true, 'a host that no longer exists holds nothing to remove');
});

test('a volume the guest unplugged itself is not plugged back; a newer attach request (tag) is', () => {
  const i = inst({ lastOp: op('i-1/g1/start', 'vm.start', 'succeeded') });
  const desiredDisks = [{ volumeId: 'v-1', boot: false, tag: 'g2' }];
  const released = vm('running', { released: [{ volumeId: 'v-1', tag: 'g2' }] });
  const p = planInstance(i, ctx({ vm: released, desiredDisks }));
  assert.equal(p.send, undefined, 'the guest released it: not plugged behind its back');
  assert.equal(p.status.phase, 'running');
  const again = planInstance(i, ctx({ vm: released, desiredDisks: [{ volumeId: 'v-1', boot: false, tag: 'g4' }] }));
  assert.deepEqual(again.send, { opId: 'i-1/attach/v-1/g4', kind: 'vm.attach', volumeId: 'v-1' });
});

// Issue 18, finding 6: a restart just after a start took 31 s showing only "starting… running"
// (the guest ignored the power button until the agent forced it off). The status now says the VM
// is stopping, how and until when; stop/restart --force (spec.forceOff) power it off at once, also
// while a stop is already waiting for the guest.
const stopping = { method: 'acpi' as const, since: now.toISOString(), forceAt: new Date(now.getTime() + 30_000).toISOString() };

test('while the VM stops, the status says how and when it is forced off; once stopped that goes', () => {
  const i = { ...inst({ powerState: 'stopped', generation: 2, lastOp: op('i-1/g2/stop', 'vm.stop', 'sent') }) };
  const p = planInstance(i, ctx({ lastOpInFlight: true, vm: vm('stopping', { stopping }) }));
  assert.equal(p.status.phase, 'stopping');
  assert.deepEqual(p.status.stopping, stopping);
  const after = planInstance({ ...i, status: p.status }, ctx({ vm: vm('stopped') }));
  assert.equal(after.status.stopping, undefined);
});

test('a restart under way shows stopping (not starting) while its stop waits for the guest', () => {
  const i = inst({ restartSeq: 1, lastOp: op('i-1/r1/restart', 'vm.restart', 'sent') });
  const p = planInstance(i, ctx({ lastOpInFlight: true, vm: vm('stopping', { stopping }) }));
  assert.equal(p.status.phase, 'stopping');
  assert.equal(p.send, undefined);
});

test('forceOff makes the stop and restart operations forced', () => {
  const stop = inst({ powerState: 'stopped', generation: 2 });
  stop.spec.forceOff = true;
  assert.deepEqual(planInstance(stop, ctx({ vm: vm('running') })).send, { opId: 'i-1/g2/stop', kind: 'vm.stop', force: true });
  const restart = inst({ restartSeq: 1, lastOp: op('i-1/g1/start', 'vm.start', 'succeeded') });
  restart.spec.forceOff = true;
  assert.deepEqual(planInstance(restart, ctx({ vm: vm('running') })).send, { opId: 'i-1/r1/restart', kind: 'vm.restart', force: true });
  const plain = inst({ powerState: 'stopped', generation: 2 });
  assert.deepEqual(planInstance(plain, ctx({ vm: vm('running') })).send, { opId: 'i-1/g2/stop', kind: 'vm.stop' });
});

test('a forced stop or restart asked while a stop waits for the guest is sent at once; a plain one waits', () => {
  const waitingStop = op('i-1/g2/stop', 'vm.stop', 'sent');
  const forced = inst({ powerState: 'stopped', generation: 3, lastOp: waitingStop });
  forced.spec.forceOff = true;
  const p = planInstance(forced, ctx({ lastOpInFlight: true, vm: vm('stopping', { stopping }) }));
  assert.deepEqual(p.send, { opId: 'i-1/g3/stop', kind: 'vm.stop', force: true });
  assert.equal(p.status.phase, 'stopping');
  // Sent already: not again while it is in flight.
  assert.equal(planInstance({ ...forced, status: p.status }, ctx({ lastOpInFlight: true, vm: vm('stopping', { stopping }) })).send, undefined);
  const plain = inst({ powerState: 'stopped', generation: 3, lastOp: waitingStop });
  assert.equal(planInstance(plain, ctx({ lastOpInFlight: true, vm: vm('stopping', { stopping }) })).send, undefined);
  const restart = inst({ restartSeq: 2, lastOp: op('i-1/r1/restart', 'vm.restart', 'sent') });
  restart.spec.forceOff = true;
  assert.deepEqual(planInstance(restart, ctx({ lastOpInFlight: true, vm: vm('stopping', { stopping, restartSeq: 0 }) })).send, {
    opId: 'i-1/r2/restart',
    kind: 'vm.restart',
    force: true,
  });
});
