/** The host firewall's rule text from a host's networks and NICs (src/network/firewall-plan.ts), without I/O. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from '../../helpers/fast-check.ts';
import {
  emptyFirewall,
  firewallScript,
  parseFirewallState,
  validateFirewall,
  withNetwork,
  withNics,
  withoutInstance,
  withoutNetwork,
  type FirewallNic,
  type FirewallState,
} from '../../../src/network/firewall-plan.ts';

const a1: FirewallNic = { instanceId: 'i-a1', tap: 'ot0123456789ab0', mac: '0a:58:0a:0a:00:02', address: '10.10.0.2', segment: 100 };
const d1: FirewallNic = { instanceId: 'i-d1', tap: 'ot00000000000d1', mac: '0a:58:0a:28:00:03', address: '10.40.0.3', segment: 102, dhcpServer: '10.40.0.2' };
const host: FirewallState = {
  networks: [
    { segment: 100, peers: ['10.77.0.4', '10.77.0.3'] },
    { segment: 101, peers: [] },
    { segment: 102, peers: ['10.77.0.3'] },
  ],
  nics: [a1, d1],
};
const lines = (s: string) => s.split('\n');
/** From the table's definition (not the empty `table F outrig {}` that precedes its deletion). */
const tableOf = (script: string, family: string) => script.slice(script.indexOf(`\ntable ${family} outrig {\n`));
const chainOf = (script: string, name: string) => {
  const l = lines(script);
  const start = l.indexOf(`chain ${name} {`);
  assert.ok(start >= 0, `chain ${name} is in the script`);
  return l.slice(start + 1, l.indexOf('}', start));
};

test('each tap lets out only its own MAC, ARP naming its own MAC and address, and IPv4 from its own address', () => {
  const s = firewallScript(host, '10.77.0.2');
  assert.deepEqual(chainOf(s, 'nic_ot0123456789ab0'), [
    'ether saddr != 0a:58:0a:0a:00:02 drop',
    'ether type arp arp htype 1 arp ptype ip arp hlen 6 arp plen 4 arp saddr ether 0a:58:0a:0a:00:02 arp saddr ip { 0.0.0.0, 10.10.0.2 } accept',
    'ip saddr 10.10.0.2 udp dport 67 @th,288,48 0x0a580a0a0002 accept',
    'udp dport 67 drop',
    'ip saddr 10.10.0.2 accept',
    'drop',
  ]);
  // IPv6 (neighbour discovery included) matches no accept: the last rule drops it.
  assert.ok(!s.includes('ip6'));
  const pre = chainOf(s, 'prerouting');
  assert.ok(pre.includes('iifname vmap { "ot00000000000d1" : jump nic_ot00000000000d1, "ot0123456789ab0" : jump nic_ot0123456789ab0 }'));
  assert.equal(pre.at(-1), 'iifname "ot*" drop', 'a tap the firewall does not name passes nothing');
});

test("a DHCP NIC may also ask from 0.0.0.0, only its network's server or broadcast, only naming its own MAC", () => {
  const c = chainOf(firewallScript(host, '10.77.0.2'), 'nic_ot00000000000d1');
  assert.ok(c.includes('ip saddr 0.0.0.0 ip daddr { 255.255.255.255, 10.40.0.2 } udp sport 68 udp dport 67 @th,288,48 0x0a580a280003 accept'));
  assert.ok(c.indexOf('udp dport 67 drop') < c.indexOf('ip saddr 10.40.0.3 accept'), 'a DHCP message naming another MAC is dropped even from its own address');
  assert.ok(!chainOf(firewallScript(host), 'nic_ot0123456789ab0').some((r) => r.includes('0.0.0.0 ip daddr')), 'a static NIC never sends from 0.0.0.0');
});

test("nothing from a guest's side goes up to the host; a DHCP server hears only ARP and whole DHCP datagrams", () => {
  const s = firewallScript(host, '10.77.0.2');
  assert.deepEqual(chainOf(tableOf(s, 'bridge'), 'input').slice(1, 4), ['iifname "ot*" drop', 'iifname "ovx*" drop', 'iifname "odh*" drop']);
  assert.deepEqual(chainOf(s, 'forward').slice(2), [
    'oifname "odh*" ether type arp accept',
    'oifname "odh*" ip frag-off & 0x3fff 0 udp dport 67 accept',
    'oifname "odh*" drop',
  ]);
  const inet = tableOf(s, 'inet');
  assert.ok(chainOf(inet, 'input').includes('iifname "obr*" drop'));
  assert.ok(chainOf(inet, 'output').includes('oifname "obr*" drop'));
  const arp = tableOf(s, 'arp');
  assert.deepEqual([chainOf(arp, 'input').at(-1), chainOf(arp, 'output').at(-1)], ['iifname "obr*" drop', 'oifname "obr*" drop']);
});

test("UDP 4789: only on the underlay address, only from the peers of the packet's VNI; sent only for frames a VXLAN device took from the bridge", () => {
  const s = firewallScript(host, '10.77.0.2');
  const inet = tableOf(s, 'inet');
  assert.deepEqual(chainOf(inet, 'vxlan'), [
    'ip daddr != 10.77.0.2 drop',
    '@th,96,24 100 ip saddr { 10.77.0.3, 10.77.0.4 } accept',
    '@th,96,24 102 ip saddr 10.77.0.3 accept',
    'drop',
  ]);
  assert.equal(chainOf(tableOf(s, 'bridge'), 'forward')[1], 'oifname "ovx*" meta mark set meta mark | 0x2000');
  assert.ok(chainOf(inet, 'output').includes('udp dport 4789 meta mark & 0x2000 != 0x2000 drop'));
  const noUnderlay = firewallScript(host);
  assert.equal(
    chainOf(tableOf(noUnderlay, 'inet'), 'vxlan')[0],
    '@th,96,24 100 ip saddr { 10.77.0.3, 10.77.0.4 } accept',
    'no underlay: no address to take it on',
  );
});

test('every table is replaced in one script, and removed when the host carries nothing', () => {
  const s = firewallScript(host, '10.77.0.2');
  for (const f of ['bridge', 'inet', 'arp']) {
    const l = lines(s);
    assert.ok(l.indexOf(`delete table ${f} outrig`) < l.indexOf(`table ${f} outrig {`), `${f}: the old table goes in the same transaction`);
  }
  assert.equal(firewallScript(emptyFirewall()), ['bridge', 'inet', 'arp'].map((f) => `table ${f} outrig {}\ndelete table ${f} outrig\n`).join(''));
});

test('the script depends on the state, not on the order it was built in', () => {
  const shuffled: FirewallState = { networks: [...host.networks].reverse(), nics: [...host.nics].reverse() };
  assert.equal(firewallScript(shuffled, '10.77.0.2'), firewallScript(host, '10.77.0.2'));
});

test('a value that is not what it claims never reaches the rule text', () => {
  const bad: [string, FirewallState, string?][] = [
    ['tap', { networks: [], nics: [{ ...a1, tap: 'ot0123" accept #' }] }],
    ['tap', { networks: [], nics: [{ ...a1, tap: 'eth0' }] }],
    ['MAC', { networks: [], nics: [{ ...a1, mac: '0A:58:0A:0A:00:02' }] }],
    ['multicast', { networks: [], nics: [{ ...a1, mac: '01:00:5e:00:00:01' }] }],
    ['IPv4', { networks: [], nics: [{ ...a1, address: '10.10.0.2 accept; flush ruleset' }] }],
    ['IPv4', { networks: [], nics: [{ ...a1, address: '10.10.0.02' }] }],
    ['IPv4', { networks: [], nics: [{ ...d1, dhcpServer: '10.40.0.256' }] }],
    ['IPv4', { networks: [{ segment: 100, peers: ['10.77.0.3}'] }], nics: [] }],
    ['VNI', { networks: [{ segment: 0, peers: [] }], nics: [] }],
    ['VNI', { networks: [{ segment: 2 ** 24, peers: [] }], nics: [] }],
    ['IPv4', emptyFirewall(), '10.77.0.2; flush ruleset'],
  ];
  for (const [what, s, underlay] of bad)
    assert.throws(
      () => firewallScript(s, underlay),
      new RegExp(
        what === 'multicast'
          ? 'multicast'
          : what === 'VNI'
            ? 'not a VNI'
            : what === 'tap'
              ? 'not a tap name'
              : what === 'MAC'
                ? 'not a MAC'
                : 'not a dotted IPv4',
      ),
      `${what}: ${JSON.stringify(s)}`,
    );
});

test('any text in any field either passes the patterns or is refused: the script never holds a quote, brace or semicolon from it', () => {
  fc.assert(
    fc.property(fc.string(), fc.string(), fc.string(), (tap, mac, address) => {
      const s: FirewallState = { networks: [], nics: [{ ...a1, tap, mac, address }] };
      let script: string;
      try {
        script = firewallScript(s);
      } catch {
        return true;
      }
      return !/["{};]/.test(tap + mac + address) && script.includes(`nic_${tap}`);
    }),
  );
});

test('state changes: networks keep their peers until told, instances bring and take their NICs', () => {
  let s = withNetwork(emptyFirewall(), 100, ['10.77.0.4', '10.77.0.3', '10.77.0.3']);
  assert.deepEqual(s.networks, [{ segment: 100, peers: ['10.77.0.3', '10.77.0.4'] }]);
  s = withNetwork(s, 100);
  assert.deepEqual(s.networks[0]!.peers, ['10.77.0.3', '10.77.0.4'], 'a VM start knows no peers and changes none');
  s = withNetwork(s, 99, []);
  assert.deepEqual(
    s.networks.map((n) => n.segment),
    [99, 100],
  );
  s = withNics(s, 'i-a1', [a1]);
  s = withNics(s, 'i-d1', [d1]);
  s = withNics(s, 'i-a1', [{ ...a1, tap: 'ot0123456789ab1' }]);
  assert.deepEqual(
    s.nics.map((n) => n.tap),
    ['ot00000000000d1', 'ot0123456789ab1'],
  );
  s = withoutInstance(s, 'i-d1');
  s = withoutNetwork(withoutNetwork(s, 99), 100);
  assert.deepEqual(s, { networks: [], nics: [{ ...a1, tap: 'ot0123456789ab1' }] });
  assert.deepEqual(parseFirewallState(JSON.stringify(s)), s);
  assert.throws(() => parseFirewallState('{"networks":[]}'), /not \{networks, nics\}/);
  assert.throws(() => parseFirewallState(JSON.stringify({ networks: [], nics: [{ ...a1, mac: 'x' }] })), /not a MAC/);
  assert.doesNotThrow(() => validateFirewall(host, '10.77.0.2'));
});
