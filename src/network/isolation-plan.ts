/**
 * The host's own presence taken off a tenant segment, and the VXLAN forwarding table made static:
 * what vxlan-plan.ts and port-plan.ts build is left as they build it, and this plan then closes
 * what the kernel opens by default on new devices.
 *  - No IPv6 on the bridge or on any of its ports (taps, VXLAN device, DHCP server's port, a
 *    dedicated port): an interface with IPv6 gets a link-local address a guest could reach, and
 *    sends neighbour discovery into the network.
 *  - No IPv4 address on the bridge, and ARP there never answered for the host's addresses
 *    (arp_ignore 8), in case one is added by hand.
 *  - The VXLAN device does not learn: where a MAC lives comes from the controller (each peer's
 *    guests' MACs, `planRemoteMacs`), everything else goes to the flood list, so a forged packet
 *    cannot teach the device to send a guest's traffic elsewhere.
 * Pure: the adapter (linux.ts) reads the state and applies the result.
 */
import { bridgeName, vxlanName, type Link } from './links.ts';
import type { Command } from './vxlan-plan.ts';

/** What `ip -j -d addr show` and /proc/sys say about one device. */
interface DeviceState {
  name: string;
  /** IPv6 is on (disable_ipv6 is 0); false when the kernel has no IPv6 at all. */
  ipv6: boolean;
  arpIgnore?: number;
  ipv4: string[];
  /** A VXLAN device's learning flag. */
  learning?: boolean;
}

/** One write under /proc/sys (a path relative to it, e.g. net/ipv6/conf/obr100/disable_ipv6). */
interface SysctlWrite {
  path: string;
  value: string;
}

interface RawAddrLink {
  ifname: string;
  linkinfo?: { info_kind?: string; info_data?: { learning?: boolean } };
  addr_info?: { family: string; local: string }[];
}

/** The devices of `ip -j -d addr show`; `sysctl(path)` reads /proc/sys (undefined: no such key). */
export function parseDeviceStates(json: unknown, sysctl: (path: string) => string | undefined): DeviceState[] {
  if (!Array.isArray(json)) throw new Error('ip -j addr show did not print a list');
  return (json as RawAddrLink[]).map((l) => {
    const d: DeviceState = {
      name: l.ifname,
      ipv6: sysctl(`net/ipv6/conf/${l.ifname}/disable_ipv6`)?.trim() === '0',
      ipv4: (l.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => a.local),
    };
    const arp = sysctl(`net/ipv4/conf/${l.ifname}/arp_ignore`);
    if (arp !== undefined) d.arpIgnore = Number(arp.trim());
    if (l.linkinfo?.info_kind === 'vxlan') d.learning = l.linkinfo.info_data?.learning !== false;
    return d;
  });
}

/** Writes and commands that leave the host no presence on the segment's bridge and ports. */
export function planIsolation(links: Link[], devices: DeviceState[], segment: number): { writes: SysctlWrite[]; commands: Command[] } {
  const br = bridgeName(segment);
  const mine = new Set([br, ...links.filter((l) => l.master === br).map((l) => l.name)]);
  const writes: SysctlWrite[] = [];
  const commands: Command[] = [];
  for (const d of devices.filter((x) => mine.has(x.name)).sort((a, b) => a.name.localeCompare(b.name))) {
    if (d.ipv6) writes.push({ path: `net/ipv6/conf/${d.name}/disable_ipv6`, value: '1' });
    if (d.name === br && d.arpIgnore !== undefined && d.arpIgnore !== 8) writes.push({ path: `net/ipv4/conf/${br}/arp_ignore`, value: '8' });
    if (d.name === br && d.ipv4.length) commands.push(['ip', '-4', 'addr', 'flush', 'dev', br]);
    if (d.name === vxlanName(segment) && d.learning) commands.push(['ip', 'link', 'set', d.name, 'type', 'vxlan', 'nolearning']);
  }
  return { writes, commands };
}

/** A guest's MAC on another host and that host's underlay address: a static entry of the VXLAN device. */
export interface RemoteMac {
  mac: string;
  dst: string;
}

/** The per-MAC entries of a VXLAN device in `bridge -j fdb show dev ovx<seg>` (the flood list is the all-zero MAC). */
export function parseRemoteMacs(json: unknown): RemoteMac[] {
  if (!Array.isArray(json)) throw new Error('bridge -j fdb show did not print a list');
  return (json as { mac?: string; dst?: string }[])
    .filter((e) => e.mac && e.dst && e.mac !== '00:00:00:00:00:00')
    .map((e) => ({ mac: e.mac!, dst: e.dst! }))
    .sort((a, b) => a.mac.localeCompare(b.mac));
}

function checked(r: RemoteMac): RemoteMac {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(r.mac)) throw new Error(`'${r.mac}' is not a MAC address`);
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(r.dst)) throw new Error(`'${r.dst}' is not an IPv4 address`);
  return r;
}

/** The commands that make the device's per-MAC entries exactly `wanted` (replace moves a MAC to another host). */
export function planRemoteMacs(current: RemoteMac[], segment: number, wanted: RemoteMac[]): Command[] {
  const vx = vxlanName(segment);
  const want = new Map(wanted.map(checked).map((r) => [r.mac, r.dst]));
  const out: Command[] = [];
  for (const [mac, dst] of [...want].sort(([a], [b]) => a.localeCompare(b))) {
    if (!current.some((c) => c.mac === mac && c.dst === dst)) out.push(['bridge', 'fdb', 'replace', mac, 'dev', vx, 'dst', dst, 'self', 'permanent']);
  }
  for (const c of current) if (!want.has(c.mac)) out.push(['bridge', 'fdb', 'del', c.mac, 'dev', vx, 'dst', c.dst, 'self']);
  return out;
}
