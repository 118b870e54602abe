/** Plans against `ip -j -d link show` and `bridge -j fdb show` output recorded on these machines (test/fixtures/network). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseFloodList, parseLinks, tapName, type Link } from '../../../src/network/links.ts';
import { chooseUnderlay } from '../../../src/network/linux.ts';
import { chooseBackend } from '../../../src/network/probe.ts';
import { planSegment, planSegmentRemoval, planTap } from '../../../src/network/vxlan-plan.ts';

const fixture = (f: string) => JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'fixtures', 'network', f), 'utf8')) as unknown;
const links = parseLinks(fixture('ip-link-vxlan.json'));
const flood = parseFloodList(fixture('bridge-fdb-vxlan.json'));
const want = { segment: 100, underlay: '10.77.0.11', underlayDev: 'veth0', underlayMtu: 1500 };

test('the recorded state parses: bridge, VXLAN device with its id, local address and lower device, tap', () => {
  const vx = links.find((l) => l.name === 'ovx100');
  assert.deepEqual(vx, {
    name: 'ovx100',
    master: 'obr100',
    mtu: 1450,
    up: true,
    kind: 'vxlan',
    vxlan: { id: 100, local: '10.77.0.11', port: 4789, dev: 'veth0' },
  });
  assert.equal(links.find((l) => l.name === 'obr100')?.kind, 'bridge');
  assert.equal(links.find((l) => l.name === 'ot0123456789ab0')?.kind, 'tun');
  assert.deepEqual(flood, ['10.77.0.12', '10.77.0.13']);
});

test('a segment already as wanted needs no command; running a plan twice is a no-op', () => {
  assert.deepEqual(planSegment(links, flood, { ...want, peers: ['10.77.0.13', '10.77.0.12'] }), []);
  assert.deepEqual(planSegment(links, flood, want), [], 'no peers given: the flood list is left alone');
  assert.deepEqual(planTap(links, 'ot0123456789ab0', 100, 1450), []);
});

test('peers added and removed: only the flood entries that differ change', () => {
  assert.deepEqual(planSegment(links, flood, { ...want, peers: ['10.77.0.12', '10.77.0.14', '10.77.0.11'] }), [
    ['bridge', 'fdb', 'append', '00:00:00:00:00:00', 'dev', 'ovx100', 'dst', '10.77.0.14'],
    ['bridge', 'fdb', 'del', '00:00:00:00:00:00', 'dev', 'ovx100', 'dst', '10.77.0.13'],
  ]);
});

test('from nothing: bridge, VXLAN device on the underlay, MTU less 50 bytes, flood list', () => {
  const bare = links.filter((l) => !['obr100', 'ovx100', 'ot0123456789ab0'].includes(l.name));
  assert.deepEqual(planSegment(bare, [], { ...want, peers: ['10.77.0.12'] }), [
    ['ip', 'link', 'add', 'obr100', 'type', 'bridge'],
    ['ip', 'link', 'add', 'ovx100', 'type', 'vxlan', 'id', '100', 'dstport', '4789', 'local', '10.77.0.11', 'dev', 'veth0', 'nolearning'],
    ['ip', 'link', 'set', 'ovx100', 'master', 'obr100', 'mtu', '1450', 'up'],
    ['ip', 'link', 'set', 'obr100', 'up'],
    ['bridge', 'fdb', 'append', '00:00:00:00:00:00', 'dev', 'ovx100', 'dst', '10.77.0.12'],
  ]);
  assert.deepEqual(planTap(bare, 'ot0123456789ab1', 100, 1450), [
    ['ip', 'tuntap', 'add', 'dev', 'ot0123456789ab1', 'mode', 'tap'],
    ['ip', 'link', 'set', 'ot0123456789ab1', 'master', 'obr100', 'mtu', '1450', 'up'],
  ]);
});

test('a VXLAN device on an old underlay address is made again, and its flood list with it', () => {
  const plan = planSegment(links, flood, { ...want, underlay: '10.77.0.21', peers: ['10.77.0.12'] });
  assert.deepEqual(plan[0], ['ip', 'link', 'del', 'ovx100']);
  assert.deepEqual(plan[1]?.slice(0, 4), ['ip', 'link', 'add', 'ovx100', 'type', 'vxlan'].slice(0, 4));
  assert.ok(plan.some((c) => c.join(' ') === 'bridge fdb append 00:00:00:00:00:00 dev ovx100 dst 10.77.0.12'));
});

test('a name taken by another kind of device is an error, not a silent takeover', () => {
  const clash: Link[] = [{ name: 'obr100', mtu: 1500, up: true, kind: 'veth' }];
  assert.throws(() => planSegment(clash, [], want), /obr100 exists and is not a bridge \(veth\)/);
  assert.throws(() => planTap(links, 'ovx100', 100, 1450), /ovx100 exists and is not a tap device \(vxlan\)/);
});

test('a segment leaves a host only when no guest tap is on its bridge', () => {
  assert.deepEqual(planSegmentRemoval(links, 100), { commands: [], busy: 'bridge obr100 still has ot0123456789ab0' });
  const noTap = links.filter((l) => l.name !== 'ot0123456789ab0');
  assert.deepEqual(planSegmentRemoval(noTap, 100), {
    commands: [
      ['ip', 'link', 'del', 'ovx100'],
      ['ip', 'link', 'del', 'obr100'],
    ],
  });
  assert.deepEqual(planSegmentRemoval(noTap, 101), { commands: [] });
  // The network's own DHCP server port does not hold the segment (the agent stops that server first).
  const dhcpOnly: Link[] = [...noTap, { name: 'odh100', mtu: 1450, up: true, kind: 'veth', master: 'obr100' }];
  assert.equal(planSegmentRemoval(dhcpOnly, 100).busy, undefined);
  assert.match(planSegmentRemoval([...dhcpOnly, { name: 'odh101', mtu: 1450, up: true, kind: 'veth', master: 'obr100' }], 100).busy ?? '', /odh101/);
});

test('device names fit in 15 characters', () => {
  assert.equal(tapName('i-0123456789abcdef', 3), 'ot0123456789ab3');
  assert.ok(tapName('i-ffffffffffffffff', 9).length <= 15);
  assert.ok('obr16777215'.length <= 15);
  assert.throws(() => tapName('i-0123456789abcdef', 10), /out of range/);
});

test("underlay: the asked-for address, else the default route's interface, else the only global address", () => {
  const addrs = fixture('ip-addr.json') as Parameters<typeof chooseUnderlay>[0];
  assert.deepEqual(chooseUnderlay(addrs, undefined), { address: '10.77.0.11', dev: 'veth0', mtu: 1500 });
  assert.deepEqual(chooseUnderlay(addrs, undefined, '10.77.0.11'), { address: '10.77.0.11', dev: 'veth0', mtu: 1500 });
  assert.match((chooseUnderlay(addrs, undefined, '10.9.9.9') as { error: string }).error, /10\.9\.9\.9 is on none of this host's interfaces/);
  const two = [...addrs, { ifname: 'eth9', mtu: 9000, addr_info: [{ family: 'inet', local: '192.0.2.5', scope: 'global' }] }];
  assert.match((chooseUnderlay(two, undefined) as { error: string }).error, /several global IPv4 addresses/);
  assert.deepEqual(chooseUnderlay(two, 'eth9'), { address: '192.0.2.5', dev: 'eth9', mtu: 9000 });
});

test('backend choice: auto takes the first that works; asking for an unavailable one says why', () => {
  const probes = [
    { name: 'vxlan' as const, available: true, reason: 'VXLAN devices work' },
    { name: 'vlan' as const, available: false, reason: '802.1Q VLAN devices: Error: Unknown device type.' },
  ];
  assert.equal(chooseBackend(probes, 'auto').backend, 'vxlan');
  assert.deepEqual(chooseBackend(probes, 'vlan'), { reason: 'backend vlan is unavailable: 802.1Q VLAN devices: Error: Unknown device type.' });
  assert.match(
    chooseBackend(
      probes.map((p) => ({ ...p, available: false })),
      'auto',
    ).reason,
    /no network backend works here: vxlan: .*; vlan: /,
  );
});
