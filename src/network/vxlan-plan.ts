/**
 * The `vxlan` backend, as commands: one Linux bridge per network on each host, joined to the
 * other hosts' bridges of the same network by a VXLAN device with the network's segment id. The
 * flood list (head-end replication to each peer's underlay address) carries broadcasts, and the
 * device learns where each guest MAC lives, so no multicast is needed in the underlay.
 *
 * Each function compares what the kernel has with what is wanted and returns only the commands
 * that close the gap, so running a plan twice changes nothing the second time. Pure.
 */
import { bridgeName, dhcpPortName, VXLAN_OVERHEAD, VXLAN_PORT, vxlanName, type Link } from './links.ts';

export type Command = string[];

export interface SegmentWanted {
  segment: number;
  /** This host's underlay address and the device it is on. */
  underlay: string;
  underlayDev: string;
  underlayMtu: number;
  /** Underlay addresses of the other hosts with this network; absent: leave the flood list as it is. */
  peers?: string[];
}

export function segmentMtu(underlayMtu: number): number {
  return underlayMtu - VXLAN_OVERHEAD;
}

export function planSegment(links: Link[], flood: string[], w: SegmentWanted): Command[] {
  const br = bridgeName(w.segment);
  const vx = vxlanName(w.segment);
  const mtu = String(segmentMtu(w.underlayMtu));
  const out: Command[] = [];
  const bridge = links.find((l) => l.name === br);
  if (!bridge) out.push(['ip', 'link', 'add', br, 'type', 'bridge']);
  else if (bridge.kind !== 'bridge') throw new Error(`${br} exists and is not a bridge (${bridge.kind ?? 'unknown kind'}); remove it`);
  const cur = links.find((l) => l.name === vx);
  const right = cur?.vxlan && cur.vxlan.id === w.segment && cur.vxlan.local === w.underlay && cur.vxlan.port === VXLAN_PORT && cur.vxlan.dev === w.underlayDev;
  let current = flood;
  if (cur && !right) {
    out.push(['ip', 'link', 'del', vx]);
    current = [];
  }
  if (!right) {
    out.push([
      'ip',
      'link',
      'add',
      vx,
      'type',
      'vxlan',
      'id',
      String(w.segment),
      'dstport',
      String(VXLAN_PORT),
      'local',
      w.underlay,
      'dev',
      w.underlayDev,
      'nolearning',
    ]);
  }
  if (!right || cur.master !== br || cur.mtu !== Number(mtu) || !cur.up) out.push(['ip', 'link', 'set', vx, 'master', br, 'mtu', mtu, 'up']);
  if (!bridge || !bridge.up) out.push(['ip', 'link', 'set', br, 'up']);
  if (!w.peers) return out;
  const want = new Set(w.peers.filter((p) => p !== w.underlay));
  for (const p of [...want].sort()) if (!current.includes(p)) out.push(['bridge', 'fdb', 'append', '00:00:00:00:00:00', 'dev', vx, 'dst', p]);
  for (const p of current) if (!want.has(p)) out.push(['bridge', 'fdb', 'del', '00:00:00:00:00:00', 'dev', vx, 'dst', p]);
  return out;
}

/** A guest's tap device on its network's bridge (made before QEMU starts, which opens it by name). */
export function planTap(links: Link[], tap: string, segment: number, mtu: number): Command[] {
  const br = bridgeName(segment);
  const cur = links.find((l) => l.name === tap);
  const out: Command[] = [];
  if (cur && cur.kind !== 'tun') throw new Error(`${tap} exists and is not a tap device (${cur.kind ?? 'unknown kind'})`);
  if (!cur) out.push(['ip', 'tuntap', 'add', 'dev', tap, 'mode', 'tap']);
  if (!cur || cur.master !== br || cur.mtu !== mtu || !cur.up) out.push(['ip', 'link', 'set', tap, 'master', br, 'mtu', String(mtu), 'up']);
  return out;
}

export function planTapRemoval(links: Link[], tap: string): Command[] {
  return links.some((l) => l.name === tap) ? [['ip', 'link', 'del', tap]] : [];
}

/**
 * Takes a network off this host, unless a guest's tap is still on its bridge (then it stays, and
 * the reason is returned: the controller asks again once the guest is gone).
 */
export function planSegmentRemoval(links: Link[], segment: number): { commands: Command[]; busy?: string } {
  const br = bridgeName(segment);
  const vx = vxlanName(segment);
  // The DHCP server's port is the network's own, not a guest's: the caller stops that server first.
  const ports = links.filter((l) => l.master === br && l.name !== vx && l.name !== dhcpPortName(segment)).map((l) => l.name);
  if (ports.length) return { commands: [], busy: `bridge ${br} still has ${ports.join(', ')}` };
  const out: Command[] = [];
  if (links.some((l) => l.name === vx)) out.push(['ip', 'link', 'del', vx]);
  if (links.some((l) => l.name === br)) out.push(['ip', 'link', 'del', br]);
  return { commands: out };
}
