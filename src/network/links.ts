/**
 * What the kernel has, read from `ip -j -d link show` and `bridge -j fdb show`, and the names
 * Outrig gives its devices. Pure: the adapter (linux.ts) runs the commands.
 */

export interface Link {
  name: string;
  master?: string;
  mtu: number;
  up: boolean;
  kind?: string;
  vxlan?: { id: number; local?: string; port?: number; dev?: string };
}

interface RawLink {
  ifname: string;
  master?: string;
  mtu: number;
  flags?: string[];
  linkinfo?: { info_kind?: string; info_data?: { id?: number; local?: string; port?: number; link?: string } };
}

export function parseLinks(json: unknown): Link[] {
  if (!Array.isArray(json)) throw new Error('ip -j link show did not print a list');
  return (json as RawLink[]).map((l) => {
    const kind = l.linkinfo?.info_kind;
    const d = l.linkinfo?.info_data;
    const link: Link = { name: l.ifname, mtu: l.mtu, up: !!l.flags?.includes('UP'), kind };
    if (l.master) link.master = l.master;
    if (kind === 'vxlan' && d?.id !== undefined) link.vxlan = { id: d.id, local: d.local, port: d.port, dev: d.link };
    return link;
  });
}

/** The flood list of a VXLAN device: where broadcast and unknown traffic goes (all-zero MAC entries). */
export function parseFloodList(json: unknown): string[] {
  if (!Array.isArray(json)) throw new Error('bridge -j fdb show did not print a list');
  return (json as { mac?: string; dst?: string }[])
    .filter((e) => e.mac === '00:00:00:00:00:00' && e.dst)
    .map((e) => e.dst!)
    .sort();
}

/** Linux caps interface names at 15 characters; these stay within it for any segment and instance. */
export function bridgeName(segment: number): string {
  return `obr${segment}`;
}

export function vxlanName(segment: number): string {
  return `ovx${segment}`;
}

/** The veth end of the network's DHCP server on the bridge (see dhcp-plan.ts). */
export function dhcpPortName(segment: number): string {
  return `odh${segment}`;
}

/** `ot`, twelve hex digits of the instance id, the NIC's index. */
export function tapName(instanceId: string, index: number): string {
  const hex = instanceId
    .replace(/^i-/, '')
    .replace(/[^0-9a-f]/g, '')
    .slice(0, 12);
  if (index < 0 || index > 9) throw new Error(`NIC index ${index} is out of range (0-9)`);
  return `ot${hex}${index}`;
}

export const VXLAN_PORT = 4789;
/** IPv4 + UDP + VXLAN + inner Ethernet headers. */
export const VXLAN_OVERHEAD = 50;
