/**
 * DHCP for a network on one host: a dnsmasq (Debian's dnsmasq-base) in a network namespace of its
 * own, joined to the network's bridge by a veth pair, answering only the MACs of this host's
 * guests with the addresses Outrig's IP management gave them (static leases; any other MAC gets
 * nothing). Every host carrying the network runs one, all with the network's one DHCP address;
 * the server's port and the bridge's uplink (VXLAN device or dedicated port) are both isolated
 * bridge ports, which cannot exchange frames, so a server is heard by its own host's guests only
 * and the shared address never meets itself across hosts. Pure: the adapter (dhcp.ts) runs it.
 */
import { createHash } from 'node:crypto';
import { formatIpv4, netmask, type Subnet } from './cidr.ts';
import { dhcpPortName } from './links.ts';

export interface DhcpLease {
  instanceId: string;
  mac: string;
  address: string;
}

export interface DhcpServerWanted {
  segment: number;
  /** Tells apart the agents of one machine (tests run several); names their namespaces. */
  tag: string;
  server: string;
  subnet: Subnet;
  gateway?: string;
  mtu: number;
}

/** Names of one host's DHCP server for a segment; interface names stay within Linux's 15 characters. */
export function dhcpNames(segment: number, tag: string) {
  return {
    netns: `outrig-dhcp-${segment}-${tag}`,
    /** The server's veth end on the bridge, and its end inside the namespace. */
    port: dhcpPortName(segment),
    inner: 'dhcp0',
  };
}

/** A short stable tag for this agent, from its data directory. */
export function dhcpTag(dataDir: string): string {
  return createHash('sha256').update(dataDir).digest('hex').slice(0, 8);
}

/** dnsmasq's arguments: DHCP only (port=0 turns DNS off), static leases from the hosts file, as an unprivileged user. */
export function dnsmasqArgs(w: DhcpServerWanted, files: { hosts: string; pid: string; log: string }): string[] {
  const { inner } = dhcpNames(w.segment, w.tag);
  return [
    '--conf-file=/dev/null',
    '--port=0',
    `--interface=${inner}`,
    '--bind-interfaces',
    `--dhcp-range=${formatIpv4(w.subnet.base)},static,${netmask(w.subnet.prefix)},12h`,
    `--dhcp-hostsfile=${files.hosts}`,
    '--leasefile-ro',
    // No gateway: an empty router option, so the guest sets no default route.
    w.gateway ? `--dhcp-option=option:router,${w.gateway}` : '--dhcp-option=option:router',
    `--dhcp-option=option:mtu,${w.mtu}`,
    `--pid-file=${files.pid}`,
    `--log-facility=${files.log}`,
    '--log-dhcp',
    '--user=nobody',
    '--group=nogroup',
  ];
}

/** The hosts file: one `MAC,ADDRESS` line per lease, in a stable order (dnsmasq re-reads it on SIGHUP). */
export function hostsFile(leases: DhcpLease[]): string {
  return [...leases]
    .sort((a, b) => a.mac.localeCompare(b.mac))
    .map((l) => `${l.mac},${l.address}\n`)
    .join('');
}

/** Leases with those of one instance replaced (or removed, with none). */
export function withLeases(current: DhcpLease[], instanceId: string, mine: DhcpLease[]): DhcpLease[] {
  return [...current.filter((l) => l.instanceId !== instanceId), ...mine];
}

export function parseLeases(text: string): DhcpLease[] {
  const v = JSON.parse(text) as unknown;
  if (!Array.isArray(v) || !v.every((l) => l && typeof l.instanceId === 'string' && typeof l.mac === 'string' && typeof l.address === 'string')) {
    throw new Error('the DHCP lease list is not a list of {instanceId, mac, address}');
  }
  return v as DhcpLease[];
}
