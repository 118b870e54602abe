/**
 * Virtual networks across hosts: a controller and two agents, each a separate `outrig` process in
 * its own network namespace on a private LAN (test/helpers/netns.ts), real TCG guests.
 *  - net-a (10.10.0.0/24) has a1 on h1 and a2 on h2: the VXLAN segment joins their bridges, and
 *    each guest reaches the other by ARP and ICMP.
 *  - net-b (10.20.0.0/24) has b1 on h2, the same host as a2: it reaches neither a1 nor a2, not even
 *    by ARP (its frames never meet theirs), while they keep reaching each other.
 *  - net-d (10.40.0.0/24, DHCP on) has d1 on h1 and d2 on h2, which learn their addresses by DHCP
 *    from their own host's dnsmasq.
 * The guests run a reachability probe (outrig.probe on their kernel command line) and print each
 * round on their console, which the test reads through the CLI.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import type { Host } from '../../src/model/host.ts';
import type { Instance } from '../../src/model/instance.ts';
import type { Network } from '../../src/model/network.ts';
import { assertServersApart, dhcpServers, netnsNames } from '../helpers/dhcp.ts';
import { createLan, type Lan } from '../helpers/netns.ts';
import { NetnsCluster, probeRounds } from '../helpers/netns-cluster.ts';
import { tempDir } from '../helpers/tmp.ts';
import { waitUntil } from '../helpers/wait.ts';

type NetworkView = Network & { addresses: { used: number; free: number } };

function linksIn(ns: string): string[] {
  return (JSON.parse(execFileSync('ip', ['-n', ns, '-j', 'link', 'show'], { encoding: 'utf8' })) as { ifname: string }[]).map((l) => l.ifname);
}

describe('virtual networks across hosts (network namespaces, VXLAN, real guests)', () => {
  const dir = tempDir('outrig-net-');
  let lan: Lan;
  let c: NetnsCluster;
  const cli = (...args: string[]) => c.cli(...args);
  const ok = (...args: string[]) => c.ok(...args);
  const json = <T>(...args: string[]) => c.json<T>(...args);
  const consoleOf = (name: string) => ok('instance', 'console', name);

  before(async () => {
    lan = createLan(['ctl', 'h1', 'h2']);
    c = new NetnsCluster(lan, dir.path);
    await c.startHosts(['h1', 'h2']);
  });

  after(async () => {
    await c?.stop();
    dir.remove();
  });

  test('hosts report the backend their kernel allows and their underlay address', async () => {
    const h1 = await json<Host>('host', 'show', 'h1');
    const net = h1.status.inventory?.network;
    assert.equal(net?.backend, 'vxlan');
    assert.equal(net?.underlay?.address, lan.node('h1').addr);
    assert.equal(net?.backends.find((b) => b.name === 'vxlan')?.available, true);
    // These machines' kernel has neither 802.1Q devices nor VLAN filtering (shared/research/vm-runtime.md).
    const vlan = net?.backends.find((b) => b.name === 'vlan');
    assert.ok(vlan, 'the vlan backend was probed');
    if (!vlan.available) assert.match(vlan.reason, /802\.1Q|VLAN-filtering/);
    assert.match(await ok('host', 'show', 'h1'), /backend: vxlan/);
  });

  test('guests on one network reach each other across hosts; a guest on another network reaches neither', async () => {
    await ok('network', 'create', 'net-a', '--subnet', '10.10.0.0/24', '--gateway', '10.10.0.1');
    await ok('network', 'create', 'net-b', '--subnet', '10.20.0.0/24', '--gateway', '10.20.0.1');
    const create = (name: string, host: string, network: string, probe: string) =>
      c.createOn<Instance>(host, name, ['--image', 'test', '--network', network, '--kernel-args', `outrig.probe=${probe}`, '--timeout', '180']);
    // Addresses are handed out lowest first (the gateway excluded): a1 .2, a2 .3, b1 .2.
    const a1 = await create('a1', 'h1', 'net-a', '10.10.0.3');
    const a2 = await create('a2', 'h2', 'net-a', '10.10.0.2');
    const b1 = await create('b1', 'h2', 'net-b', '10.10.0.2+10.10.0.3');
    assert.equal(a1.status.hostName, 'h1');
    assert.equal(a2.status.hostName, 'h2');
    assert.equal(b1.status.hostName, 'h2');
    assert.deepEqual(
      [a1, a2, b1].map((i) => i.spec.nics?.[0]?.address),
      ['10.10.0.2', '10.10.0.3', '10.20.0.2'],
    );
    assert.equal(a1.spec.nics?.[0]?.mac, '0a:58:0a:0a:00:02');

    // Both directions on net-a, across hosts.
    const upFrom = async (name: string, target: string) =>
      waitUntil(
        `${name} to reach ${target}`,
        async () => probeRounds(await consoleOf(name)).find((r) => r.targets[target]?.arp && r.targets[target]?.icmp),
        180_000,
        1000,
      );
    await upFrom('a1', '10.10.0.3');
    const firstBoth = await upFrom('a2', '10.10.0.2');
    // How the NIC is attached, and why not a virtual function.
    const shown = await json<Instance>('instance', 'show', 'a1');
    assert.deepEqual(
      shown.status.network.nics?.map((n) => [n.mode, n.mac]),
      [['tap', '0a:58:0a:0a:00:02']],
    );
    assert.match(shown.status.network.nics![0]!.reason, /carried by VXLAN on this host/);
    assert.match(await consoleOf('a1'), /OUTRIG-NIC eth1 mac=0a:58:0a:0a:00:02 address=10\.10\.0\.2\/24 gateway=10\.10\.0\.1 mtu=1450/);

    // b1, on h2 beside a2, keeps probing both: five rounds after a2 first reached a1, and none answers.
    const bRoundAtStart = Math.max(0, ...probeRounds(await consoleOf('b1')).map((r) => r.round));
    const rounds = await waitUntil(
      'five more probe rounds on b1',
      async () => {
        const rs = probeRounds(await consoleOf('b1')).filter((r) => r.round > bRoundAtStart);
        return rs.length >= 5 ? rs : undefined;
      },
      120_000,
      1000,
    );
    for (const r of rounds) {
      for (const t of ['10.10.0.2', '10.10.0.3']) assert.deepEqual(r.targets[t], { arp: false, icmp: false }, `b1 round ${r.round} reached ${t}`);
    }
    // Meanwhile a1 and a2 still reached each other (the isolation is not an outage).
    const a2Rounds = probeRounds(await consoleOf('a2')).filter((r) => r.round > firstBoth.round);
    assert.ok(a2Rounds.length >= 3 && a2Rounds.slice(-3).every((r) => r.targets['10.10.0.2']?.icmp), 'a2 kept reaching a1');

    // The network's record: both hosts carry it, each flooding to the other.
    const netA = await waitUntil(
      'net-a ready on both hosts',
      async () => {
        const n = await json<NetworkView>('network', 'show', 'net-a');
        return n.status.hosts.length === 2 && n.status.hosts.every((h) => h.state === 'ready') ? n : undefined;
      },
      30_000,
      500,
    );
    assert.deepEqual(
      netA.status.hosts.map((h) => [h.hostName, h.peers]),
      [
        ['h1', [lan.node('h2').addr]],
        ['h2', [lan.node('h1').addr]],
      ],
    );
    assert.deepEqual(netA.addresses.used, 2);
    const netB = await json<NetworkView>('network', 'show', 'net-b');
    assert.deepEqual(
      netB.status.hosts.map((h) => [h.hostName, h.peers]),
      [['h2', []]],
    );
    assert.ok(linksIn(lan.node('h1').ns).includes(`obr${netA.spec.segment}`));
    assert.ok(!linksIn(lan.node('h1').ns).includes(`obr${netB.spec.segment}`), 'net-b is not on h1: no instance of it there');
  });

  test('a network with instances cannot be deleted; once they are gone, it leaves every host', async () => {
    const refused = await cli('network', 'delete', 'net-a');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /net-a has instances on it: a1, a2/);
    const netA = await json<NetworkView>('network', 'show', 'net-a');
    assert.equal(netA.status.phase, 'active');
    for (const i of ['a1', 'a2', 'b1']) await ok('instance', 'delete', i, '--force', '--timeout', '120');
    // Taps go with their VMs, and the addresses are free again.
    await waitUntil('taps gone', () => ![...linksIn(lan.node('h1').ns), ...linksIn(lan.node('h2').ns)].some((l) => /^ot[0-9a-f]{12}\d$/.test(l)), 30_000, 500);
    assert.equal((await json<NetworkView>('network', 'show', 'net-a')).addresses.used, 0);
    await ok('network', 'delete', 'net-a');
    await waitUntil('net-a gone', async () => !(await json<NetworkView[]>('network', 'list')).some((n) => n.name === 'net-a'), 30_000, 500);
    for (const h of ['h1', 'h2']) {
      const links = linksIn(lan.node(h).ns);
      assert.ok(
        !links.includes(`obr${netA.spec.segment}`) && !links.includes(`ovx${netA.spec.segment}`),
        `net-a's bridge and VXLAN device left ${h}: ${links.join(' ')}`,
      );
    }
    // Its segment is free for a new network.
    const again = await json<Network>('network', 'create', 'net-c', '--subnet', '10.30.0.0/24', '--segment', String(netA.spec.segment));
    assert.equal(again.spec.segment, netA.spec.segment);
  });

  test("with DHCP on, each guest gets its address from its own host's server, which no other host hears", async () => {
    const net = await json<Network>('network', 'create', 'net-d', '--subnet', '10.40.0.0/24', '--gateway', '10.40.0.1', '--dhcp');
    assert.deepEqual(net.spec.dhcp, { server: '10.40.0.2' }, 'the lowest free address, the gateway kept');
    const create = (name: string, host: string, probe: string) =>
      c.createOn<Instance>(host, name, ['--image', 'test', '--network', 'net-d', '--kernel-args', `outrig.probe=${probe}`, '--timeout', '180']);
    const d1 = await create('d1', 'h1', '10.40.0.4');
    const d2 = await create('d2', 'h2', '10.40.0.3');
    assert.deepEqual(
      [d1, d2].map((i) => [i.status.hostName, i.spec.nics?.[0]?.address]),
      [
        ['h1', '10.40.0.3'],
        ['h2', '10.40.0.4'],
      ],
    );
    // The kernel command line says only "dhcp": the address the guest shows came from the server.
    for (const [name, i] of [
      ['d1', d1],
      ['d2', d2],
    ] as const) {
      const nic = i.spec.nics![0]!;
      const line = await waitUntil(`${name}'s NIC line`, async () => /^OUTRIG-NIC .*$/m.exec(await consoleOf(name))?.[0], 180_000, 1000);
      assert.equal(line, `OUTRIG-NIC eth1 mac=${nic.mac} address=${nic.address}/24 gateway=10.40.0.1 mtu=1450 config=dhcp-from-10.40.0.2`);
    }
    await waitUntil(
      'd1 to reach d2',
      async () => probeRounds(await consoleOf('d1')).find((r) => r.targets['10.40.0.4']?.arp && r.targets['10.40.0.4']?.icmp),
      180_000,
      1000,
    );
    await waitUntil(
      'd2 to reach d1',
      async () => probeRounds(await consoleOf('d2')).find((r) => r.targets['10.40.0.3']?.arp && r.targets['10.40.0.3']?.icmp),
      180_000,
      1000,
    );
    // One server per host; each heard only its own guest (without the isolated ports, h2's server
    // would have logged d1's requests as "no address available").
    assertServersApart(net.spec.segment, [d1, d2]);
    assert.equal((await json<NetworkView>('network', 'show', 'net-d')).addresses.used, 3, 'the server address and two guests');
    // The servers go with the last guest on their host; then the network can go.
    for (const i of ['d1', 'd2']) await ok('instance', 'delete', i, '--force', '--timeout', '120');
    await waitUntil(
      'the DHCP servers gone',
      () => dhcpServers(net.spec.segment).length === 0 && !netnsNames().some((n) => n.startsWith(`outrig-dhcp-${net.spec.segment}-`)),
      30_000,
      500,
    );
    await ok('network', 'delete', 'net-d');
    await waitUntil('net-d gone', async () => !(await json<NetworkView[]>('network', 'list')).some((n) => n.name === 'net-d'), 30_000, 500);
  });
});
