/**
 * The `vlan` backend, as commands: one VLAN-aware bridge per host (`obrv`, like Proxmox's "VLAN
 * aware" bridge), for kernels with 802.1Q and bridge VLAN filtering. The host's uplink NIC is a port
 * of it and carries every network's segment as a tagged VLAN to the switch; a guest's tap is a
 * port in exactly one VLAN, its network's, as PVID and egress untagged, so the guest sees plain
 * Ethernet. The bridge has `vlan_default_pvid 0`: a new port is in no VLAN until a plan puts it in
 * one, so nothing lands in VLAN 1 by default.
 *
 * The same contract as vxlan-plan.ts: each function compares what the kernel has (`ip -j -d link
 * show`, `bridge -j vlan show`) with what is wanted and returns only the commands that close the
 * gap, so running a plan against the state it produced gives no commands. Pure.
 */
import { parseLinks, type Link } from './links.ts';
import type { Command } from './vxlan-plan.ts';

/** The one VLAN-aware bridge of a vlan host. */
const VLAN_BRIDGE = 'obrv';
/** 802.1Q VLAN ids a bridge port can be in (0 and 4095 are reserved by the standard). */
const VLAN_MIN = 1;
export const VLAN_MAX = 4094;

/** A link with what the vlan backend reads beyond `Link`: a bridge's VLAN settings, an 802.1Q device's id. */
export interface VlanLink extends Link {
  /** Present for a bridge when `ip` ran with -d and the kernel has bridge VLAN support. */
  bridge?: { vlanFiltering: boolean; defaultPvid?: number };
  /** Present for an 802.1Q (or 802.1ad) device: its VLAN id and the device it is on. */
  vlan?: { id: number; protocol?: string; dev?: string };
}

interface RawVlanLink {
  ifname: string;
  link?: string;
  linkinfo?: { info_kind?: string; info_data?: { vlan_filtering?: number; vlan_default_pvid?: number; id?: number; protocol?: string } };
}

/** `ip -j -d link show`, as parseLinks reads it, plus bridge VLAN settings and 802.1Q devices. */
export function parseVlanLinks(json: unknown): VlanLink[] {
  const links: VlanLink[] = parseLinks(json);
  (json as RawVlanLink[]).forEach((raw, i) => {
    const link = links[i]!;
    const d = raw.linkinfo?.info_data;
    if (link.kind === 'bridge' && d?.vlan_filtering !== undefined) {
      link.bridge = { vlanFiltering: d.vlan_filtering === 1 };
      if (d.vlan_default_pvid !== undefined) link.bridge.defaultPvid = d.vlan_default_pvid;
    }
    if (link.kind === 'vlan' && d?.id !== undefined) link.vlan = { id: d.id, protocol: d.protocol, dev: raw.link };
  });
  return links;
}

/** One VLAN of a bridge port (or of the bridge itself): PVID takes in untagged frames, untagged strips the tag going out. */
export interface PortVlan {
  vid: number;
  pvid: boolean;
  untagged: boolean;
}

/** Each port's VLANs by name, ranges expanded, sorted by id. A port with no VLANs has no entry. */
export type BridgeVlans = Map<string, PortVlan[]>;

interface RawVlanEntry {
  vlan?: unknown;
  vlanEnd?: unknown;
  flags?: unknown;
}

function isVid(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= VLAN_MIN && v <= VLAN_MAX;
}

function addEntries(out: BridgeVlans, ifname: unknown, entries: unknown): void {
  if (typeof ifname !== 'string' || !ifname) throw new Error(`bridge -j vlan show: a port without a name (${JSON.stringify(ifname)})`);
  if (!Array.isArray(entries)) throw new Error(`bridge -j vlan show: the VLANs of ${ifname} are not a list`);
  const list = out.get(ifname) ?? [];
  for (const e of entries as RawVlanEntry[]) {
    const first = e?.vlan;
    const last = e?.vlanEnd ?? first;
    if (!isVid(first) || !isVid(last) || last < first)
      throw new Error(`bridge -j vlan show: ${ifname} has a VLAN entry that is not an id or range within ${VLAN_MIN}-${VLAN_MAX}: ${JSON.stringify(e)}`);
    const flags = Array.isArray(e.flags) ? (e.flags as unknown[]) : [];
    for (let vid = first; vid <= last; vid++) {
      const at = list.findIndex((v) => v.vid === vid);
      const entry = { vid, pvid: flags.includes('PVID'), untagged: flags.includes('Egress Untagged') };
      if (at >= 0) list[at] = entry;
      else list.push(entry);
    }
  }
  out.set(
    ifname,
    list.sort((a, b) => a.vid - b.vid),
  );
}

/**
 * `bridge -j vlan show` (with or without -d or -compressvlans). Two shapes are found in recorded
 * output (test/fixtures/network/vlan/README.md):
 *
 * - iproute2 4.19 and later: a list of `{ "ifname": ..., "vlans": [ { "vlan": 20 }, { "vlan": 1,
 *   "flags": ["PVID", "Egress Untagged"] }, { "vlan": 2, "vlanEnd": 20, "flags": [] } ] }`; a
 *   range (`vlanEnd`) only with -compressvlans, `flags` absent when neither flag is set (empty on
 *   a range), extra keys (`state`, `mcast_router`, ...) with -d, and ports with no VLAN left out.
 * - iproute2 4.17 and before: an object keyed by port name, each a list of such entries.
 *
 * An empty list (or empty output, which the adapter reads as `[]`) is no VLANs anywhere. Anything
 * else (iproute2 4.18's short-lived output among it) is refused rather than guessed at.
 */
export function parseBridgeVlans(json: unknown): BridgeVlans {
  const out: BridgeVlans = new Map();
  if (Array.isArray(json)) {
    for (const port of json as { ifname?: unknown; vlans?: unknown }[]) {
      if (typeof port !== 'object' || port === null) throw new Error(`bridge -j vlan show: unexpected entry ${JSON.stringify(port)}`);
      addEntries(out, port.ifname, port.vlans);
    }
  } else if (typeof json === 'object' && json !== null) {
    for (const [ifname, entries] of Object.entries(json)) addEntries(out, ifname, entries);
  } else {
    throw new Error('bridge -j vlan show printed neither a list nor an object');
  }
  return out;
}

/** Why a segment cannot be a VLAN here (undefined when it can). */
export function vlanSegmentProblem(segment: number): string | undefined {
  if (Number.isInteger(segment) && segment >= VLAN_MIN && segment <= VLAN_MAX) return undefined;
  return `segment ${segment} cannot be carried by a vlan host: 802.1Q VLAN ids are ${VLAN_MIN}-${VLAN_MAX}, so a network with this segment is VXLAN-only and needs vxlan hosts`;
}

function checkSegment(segment: number): void {
  const problem = vlanSegmentProblem(segment);
  if (problem) throw new Error(problem);
}

/** A device's VLANs count only while it is a port of the VLAN bridge (joining it starts a port with none: default PVID 0). */
function portVlans(vlans: BridgeVlans, link: VlanLink | undefined): PortVlan[] {
  return link && link.master === VLAN_BRIDGE ? (vlans.get(link.name) ?? []) : [];
}

interface VlanSegmentWanted {
  segment: number;
  /** The host's NIC toward the switch, which carries every segment as a tagged VLAN. */
  uplink: string;
  /** Its MTU: the bridge's, and the taps' (802.1Q costs no payload bytes). */
  uplinkMtu: number;
}

/** The bridge, made VLAN-aware; the uplink a port of it; the segment a tagged VLAN on the uplink. */
export function planVlanSegment(links: VlanLink[], vlans: BridgeVlans, w: VlanSegmentWanted): Command[] {
  checkSegment(w.segment);
  const out: Command[] = [];
  const bridge = links.find((l) => l.name === VLAN_BRIDGE);
  if (bridge && bridge.kind !== 'bridge') throw new Error(`${VLAN_BRIDGE} exists and is not a bridge (${bridge.kind ?? 'unknown kind'}); remove it`);
  const uplink = links.find((l) => l.name === w.uplink);
  if (!uplink) throw new Error(`uplink ${w.uplink} does not exist on this host`);
  if (uplink.name === VLAN_BRIDGE || uplink.kind === 'bridge')
    throw new Error(`uplink ${w.uplink} is a bridge; the vlan backend needs the NIC (or bond) toward the switch`);
  if (uplink.master && uplink.master !== VLAN_BRIDGE)
    throw new Error(
      `uplink ${w.uplink} is a port of ${uplink.master}; take it out of ${uplink.master} (and move any address it carries) before this host can carry VLAN networks on it`,
    );
  // A VLAN device on the uplink receives its VLAN's tagged frames before the bridge sees them.
  const thief = links.find((l) => l.vlan?.dev === w.uplink && l.vlan.id === w.segment && (l.vlan.protocol ?? '802.1Q') === '802.1Q');
  if (thief)
    throw new Error(
      `uplink ${w.uplink} has the 802.1Q device ${thief.name} for VLAN ${w.segment}, which would take the segment's frames before ${VLAN_BRIDGE} sees them; remove it or give the network another segment`,
    );

  if (!bridge) out.push(['ip', 'link', 'add', VLAN_BRIDGE, 'type', 'bridge', 'vlan_filtering', '1', 'vlan_default_pvid', '0']);
  else if (!bridge.bridge?.vlanFiltering || bridge.bridge.defaultPvid !== 0)
    out.push(['ip', 'link', 'set', VLAN_BRIDGE, 'type', 'bridge', 'vlan_filtering', '1', 'vlan_default_pvid', '0']);
  if (uplink.master !== VLAN_BRIDGE || !uplink.up) out.push(['ip', 'link', 'set', w.uplink, 'master', VLAN_BRIDGE, 'up']);
  const cur = portVlans(vlans, uplink).find((v) => v.vid === w.segment);
  // Adding a VLAN the port already has sets its flags to the ones given: none, so tagged and not PVID.
  if (!cur || cur.pvid || cur.untagged) out.push(['bridge', 'vlan', 'add', 'vid', String(w.segment), 'dev', w.uplink]);
  if (!bridge || bridge.mtu !== w.uplinkMtu || !bridge.up) out.push(['ip', 'link', 'set', VLAN_BRIDGE, 'mtu', String(w.uplinkMtu), 'up']);
  return out;
}

/**
 * A guest's tap on the VLAN bridge, in its network's VLAN as PVID and egress untagged and in no
 * other (made before QEMU starts, which opens it by name). The bridge must already filter VLANs
 * (planVlanSegment first): a tap on a bridge that does not would reach every guest on it.
 */
export function planVlanTap(links: VlanLink[], vlans: BridgeVlans, tap: string, segment: number, mtu: number): Command[] {
  checkSegment(segment);
  const bridge = links.find((l) => l.name === VLAN_BRIDGE);
  if (!bridge || bridge.kind !== 'bridge') throw new Error(`${VLAN_BRIDGE} is not a bridge here yet; plan the segment first`);
  if (!bridge.bridge?.vlanFiltering) throw new Error(`${VLAN_BRIDGE} does not filter VLANs (or its settings were not read with ip -d); plan the segment first`);
  const cur = links.find((l) => l.name === tap);
  if (cur && cur.kind !== 'tun') throw new Error(`${tap} exists and is not a tap device (${cur.kind ?? 'unknown kind'})`);
  const out: Command[] = [];
  if (!cur) out.push(['ip', 'tuntap', 'add', 'dev', tap, 'mode', 'tap']);
  if (!cur || cur.master !== VLAN_BRIDGE || cur.mtu !== mtu || !cur.up) out.push(['ip', 'link', 'set', tap, 'master', VLAN_BRIDGE, 'mtu', String(mtu), 'up']);
  const have = portVlans(vlans, cur);
  // Out of the old VLANs first, then into the new one: never in two networks at once.
  for (const v of have) if (v.vid !== segment) out.push(['bridge', 'vlan', 'del', 'vid', String(v.vid), 'dev', tap]);
  const now = have.find((v) => v.vid === segment);
  if (!now || !now.pvid || !now.untagged) out.push(['bridge', 'vlan', 'add', 'vid', String(segment), 'dev', tap, 'pvid', 'untagged']);
  return out;
}

/**
 * Takes a segment off the uplink, unless a port other than the uplink (a guest's tap) is still in
 * that VLAN (then it stays, and the reason is returned: the controller asks again once the guest
 * is gone). The bridge stays: every network of the host shares it. A tap goes with planTapRemoval
 * (vxlan-plan.ts), whose `ip link del` takes its VLANs with it.
 */
export function planVlanSegmentRemoval(links: VlanLink[], vlans: BridgeVlans, segment: number, uplink: string): { commands: Command[]; busy?: string } {
  if (vlanSegmentProblem(segment)) return { commands: [] };
  const ports = links.filter((l) => l.master === VLAN_BRIDGE && l.name !== uplink && portVlans(vlans, l).some((v) => v.vid === segment)).map((l) => l.name);
  if (ports.length) return { commands: [], busy: `VLAN ${segment} on ${VLAN_BRIDGE} still has ${ports.join(', ')}` };
  const up = links.find((l) => l.name === uplink);
  if (portVlans(vlans, up).some((v) => v.vid === segment)) return { commands: [['bridge', 'vlan', 'del', 'vid', String(segment), 'dev', uplink]] };
  return { commands: [] };
}
