import assert from 'node:assert/strict';
import { test } from 'node:test';
import { netmask } from '../../../src/network/cidr.ts';
import { dhcpNames, dhcpTag, dnsmasqArgs, hostsFile, parseLeases, withLeases } from '../../../src/network/dhcp-plan.ts';

const files = { hosts: '/run/x/hosts', pid: '/run/x/pid', log: '/run/x/log' };
const wanted = {
  segment: 16777215,
  tag: dhcpTag('/var/lib/outrig'),
  server: '10.40.0.2',
  subnet: { base: 0x0a280000, prefix: 24 },
  gateway: '10.40.0.1',
  mtu: 1450,
};

test('names: interface names within 15 characters, namespaces apart per agent', () => {
  const n = dhcpNames(16777215, wanted.tag);
  assert.ok(n.port.length <= 15 && n.inner.length <= 15, `${n.port} ${n.inner}`);
  assert.equal(n.port, 'odh16777215');
  assert.notEqual(dhcpNames(100, dhcpTag('/a')).netns, dhcpNames(100, dhcpTag('/b')).netns);
  assert.equal(dhcpTag('/a'), dhcpTag('/a'));
  assert.match(wanted.tag, /^[0-9a-f]{8}$/);
});

test('dnsmasq serves DHCP only, static leases only, unprivileged, with the network gateway and MTU', () => {
  const a = dnsmasqArgs(wanted, files);
  assert.ok(a.includes('--port=0'), 'no DNS');
  assert.ok(a.includes('--dhcp-range=10.40.0.0,static,255.255.255.0,12h'), a.join(' '));
  assert.ok(a.includes('--dhcp-hostsfile=/run/x/hosts'));
  assert.ok(a.includes('--dhcp-option=option:router,10.40.0.1'));
  assert.ok(a.includes('--dhcp-option=option:mtu,1450'));
  assert.ok(a.includes('--user=nobody'));
  assert.ok(a.includes('--interface=dhcp0') && a.includes('--bind-interfaces'));
  // No gateway: an empty router option, so guests set no default route.
  const none = dnsmasqArgs({ ...wanted, gateway: undefined }, files);
  assert.ok(none.includes('--dhcp-option=option:router') && !none.some((x) => x.startsWith('--dhcp-option=option:router,')));
});

test('netmasks', () => {
  assert.equal(netmask(24), '255.255.255.0');
  assert.equal(netmask(29), '255.255.255.248');
  assert.equal(netmask(8), '255.0.0.0');
  assert.equal(netmask(32), '255.255.255.255');
});

test("leases: one instance's are replaced or removed, others kept; the hosts file is stable", () => {
  const a = { instanceId: 'i-a', mac: '0a:58:0a:28:00:03', address: '10.40.0.3' };
  const b = { instanceId: 'i-b', mac: '0a:58:0a:28:00:04', address: '10.40.0.4' };
  let leases = withLeases([], 'i-b', [b]);
  leases = withLeases(leases, 'i-a', [a]);
  assert.equal(hostsFile(leases), '0a:58:0a:28:00:03,10.40.0.3\n0a:58:0a:28:00:04,10.40.0.4\n');
  assert.equal(hostsFile(withLeases(leases, 'i-a', [a])), hostsFile(leases), 'ensuring again changes nothing');
  assert.deepEqual(withLeases(leases, 'i-b', []), [a]);
  assert.deepEqual(parseLeases(JSON.stringify(leases)), leases);
  assert.throws(() => parseLeases('[{"mac":1}]'), /not a list/);
});
