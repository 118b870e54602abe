import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyAnswer, forgetHost, planNetwork, RETRY_MS, type NetworkWorld } from '../../../src/controller/networks/plan.ts';
import type { Network, NetworkOnHost } from '../../../src/model/network.ts';

const now = new Date('2026-11-26T12:00:00Z');
const net = (hosts: NetworkOnHost[] = [], phase: 'active' | 'deleting' = 'active'): Network => ({
  id: 'n-1',
  name: 'net-a',
  labels: {},
  annotations: {},
  spec: { tenant: 'default', subnet: '10.10.0.0/24', segment: 100 },
  status: { phase, conditions: [], hosts },
  createdAt: '',
  updatedAt: '',
  generation: 1,
});
let seq = 0;
const world = (over: Partial<NetworkWorld> = {}): NetworkWorld => ({
  placed: [
    { hostId: 'h1', networks: ['n-1'] },
    { hostId: 'h2', networks: ['n-1', 'n-2'] },
    { hostId: 'h3', networks: ['n-2'] },
  ],
  hosts: [
    { id: 'h1', name: 'one', underlay: '10.0.0.1', connected: true },
    { id: 'h2', name: 'two', underlay: '10.0.0.2', connected: true },
    { id: 'h3', name: 'three', underlay: '10.0.0.3', connected: true },
  ],
  inFlight: () => false,
  now,
  newOpId: (h) => `n-1/${h}/${++seq}`,
  ...over,
});
const entry = (
  hostId: string,
  hostName: string,
  peers: string[],
  state: NetworkOnHost['state'],
  opId = `n-1/${hostId}/old`,
  at = now.toISOString(),
): NetworkOnHost => ({ hostId, hostName, peers, state, opId, at });

test('each host with an instance on the network gets it, flooding to the others only', () => {
  const p = planNetwork(net(), world());
  assert.deepEqual(
    p.sends.map((s) => [s.hostId, s.kind, s.peers]),
    [
      ['h1', 'network.ensure', ['10.0.0.2']],
      ['h2', 'network.ensure', ['10.0.0.1']],
    ],
  );
  assert.deepEqual(
    p.hosts.map((h) => [h.hostName, h.state]),
    [
      ['one', 'sent'],
      ['two', 'sent'],
    ],
  );
  assert.equal(p.remove, false);
});

test('nothing is sent while the hosts have what they need; a lost operation is sent again', () => {
  const settled = [entry('h1', 'one', ['10.0.0.2'], 'ready'), entry('h2', 'two', ['10.0.0.1'], 'ready')];
  assert.deepEqual(planNetwork(net(settled), world()).sends, []);
  const sent = [entry('h1', 'one', ['10.0.0.2'], 'sent'), entry('h2', 'two', ['10.0.0.1'], 'ready')];
  assert.deepEqual(planNetwork(net(sent), world({ inFlight: () => true })).sends, [], 'still in flight');
  assert.deepEqual(
    planNetwork(net(sent), world()).sends.map((s) => s.hostId),
    ['h1'],
    'no longer in flight and unanswered',
  );
});

test('a new host on the network changes every flood list; a host that left has the network taken off', () => {
  const settled = [entry('h1', 'one', ['10.0.0.2'], 'ready'), entry('h2', 'two', ['10.0.0.1'], 'ready')];
  const joined = world({ placed: [...world().placed, { hostId: 'h3', networks: ['n-1'] }] });
  assert.deepEqual(
    planNetwork(net(settled), joined).sends.map((s) => [s.hostId, s.peers]),
    [
      ['h1', ['10.0.0.2', '10.0.0.3']],
      ['h2', ['10.0.0.1', '10.0.0.3']],
      ['h3', ['10.0.0.1', '10.0.0.2']],
    ],
  );
  const left = world({ placed: [{ hostId: 'h1', networks: ['n-1'] }] });
  const p = planNetwork(net(settled), left);
  assert.deepEqual(
    p.sends.map((s) => [s.hostId, s.kind, s.peers]),
    [
      ['h1', 'network.ensure', []],
      ['h2', 'network.remove', []],
    ],
  );
  assert.equal(p.hosts.find((h) => h.hostId === 'h2')?.state, 'removing');
});

test('a failed operation is retried after a pause, at once if the peers change', () => {
  const failed = [entry('h1', 'one', ['10.0.0.2'], 'failed'), entry('h2', 'two', ['10.0.0.1'], 'ready')];
  assert.deepEqual(planNetwork(net(failed), world()).sends, []);
  const later = world({ now: new Date(now.getTime() + RETRY_MS) });
  assert.deepEqual(
    planNetwork(net(failed), later).sends.map((s) => s.hostId),
    ['h1'],
  );
});

test('disconnected hosts wait; hosts without an underlay address are named', () => {
  const w = world({ hosts: world().hosts.map((h) => (h.id === 'h2' ? { ...h, connected: false, underlay: undefined } : h)) });
  const p = planNetwork(net(), w);
  assert.deepEqual(
    p.sends.map((s) => [s.hostId, s.peers]),
    [['h1', []]],
  );
  assert.equal(p.hosts.find((h) => h.hostId === 'h2')?.error, 'host not connected');
  assert.match(p.message ?? '', /no underlay address on two/);
});

test('a network being deleted leaves every host, then may go', () => {
  const settled = [entry('h1', 'one', ['10.0.0.2'], 'ready')];
  const p = planNetwork(net(settled, 'deleting'), world());
  assert.deepEqual(
    p.sends.map((s) => [s.hostId, s.kind]),
    [['h1', 'network.remove']],
  );
  assert.equal(p.remove, false);
  const removed = applyAnswer(p.hosts, p.sends[0]!.opId, true, undefined, now)!;
  assert.deepEqual(removed, []);
  assert.equal(planNetwork(net(removed, 'deleting'), world()).remove, true);
});

test('answers: ensure ok is ready, failure keeps the reason, an unknown op id changes nothing', () => {
  const hosts = [entry('h1', 'one', [], 'sent', 'op-1')];
  assert.equal(applyAnswer(hosts, 'op-1', true, undefined, now)![0]!.state, 'ready');
  const failed = applyAnswer(hosts, 'op-1', false, 'RTNETLINK answers: File exists', now)![0]!;
  assert.deepEqual([failed.state, failed.error], ['failed', 'RTNETLINK answers: File exists']);
  assert.equal(applyAnswer(hosts, 'op-2', true, undefined, now), undefined);
});

// Issue 16, finding 6: on main before the fix (b8fa89d) a deleted host's entry was dropped, so a
// network being deleted went at once and its segment could be given to another network while the
// machine still had ovx100 on it.
test("a deleted host's entry stays, and with it the segment of a network being deleted, until the host confirms or an operator vouches", () => {
  const settled = [entry('h1', 'one', ['10.0.0.2'], 'ready'), entry('h2', 'two', ['10.0.0.1'], 'ready')];
  const h2Deleted = world({ hosts: world().hosts.filter((h) => h.id !== 'h2'), placed: [] });
  const p = planNetwork(net(settled, 'deleting'), h2Deleted);
  assert.deepEqual(
    p.sends.map((s) => [s.hostId, s.kind]),
    [['h1', 'network.remove']],
    'nothing can be sent to a host without a record',
  );
  const two = p.hosts.find((h) => h.hostId === 'h2');
  assert.equal(two?.state, 'ready');
  assert.match(
    two?.error ?? '',
    /host record deleted; segment 100 stays reserved until the host confirms its devices are gone \(it enrolls again\) or an operator forgets it \(outrig network forget-host net-a h2\)/,
  );
  assert.match(p.message ?? '', /deleted host two never confirmed removing segment 100: it stays reserved/);
  // h1 answers; the deleted host still holds the network (and its segment claim) back.
  const afterH1 = applyAnswer(p.hosts, p.sends[0]!.opId, true, undefined, now)!;
  const held = planNetwork(net(afterH1, 'deleting'), h2Deleted);
  assert.equal(held.remove, false);
  assert.deepEqual(held.sends, []);
  // The machine enrolls again under its id: it is told to remove the network, and its answer frees it.
  const back = planNetwork(net(held.hosts, 'deleting'), world({ placed: [] }));
  assert.deepEqual(
    back.sends.map((s) => [s.hostId, s.kind]),
    [['h2', 'network.remove']],
  );
  const confirmed = applyAnswer(back.hosts, back.sends[0]!.opId, true, undefined, now)!;
  assert.equal(planNetwork(net(confirmed, 'deleting'), world({ placed: [] })).remove, true);
  // Or an operator vouches for it.
  const forgotten = forgetHost(net(held.hosts, 'deleting'), 'h2', () => false);
  assert.ok(forgotten.ok);
  assert.equal(planNetwork(net(forgotten.hosts, 'deleting'), h2Deleted).remove, true);
});

test('an entry is forgotten only for a host without a record, by id or name', () => {
  const n = net([entry('h1', 'one', [], 'ready'), entry('h2', 'two', [], 'ready')]);
  const byName = forgetHost(n, 'two', (id) => id === 'h1');
  assert.deepEqual(byName.ok && byName.hosts.map((h) => h.hostId), ['h1']);
  assert.deepEqual(
    forgetHost(n, 'one', (id) => id === 'h1'),
    {
      ok: false,
      status: 409,
      message: 'host one still has a record: it confirms removing segment 100 itself when it connects; delete the host first if the machine is gone for good',
    },
  );
  assert.deepEqual(
    forgetHost(n, 'h9', () => false),
    { ok: false, status: 404, message: "network net-a has no entry for host 'h9'" },
  );
});

test("each host is told where the other hosts' guests' MACs live; a new guest elsewhere sends the table again", () => {
  const withNics = world({
    placed: [
      { hostId: 'h1', networks: ['n-1'], nics: [{ network: 'n-1', mac: '0a:58:0a:0a:00:02' }] },
      {
        hostId: 'h2',
        networks: ['n-1', 'n-2'],
        nics: [
          { network: 'n-1', mac: '0a:58:0a:0a:00:03' },
          { network: 'n-2', mac: '0a:58:0a:14:00:02' },
        ],
      },
      { hostId: 'h3', networks: ['n-2'], nics: [{ network: 'n-2', mac: '0a:58:0a:14:00:03' }] },
    ],
  });
  const p = planNetwork(net(), withNics);
  assert.deepEqual(
    p.sends.map((s) => [s.hostId, s.macs]),
    [
      ['h1', [{ mac: '0a:58:0a:0a:00:03', dst: '10.0.0.2' }]],
      ['h2', [{ mac: '0a:58:0a:0a:00:02', dst: '10.0.0.1' }]],
    ],
  );
  assert.deepEqual(p.hosts[0]!.macs, [{ mac: '0a:58:0a:0a:00:03', dst: '10.0.0.2' }]);
  const settled = p.hosts.map((h) => ({ ...h, state: 'ready' as const }));
  assert.deepEqual(planNetwork(net(settled), withNics).sends, [], 'nothing changed, nothing sent');
  const another = world({ placed: [...withNics.placed, { hostId: 'h2', networks: ['n-1'], nics: [{ network: 'n-1', mac: '0a:58:0a:0a:00:04' }] }] });
  assert.deepEqual(
    planNetwork(net(settled), another).sends.map((s) => [s.hostId, s.macs?.map((m) => m.mac)]),
    [['h1', ['0a:58:0a:0a:00:03', '0a:58:0a:0a:00:04']]],
  );
});
