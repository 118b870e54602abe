/**
 * The `port` way of carrying a network, for hosts of a dedicated cluster: the switch port the host
 * authenticated with 802.1X is in the tenant's network on the switch side, so the host's bridge for
 * that network takes the dedicated NIC as a port and no VXLAN device. Pure, like vxlan-plan.ts.
 */
import { bridgeName, vxlanName, type Link } from './links.ts';
import type { Command } from './vxlan-plan.ts';

export function planPortSegment(links: Link[], segment: number, port: string): Command[] {
  const br = bridgeName(segment);
  const out: Command[] = [];
  const nic = links.find((l) => l.name === port);
  if (!nic) throw new Error(`dedicated port ${port} does not exist on this host`);
  const bridge = links.find((l) => l.name === br);
  if (!bridge) out.push(['ip', 'link', 'add', br, 'type', 'bridge']);
  else if (bridge.kind !== 'bridge') throw new Error(`${br} exists and is not a bridge (${bridge.kind ?? 'unknown kind'}); remove it`);
  // A VXLAN device from before the host joined its cluster would leak the network past the switch.
  if (links.some((l) => l.name === vxlanName(segment))) out.push(['ip', 'link', 'del', vxlanName(segment)]);
  if (nic.master !== br || !nic.up) out.push(['ip', 'link', 'set', port, 'master', br, 'up']);
  if (!bridge || !bridge.up) out.push(['ip', 'link', 'set', br, 'up']);
  return out;
}
