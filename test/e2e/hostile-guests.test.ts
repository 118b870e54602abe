/**
 * Hostile guests against the host firewall (issue 16, findings 1, 3 and 4): a controller and two
 * agents in network namespaces (test/helpers/netns-cluster.ts). Each guest is an instance the
 * agent started (so it has its tap, its address, its firewall rules) whose QEMU was then stopped,
 * and a namespace took its place behind the tap (test/helpers/standin-guest.ts), sending what a
 * guest's kernel sends and any raw frame it likes.
 *  - tenant acme, net-a 10.10.0.0/24 with DHCP: a1 and a3 on h1, a2 on h2;
 *  - tenant other, net-b 10.10.0.0/24 (tenants may repeat subnets): b1 on h1, b2 on h2;
 *  - and a4, a real TCG guest of acme on h2, root in its own kernel, driven through its test hook.
 * Every attack below succeeded on main before the firewall (cdd58d4, whose tenant-network paths
 * are b8fa89d's), checked by running this file against it: the VXLAN injections reached a2 from
 * all four sources, b1 connected to a
 * host service over the bridge's IPv6 link-local address and got ARP answers for h1's underlay
 * address, its IPv4 datagram reached the host service and its SYN a listening socket, a2 received
 * every spoofed frame and ARP claim, a3 was offered a1's address both ways, and a1's static lease
 * was disabled by a3's DECLINE; the agent-restart flood passed spoofed frames throughout; a2 got
 * a4's pings both from a1's address and from a1's MAC. (Tenant B's real guests play the
 * management-NIC attacks in management-nic.test.ts and the dedicated-port ones in
 * dedicated-cluster.test.ts.)
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import type { Instance } from '../../src/model/instance.ts';
import type { InstanceNic, Network } from '../../src/model/network.ts';
import { dhcpServers } from '../helpers/dhcp.ts';
import { arpFrame, BROADCAST, dhcpFrame, linkLocalOf, parseArp, parseDhcpReply, udp6Frame, udpFrame, vxlanPayload } from '../helpers/frames.ts';
import { createLan, type Lan } from '../helpers/netns.ts';
import { NetnsCluster } from '../helpers/netns-cluster.ts';
import { cleanupStandIns, inNs, runTool, StandIn, tool } from '../helpers/standin-guest.ts';
import { tempDir } from '../helpers/tmp.ts';
import { waitUntil } from '../helpers/wait.ts';
import { TEST_HOOK_ARG } from '../helpers/guest-hook.ts';

interface Guest {
  name: string;
  nic: InstanceNic;
  tap: string;
  g: StandIn;
}

const hex = (s: string) => Buffer.from(s).toString('hex');
const attacks = (g: Guest) => g.g.sniffer.markers().filter((m) => m.startsWith('OUTRIG-ATTACK'));

/** A namespace's TcpExt ListenDrops: SYNs that reached a listening socket and were dropped (here: no route back). */
function listenDrops(netstat: string): number {
  const [names, values] = netstat
    .split('\n')
    .filter((l) => l.startsWith('TcpExt:'))
    .map((l) => l.split(' '));
  return Number(values![names!.indexOf('ListenDrops')]);
}

/** The test guest's hook (test/helpers/guest-hook.ts) on a forwarded port of a host namespace's loopback. */
async function hookIn(ns: string, port: number, script: string): Promise<string> {
  const code =
    'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=sys.stdin.buffer.read()), timeout=60).read().decode())';
  return new Promise((resolve, reject) => {
    const p = execFile('ip', ['netns', 'exec', ns, 'python3', '-c', code, `http://127.0.0.1:${port}/cgi-bin/run`], (e, out) => (e ? reject(e) : resolve(out)));
    p.stdin!.end(script);
  });
}

const macOf = (ns: string, dev: string) => (JSON.parse(inNs(ns, 'ip', '-j', 'link', 'show', dev)) as { address: string }[])[0]!.address;

describe('hostile guests against the host firewall (network namespaces standing in for guests, two hosts)', () => {
  const dir = tempDir('outrig-hostile-');
  let lan: Lan;
  let c: NetnsCluster;
  let netA: Network;
  let netB: Network;
  const guests = {} as Record<'a1' | 'a2' | 'a3' | 'b1' | 'b2', Guest>;
  const ok = (...args: string[]) => c.ok(...args);
  const json = <T>(...args: string[]) => c.json<T>(...args);
  const hostNs = (h: string) => lan.node(h).ns;
  const tables = (h: string) => inNs(hostNs(h), 'nft', 'list', 'tables');

  /** An instance started on `host` and stopped again, its tap handed to a namespace. */
  const guest = async (name: string, host: 'h1' | 'h2', tenant: string, network: string): Promise<Guest> => {
    const i = await c.createOn<Instance>(host, name, ['--image', 'test', '--tenant', tenant, '--network', network, '--timeout', '180']);
    assert.equal(i.status.hostName, host);
    await ok('instance', 'stop', name, '--timeout', '120');
    const tap = (await json<Instance>('instance', 'show', name)).status.network.nics![0]!.tap!;
    const nic = i.spec.nics![0]!;
    return { name, nic, tap, g: await StandIn.attach(hostNs(host), tap, `${hostNs(host)}-g${name}`, nic.mac, 1450) };
  };

  before(async () => {
    lan = createLan(['ctl', 'h1', 'h2']);
    c = new NetnsCluster(lan, dir.path);
    await c.startHosts(['h1', 'h2']);
    await ok('tenant', 'create', 'acme');
    await ok('tenant', 'create', 'other');
    netA = await json<Network>('network', 'create', 'net-a', '--tenant', 'acme', '--subnet', '10.10.0.0/24', '--gateway', '10.10.0.1', '--dhcp');
    netB = await json<Network>('network', 'create', 'net-b', '--tenant', 'other', '--subnet', '10.10.0.0/24', '--gateway', '10.10.0.1');
    for (const [name, host, tenant, net] of [
      ['a1', 'h1', 'acme', 'net-a'],
      ['a3', 'h1', 'acme', 'net-a'],
      ['a2', 'h2', 'acme', 'net-a'],
      ['b1', 'h1', 'other', 'net-b'],
      ['b2', 'h2', 'other', 'net-b'],
    ] as const) {
      guests[name] = await guest(name, host, tenant, net);
    }
  });

  after(async () => {
    cleanupStandIns();
    await c?.stop();
    dir.remove();
  });

  test("a guest's own traffic passes: DHCP from its host's server, and same-network traffic across hosts through VXLAN", async () => {
    const { a1, a2, a3, b1, b2 } = guests;
    for (const x of [a1, a2, a3]) {
      assert.equal(await x.g.dhcp(), x.nic.address, `${x.name} is offered its own address`);
      x.g.address(`${x.nic.address}/24`);
    }
    for (const x of [b1, b2]) x.g.address(`${x.nic.address}/24`);
    // Each guest's own kernel: ARP first, then the datagram, h1 to h2 through each host's firewall.
    for (const [from, to] of [
      [a1, a2],
      [a2, a3],
      [b1, b2],
    ] as const) {
      await runTool(from.g.ns, ['udp', to.nic.address, '7777', hex(`OUTRIG-CONTROL-${from.name}-${to.name}`)]);
      await to.g.sniffer.saw(`OUTRIG-CONTROL-${from.name}-${to.name}`);
    }
    // The tenants share a subnet, not a network: b2 heard none of a1's traffic.
    assert.deepEqual(
      b2.g.sniffer.markers().filter((m) => m.includes('a1')),
      [],
    );
  });

  test('finding 1: VXLAN for a network is taken only from the hosts that carry it, on the underlay address, from the kernel', async () => {
    const { a1, a2 } = guests;
    const forged = (from: string) =>
      vxlanPayload(
        netA.spec.segment,
        udpFrame({ srcMac: '02:00:00:00:00:99', dstMac: a2.nic.mac, src: '10.10.0.99', dst: a2.nic.address, dport: 7777, data: `OUTRIG-ATTACK-vxlan-${from}` }),
      ).toString('hex');
    const h2 = lan.node('h2').addr;
    // A second address on h2's underlay interface: VXLAN is not taken there, even from a peer's address.
    inNs(hostNs('h2'), 'ip', 'addr', 'add', '10.77.0.103/24', 'dev', 'eth0');
    const spoofedPeer = (r: number) =>
      udpFrame({
        srcMac: macOf(hostNs('ctl'), 'eth0'),
        dstMac: macOf(hostNs('h2'), 'eth0'),
        src: lan.node('h1').addr,
        dst: '10.77.0.103',
        dport: 4789,
        data: Buffer.from(forged(`other-address-${r}`), 'hex'),
      });
    for (let r = 1; r <= 3; r++) {
      // From a machine of the underlay that carries no network; from h1's own stack (a process, as
      // a guest's user-mode NIC relays a guest's datagrams); to 127.0.0.1 on h2 (what a guest's
      // user-mode NIC reaches as 10.0.2.2); to h2's other address, in h1's name.
      await runTool(hostNs('ctl'), ['udp', h2, '4789', forged(`ctl-${r}`)]);
      await runTool(hostNs('h1'), ['udp', h2, '4789', forged(`h1-${r}`)]);
      await runTool(hostNs('h2'), ['udp', '127.0.0.1', '4789', forged(`loopback-${r}`)]);
      await runTool(hostNs('ctl'), ['send', 'eth0', spoofedPeer(r).toString('hex')]);
      // Then a1's own frame takes the legitimate way, h1's VXLAN device to h2's.
      await a1.g.send(
        udpFrame({ srcMac: a1.nic.mac, dstMac: a2.nic.mac, src: a1.nic.address, dst: a2.nic.address, dport: 7777, data: `OUTRIG-CONTROL-vxlan-${r}` }),
      );
      await a2.g.sniffer.saw(`OUTRIG-CONTROL-vxlan-${r}`);
    }
    assert.deepEqual(attacks(a2), []);
    // The device learns nothing; where a2's MAC lives came from the controller.
    const vx = `ovx${netA.spec.segment}`;
    const link = JSON.parse(inNs(hostNs('h1'), 'ip', '-j', '-d', 'link', 'show', vx)) as { linkinfo: { info_data: { learning: boolean; local: string } } }[];
    assert.deepEqual([link[0]!.linkinfo.info_data.learning, link[0]!.linkinfo.info_data.local], [false, lan.node('h1').addr]);
    const fdb = JSON.parse(inNs(hostNs('h1'), 'bridge', '-j', 'fdb', 'show', 'dev', vx)) as { mac: string; dst?: string }[];
    assert.deepEqual(
      fdb.filter((e) => e.mac === a2.nic.mac && e.dst).map((e) => e.dst),
      [h2],
    );
  });

  test('finding 3: the host is not on a tenant bridge (no IPv6, no ARP answers, no IPv4 service reached)', async () => {
    const { b1, b2 } = guests;
    const service = await tool(hostNs('h1'), ['serve', '8222']).ready('a host service on h1');
    const br = `obr${netB.spec.segment}`;
    const bridge = (JSON.parse(inNs(hostNs('h1'), 'ip', '-j', 'addr', 'show', 'dev', br)) as { address: string; addr_info: unknown[] }[])[0]!;
    assert.deepEqual(bridge.addr_info, [], `${br} has no address`);
    // Over IPv6 to the link-local address the kernel gives a bridge with this MAC, once b1's own
    // link-local address is usable (until its duplicate detection ends, b1 could connect nowhere).
    await waitUntil(
      "b1's IPv6 link-local address",
      () => /inet6 fe80.*scope link(?!.*tentative)/.test(inNs(b1.g.ns, 'ip', '-6', 'addr', 'show', 'dev', 'eth0')),
      30_000,
      50,
    );
    assert.equal((await runTool(b1.g.ns, ['connect', `${linkLocalOf(bridge.address)}%eth0`, '8222'])).trim(), 'timeout');
    // ARP for h1's underlay address, then for b2's (which answers, through VXLAN).
    const h1 = lan.node('h1').addr;
    const who = (tpa: string) => arpFrame({ srcMac: b1.nic.mac, dstMac: BROADCAST, op: 1, sha: b1.nic.mac, spa: b1.nic.address, tpa });
    await b1.g.send(who(h1), who(h1), who(h1), who(b2.nic.address));
    await waitUntil(
      "b2's ARP answer",
      () =>
        b1.g.sniffer
          .frames()
          .map(parseArp)
          .some((a) => a?.op === 2 && a.spa === b2.nic.address),
      30_000,
      20,
    );
    assert.deepEqual(
      b1.g.sniffer
        .frames()
        .map(parseArp)
        .filter((a) => a?.spa === h1),
      [],
    );
    // IPv4 to h1's address sent to the bridge's MAC: a datagram to the service, and a connection.
    const drops = () => listenDrops(inNs(hostNs('h1'), 'cat', '/proc/net/netstat'));
    const dropsBefore = drops();
    inNs(b1.g.ns, 'ip', 'neigh', 'replace', h1, 'lladdr', bridge.address, 'dev', 'eth0');
    inNs(b1.g.ns, 'ip', 'route', 'replace', `${h1}/32`, 'dev', 'eth0');
    await b1.g.send(udpFrame({ srcMac: b1.nic.mac, dstMac: bridge.address, src: b1.nic.address, dst: h1, dport: 8222, data: 'OUTRIG-ATTACK-host-udp' }));
    assert.equal((await runTool(b1.g.ns, ['connect', h1, '8222'])).trim(), 'timeout');
    assert.deepEqual(
      service.lines.filter((l) => l !== 'ready'),
      [],
      'the host service heard nothing',
    );
    assert.equal(drops(), dropsBefore, "no SYN reached a listening socket of h1's");
    for (const dev of [br, `ovx${netB.spec.segment}`, b1.tap]) {
      assert.equal(inNs(hostNs('h1'), 'cat', `/proc/sys/net/ipv6/conf/${dev}/disable_ipv6`).trim(), '1', `no IPv6 on ${dev}`);
    }
  });

  test("finding 4: a guest sends only from its own MAC and address, no IPv6, and cannot touch another's DHCP lease", async () => {
    const { a1, a2, a3 } = guests;
    const toA2 = (o: { srcMac?: string; src?: string; data: string }) =>
      udpFrame({ srcMac: a3.nic.mac, src: a3.nic.address, dstMac: a2.nic.mac, dst: a2.nic.address, dport: 7777, ...o });
    for (let r = 1; r <= 3; r++) {
      await a3.g.send(
        toA2({ srcMac: a1.nic.mac, data: `OUTRIG-ATTACK-mac-${r}` }),
        toA2({ src: a1.nic.address, data: `OUTRIG-ATTACK-ip-${r}` }),
        toA2({ src: '10.10.0.200', data: `OUTRIG-ATTACK-unassigned-${r}` }),
        toA2({ src: '0.0.0.0', data: `OUTRIG-ATTACK-zero-${r}` }),
        udp6Frame({ srcMac: a3.nic.mac, dstMac: a2.nic.mac, data: `OUTRIG-ATTACK-ipv6-${r}` }),
        // ARP: "a1's address is at a3's MAC", and a request naming a1's MAC.
        arpFrame({ srcMac: a3.nic.mac, dstMac: a2.nic.mac, op: 2, sha: a3.nic.mac, spa: a1.nic.address, tha: a2.nic.mac, tpa: a2.nic.address }),
        arpFrame({ srcMac: a3.nic.mac, dstMac: BROADCAST, op: 1, sha: a1.nic.mac, spa: a3.nic.address, tpa: a2.nic.address }),
        toA2({ data: `OUTRIG-CONTROL-spoof-${r}` }),
      );
      await a2.g.sniffer.saw(`OUTRIG-CONTROL-spoof-${r}`);
    }
    assert.deepEqual(attacks(a2), []);
    const arps = a2.g.sniffer.frames().map(parseArp);
    assert.deepEqual(
      arps.filter((a) => (a?.spa === a1.nic.address && a.sha !== a1.nic.mac) || (a?.sha === a1.nic.mac && a.spa !== a1.nic.address && a.spa !== '0.0.0.0')),
      [],
    );

    // DHCP: a1's lease asked for with a1's MAC, with a3's MAC naming a1's in the request, and a1's
    // address declined in a1's name from a3's own address; then a3's own request.
    const server = netA.spec.dhcp!.server;
    const seen = a3.g.sniffer.frames().length;
    await a3.g.send(
      dhcpFrame({ srcMac: a1.nic.mac, chaddr: a1.nic.mac, xid: 0xa1, type: 1 }),
      dhcpFrame({ srcMac: a3.nic.mac, chaddr: a1.nic.mac, xid: 0xa2, type: 1 }),
      dhcpFrame({ srcMac: a3.nic.mac, chaddr: a1.nic.mac, xid: 0xa3, type: 4, from: a3.nic.address, to: server, requested: a1.nic.address, server }),
      dhcpFrame({ srcMac: a3.nic.mac, chaddr: a3.nic.mac, xid: 0xa4, type: 1 }),
    );
    const replies = () =>
      a3.g.sniffer
        .frames()
        .slice(seen)
        .map(parseDhcpReply)
        .filter((x) => !!x);
    const own = await waitUntil("the server's offer to a3", () => replies().find((x) => x.xid === 0xa4), 30_000, 20);
    assert.equal(own.yiaddr, a3.nic.address);
    assert.deepEqual(
      replies().filter((x) => x.xid !== 0xa4 || x.yiaddr === a1.nic.address),
      [],
    );
    const log = dhcpServers(netA.spec.segment)
      .map((s) => s.log)
      .join('');
    assert.doesNotMatch(log, /DHCPDECLINE|disabling DHCP static address/);
    assert.equal(await a1.g.dhcp(), a1.nic.address, 'a1 still gets its address');
  });

  test("a real guest, root in its own kernel, takes neither another guest's address nor its MAC", async () => {
    const { a1, a2 } = guests;
    // A TCG guest of tenant acme on h2 beside a2, its test hook reached on h2's loopback.
    const real = await c.createOn<Instance>('h2', 'a4', [
      '--image',
      'test',
      '--tenant',
      'acme',
      '--network',
      'net-a',
      '--kernel-args',
      TEST_HOOK_ARG,
      '--wait-ready',
      '--timeout',
      '300',
    ]);
    const port = real.status.network.forwards.find((f) => f.guestPort === 80)!.hostPort;
    const run = (script: string) => hookIn(hostNs('h2'), port, script);
    await waitUntil("a4's test hook", async () => (await run('echo hook-ok').catch(() => '')).trim() === 'hook-ok', 120_000, 1000);
    const mine = real.spec.nics![0]!;
    // busybox's nc speaks no UDP: pings of a size nothing else sends mark a4's attempts (payload
    // 1111: its own identity; 1234: a1's address; 1235: a1's MAC). The neighbour entry for a2 is
    // set by hand, so the ICMP leaves whether or not ARP (checked with the stand-ins) gets through.
    const ping = (size: number) =>
      `ip neigh replace ${a2.nic.address} lladdr ${a2.nic.mac} dev eth1; ping -c 3 -W 1 -s ${size} ${a2.nic.address} >/dev/null 2>&1; `;
    const icmpFrom = (size: number) =>
      a2.g.sniffer
        .frames()
        .filter((f) => f.length > 34 && f.readUInt16BE(12) === 0x0800 && f[23] === 1 && f.readUInt16BE(16) === size + 28)
        .map((f) => [...f.subarray(26, 30)].join('.'));
    await run(ping(1111));
    await waitUntil("a4's own pings at a2", () => icmpFrom(1111).includes(mine.address), 30_000, 50);
    // a1's address on its NIC, then a1's MAC (with its own address), then back to itself.
    await run(
      `ip addr flush dev eth1; ip addr add ${a1.nic.address}/24 dev eth1; ${ping(1234)}` +
        `ip addr flush dev eth1; ip addr add ${mine.address}/24 dev eth1; ip link set eth1 down; ip link set eth1 address ${a1.nic.mac}; ip link set eth1 up; ${ping(1235)}` +
        `ip link set eth1 down; ip link set eth1 address ${mine.mac}; ip link set eth1 up`,
    );
    await run(ping(1111).replace('-c 3', '-c 1'));
    await waitUntil("a4's pings at a2 once it is itself again", () => icmpFrom(1111).length > 3, 30_000, 50);
    assert.deepEqual([icmpFrom(1234), icmpFrom(1235)], [[], []], "a2 got none of a4's pings as a1");
    await ok('instance', 'delete', 'a4', '--force', '--timeout', '120');
  });

  test('an agent restart loads the tables again without a moment in which a spoofed frame passes', async () => {
    const { a1, a2, a3 } = guests;
    const spoofed = udpFrame({ srcMac: a1.nic.mac, dstMac: a2.nic.mac, src: a3.nic.address, dst: a2.nic.address, dport: 7777, data: 'OUTRIG-ATTACK-restart' });
    const legit = udpFrame({ srcMac: a3.nic.mac, dstMac: a2.nic.mac, src: a3.nic.address, dst: a2.nic.address, dport: 7777, data: 'OUTRIG-CONTROL-restart' });
    const seen = () => a2.g.sniffer.markers().filter((m) => m === 'OUTRIG-CONTROL-restart').length;
    const handle = () => /# handle (\d+)/.exec(inNs(hostNs('h1'), 'nft', '-a', 'list', 'table', 'bridge', 'outrig'))?.[1];
    const before = handle();
    const flood = tool(a3.g.ns, ['flood', 'eth0', spoofed.toString('hex'), legit.toString('hex')]);
    await waitUntil('the flood to reach a2', () => seen() >= 20, 30_000, 20);
    const agent = await c.restartAgent('h1');
    await waitUntil("h1's new agent to set up its networks", () => agent.output().includes('network backend chosen'), 60_000, 20);
    const atRestart = seen();
    await waitUntil('the flood to go on reaching a2', () => seen() >= atRestart + 20, 30_000, 20);
    flood.kill();
    assert.deepEqual(
      attacks(a2).filter((m) => m === 'OUTRIG-ATTACK-restart'),
      [],
    );
    assert.notEqual(handle(), before, 'the new agent replaced the tables');
  });

  test('the firewall goes with the last instance and network of a host', async () => {
    for (const h of ['h1', 'h2']) assert.match(tables(h), /table bridge outrig\n.*table inet outrig\n.*table arp outrig/s);
    cleanupStandIns();
    for (const name of Object.keys(guests)) await ok('instance', 'delete', name, '--force', '--timeout', '120');
    for (const n of ['net-a', 'net-b'])
      await waitUntil(`${n} off both hosts`, async () => (await json<Network>('network', 'show', n)).status.hosts.length === 0, 60_000, 500);
    for (const h of ['h1', 'h2']) assert.doesNotMatch(tables(h), /outrig/);
  });
});
