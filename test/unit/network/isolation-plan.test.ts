/**
 * The host's presence taken off a segment, and the VXLAN table from the controller
 * (src/network/isolation-plan.ts), against output recorded on these machines: a namespace with
 * the layout the agent makes (bridge obr100, VXLAN device ovx100 with learning on, a guest's tap, a
 * DHCP server's port odh100, an IPv4 address put on the bridge by hand) read with
 * `ip -j -d addr show`, `bridge -j fdb show dev ovx100` and /proc/sys (sysctl-isolation.json).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseDeviceStates, parseRemoteMacs, planIsolation, planRemoteMacs } from '../../../src/network/isolation-plan.ts';
import type { Link } from '../../../src/network/links.ts';

const fixture = (f: string) => JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'fixtures', 'network', f), 'utf8')) as unknown;
const sysctl = fixture('sysctl-isolation.json') as Record<string, string>;
const devices = parseDeviceStates(fixture('ip-addr-isolation.json'), (p) => sysctl[p]);
const links: Link[] = [
  { name: 'veth0', mtu: 1500, up: true, kind: 'veth' },
  { name: 'obr100', mtu: 1450, up: true, kind: 'bridge' },
  ...['ovx100', 'ot0123456789ab0', 'odh100'].map((name) => ({ name, mtu: 1450, up: true, master: 'obr100' })),
];

test('the recorded devices parse: IPv6 on everywhere, an IPv4 address on the bridge, the VXLAN device learning', () => {
  assert.deepEqual(
    devices.find((d) => d.name === 'obr100'),
    { name: 'obr100', ipv6: true, arpIgnore: 0, ipv4: ['192.0.2.1'] },
  );
  assert.deepEqual(
    devices.find((d) => d.name === 'ovx100'),
    { name: 'ovx100', ipv6: true, arpIgnore: 0, ipv4: [], learning: true },
  );
  assert.deepEqual(
    parseDeviceStates([{ ifname: 'x' }], () => undefined),
    [{ name: 'x', ipv6: false, ipv4: [] }],
    'a kernel without IPv6 has nothing to turn off',
  );
});

test('the bridge and every port lose IPv6; the bridge answers no ARP and keeps no address; the VXLAN device stops learning', () => {
  const plan = planIsolation(links, devices, 100);
  assert.deepEqual(plan.writes, [
    { path: 'net/ipv6/conf/obr100/disable_ipv6', value: '1' },
    { path: 'net/ipv4/conf/obr100/arp_ignore', value: '8' },
    { path: 'net/ipv6/conf/odh100/disable_ipv6', value: '1' },
    { path: 'net/ipv6/conf/ot0123456789ab0/disable_ipv6', value: '1' },
    { path: 'net/ipv6/conf/ovx100/disable_ipv6', value: '1' },
  ]);
  assert.deepEqual(plan.commands, [
    ['ip', '-4', 'addr', 'flush', 'dev', 'obr100'],
    ['ip', 'link', 'set', 'ovx100', 'type', 'vxlan', 'nolearning'],
  ]);
  // The host's own interfaces are not the segment's: untouched.
  assert.ok(!plan.writes.some((w) => w.path.includes('veth0')));
  assert.deepEqual(planIsolation(links, devices, 101), { writes: [], commands: [] });
});

test('once isolated, planning again changes nothing', () => {
  const done = devices.map((d) => ({
    ...d,
    ipv6: false,
    ipv4: d.name === 'obr100' ? [] : d.ipv4,
    arpIgnore: d.name === 'obr100' ? 8 : d.arpIgnore,
    learning: d.learning && false,
  }));
  assert.deepEqual(planIsolation(links, done, 100), { writes: [], commands: [] });
});

test("per-MAC entries: exactly the other hosts' guests, moved with replace, the flood list and the bridge's own entries left alone", () => {
  const current = parseRemoteMacs(fixture('bridge-fdb-macs.json'));
  assert.deepEqual(current, [{ mac: '0a:58:0a:0a:00:03', dst: '10.77.0.12' }]);
  assert.deepEqual(planRemoteMacs(current, 100, [{ mac: '0a:58:0a:0a:00:03', dst: '10.77.0.12' }]), []);
  assert.deepEqual(
    planRemoteMacs(current, 100, [
      { mac: '0a:58:0a:0a:00:03', dst: '10.77.0.13' },
      { mac: '0a:58:0a:0a:00:04', dst: '10.77.0.12' },
    ]),
    [
      ['bridge', 'fdb', 'replace', '0a:58:0a:0a:00:03', 'dev', 'ovx100', 'dst', '10.77.0.13', 'self', 'permanent'],
      ['bridge', 'fdb', 'replace', '0a:58:0a:0a:00:04', 'dev', 'ovx100', 'dst', '10.77.0.12', 'self', 'permanent'],
    ],
  );
  assert.deepEqual(planRemoteMacs(current, 100, []), [['bridge', 'fdb', 'del', '0a:58:0a:0a:00:03', 'dev', 'ovx100', 'dst', '10.77.0.12', 'self']]);
  assert.throws(() => planRemoteMacs([], 100, [{ mac: 'ff:ff', dst: '10.77.0.12' }]), /not a MAC/);
  assert.throws(() => planRemoteMacs([], 100, [{ mac: '0a:58:0a:0a:00:03', dst: 'self' }]), /not an IPv4/);
});
