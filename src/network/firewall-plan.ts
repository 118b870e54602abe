/**
 * The host firewall of Outrig's networks, as the text `nft -f` loads: a pure function of what this
 * host carries (its networks, each with the underlay addresses of the other hosts that carry it,
 * and its guests' NICs). The agent applies the whole of it in one transaction, so the kernel goes
 * from one complete rule set to the next with no moment in between (see docs/networking.md for
 * what a guest can and cannot reach).
 *
 * Three tables named `outrig`, one per family (one agent carries networks per network namespace:
 * the bridge names already require that):
 *  - bridge: a guest's tap lets out only frames from the guest's own MAC, ARP naming that MAC and
 *    its own address, IPv4 from its own address, and DHCP naming its own MAC (from 0.0.0.0 only to
 *    its network's DHCP server or broadcast). No IPv6: Outrig's networks are IPv4 only, so nothing
 *    (ND included) is needed. A tap this file does not name passes nothing. No frame from a guest,
 *    a VXLAN device or a DHCP server's port goes up to the host, and a DHCP server's port hears
 *    only ARP and unfragmented DHCP.
 *  - inet: nothing arriving through a tenant bridge reaches or is routed by the host; UDP 4789 is
 *    taken only on the underlay address (the kernel's VXLAN socket listens on every address and
 *    cannot be bound narrower), only from the hosts that carry the packet's VNI; and only frames
 *    the bridge handed to a VXLAN device leave as UDP 4789 (they carry VXLAN_MARK, which the
 *    encapsulation keeps; a process, such as a guest's user-mode NIC relaying for it, is refused).
 *  - arp: the host neither answers nor sends ARP on a tenant bridge.
 *
 * Hostile input never enters this command language: every value placed in the text is checked
 * here against a strict pattern first (tap names as Outrig makes them, lower-case unicast MACs,
 * dotted IPv4 addresses, segment numbers), and anything else is refused with an error, so no value
 * can carry a quote, a brace or a second statement.
 */
import { formatIpv4, parseIpv4 } from './cidr.ts';
import { VXLAN_PORT } from './links.ts';

/** A guest NIC on a tap: what may leave it. */
export interface FirewallNic {
  instanceId: string;
  tap: string;
  mac: string;
  /** The address Outrig's IP management gave the NIC (by DHCP or on the kernel command line). */
  address: string;
  segment: number;
  /** The network's DHCP server address, when the NIC learns its address by DHCP. */
  dhcpServer?: string;
}

/** A network on this host and the underlay addresses of the other hosts carrying it over VXLAN ([] when none or port-carried). */
interface FirewallNetwork {
  segment: number;
  peers: string[];
}

/** What the agent keeps (and reloads at start): everything the rule set is made from but the underlay. */
export interface FirewallState {
  networks: FirewallNetwork[];
  nics: FirewallNic[];
}

const FIREWALL_TABLE = 'outrig';
/**
 * The packet mark bit a frame gets when the bridge hands it to a VXLAN device. The owner of the
 * packet's socket cannot tell the two apart (a guest's frame can still belong to QEMU's tap), the
 * mark can. A host whose other software uses this bit needs another one here.
 */
const VXLAN_MARK = 0x2000;
const FAMILIES = ['bridge', 'inet', 'arp'] as const;
/** The tenant-facing devices (links.ts): bridges, VXLAN devices, DHCP servers' ports, guests' taps. */
const BRIDGES = 'obr*';
const TAPS = 'ot*';

export const emptyFirewall = (): FirewallState => ({ networks: [], nics: [] });

function tapOk(s: string): string {
  if (!/^ot[0-9a-f]{12}[0-9]$/.test(s)) throw new Error(`firewall: '${s}' is not a tap name Outrig makes`);
  return s;
}

function macOk(s: string): string {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(s)) throw new Error(`firewall: '${s}' is not a MAC address (six lower-case hex pairs)`);
  if (parseInt(s.slice(0, 2), 16) & 1) throw new Error(`firewall: ${s} is a multicast MAC, not a NIC's`);
  return s;
}

function ipOk(s: string): string {
  const n = parseIpv4(s);
  if (n === undefined || formatIpv4(n) !== s) throw new Error(`firewall: '${s}' is not a dotted IPv4 address`);
  return s;
}

function segmentOk(n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > 0xffffff) throw new Error(`firewall: segment ${n} is not a VNI (1-16777215)`);
  return n;
}

/** Checks every value the rule text would hold; throws on the first that does not fit. */
export function validateFirewall(s: FirewallState, underlay?: string): void {
  if (underlay !== undefined) ipOk(underlay);
  for (const n of s.networks) {
    segmentOk(n.segment);
    n.peers.forEach(ipOk);
  }
  for (const n of s.nics) {
    tapOk(n.tap);
    macOk(n.mac);
    ipOk(n.address);
    segmentOk(n.segment);
    if (n.dhcpServer !== undefined) ipOk(n.dhcpServer);
  }
}

export function isEmptyFirewall(s: FirewallState): boolean {
  return !s.networks.length && !s.nics.length;
}

const hexMark = `0x${VXLAN_MARK.toString(16)}`;
const set = (items: string[]) => (items.length === 1 ? items[0]! : `{ ${items.join(', ')} }`);

/** What may leave one guest's tap. DHCP messages must name the guest's own MAC (chaddr, 28 bytes into the payload). */
function nicChain(n: FirewallNic): string[] {
  const chaddr = `@th,288,48 0x${n.mac.replace(/:/g, '')}`;
  const dhcp = n.dhcpServer ? [`ip saddr 0.0.0.0 ip daddr ${set(['255.255.255.255', n.dhcpServer])} udp sport 68 udp dport 67 ${chaddr} accept`] : [];
  return [
    `chain nic_${n.tap} {`,
    `ether saddr != ${n.mac} drop`,
    `ether type arp arp htype 1 arp ptype ip arp hlen 6 arp plen 4 arp saddr ether ${n.mac} arp saddr ip { 0.0.0.0, ${n.address} } accept`,
    `ip saddr ${n.address} udp dport 67 ${chaddr} accept`,
    ...dhcp,
    // Any other DHCP client message names another MAC (or is cut too short to read): a lease is not the guest's to touch.
    'udp dport 67 drop',
    `ip saddr ${n.address} accept`,
    'drop',
    '}',
  ];
}

function bridgeTable(s: FirewallState): string[] {
  const nics = [...s.nics].sort((a, b) => a.tap.localeCompare(b.tap));
  return [
    ...nics.flatMap(nicChain),
    'chain prerouting {',
    'type filter hook prerouting priority filter; policy accept;',
    ...(nics.length ? [`iifname vmap { ${nics.map((n) => `"${n.tap}" : jump nic_${n.tap}`).join(', ')} }`] : []),
    `iifname "${TAPS}" drop`,
    '}',
    // Frames that would go up to the host itself (its MAC, link-local groups such as EAPOL's): none from a guest's side.
    'chain input {',
    'type filter hook input priority filter; policy accept;',
    `iifname "${TAPS}" drop`,
    'iifname "ovx*" drop',
    'iifname "odh*" drop',
    '}',
    'chain forward {',
    'type filter hook forward priority filter; policy accept;',
    `oifname "ovx*" meta mark set meta mark | ${hexMark}`,
    'oifname "odh*" ether type arp accept',
    'oifname "odh*" ip frag-off & 0x3fff 0 udp dport 67 accept',
    'oifname "odh*" drop',
    '}',
  ];
}

function inetTable(s: FirewallState, underlay: string | undefined): string[] {
  const networks = [...s.networks].filter((n) => n.peers.length).sort((a, b) => a.segment - b.segment);
  return [
    'chain input {',
    'type filter hook input priority filter; policy accept;',
    `iifname "${BRIDGES}" drop`,
    `udp dport ${VXLAN_PORT} jump vxlan`,
    '}',
    'chain vxlan {',
    ...(underlay ? [`ip daddr != ${underlay} drop`] : []),
    // The VNI: 24 bits after the VXLAN header's flags word, which follows the 8-byte UDP header.
    ...networks.map((n) => `@th,96,24 ${n.segment} ip saddr ${set([...n.peers].sort())} accept`),
    'drop',
    '}',
    // With br_netfilter, bridged packets pass here with the bridge as both ends: those stay.
    'chain forward {',
    'type filter hook forward priority filter; policy accept;',
    `iifname "${BRIDGES}" oifname != "${BRIDGES}" drop`,
    `oifname "${BRIDGES}" iifname != "${BRIDGES}" drop`,
    '}',
    'chain output {',
    'type filter hook output priority filter; policy accept;',
    `oifname "${BRIDGES}" drop`,
    `udp dport ${VXLAN_PORT} meta mark & ${hexMark} != ${hexMark} drop`,
    '}',
  ];
}

function arpTable(): string[] {
  return [
    'chain input {',
    'type filter hook input priority filter; policy accept;',
    `iifname "${BRIDGES}" drop`,
    '}',
    'chain output {',
    'type filter hook output priority filter; policy accept;',
    `oifname "${BRIDGES}" drop`,
    '}',
  ];
}

/** `table F outrig {}` then `delete table F outrig`: gone afterwards whether or not it was there, in the same transaction. */
function dropTables(): string[] {
  return FAMILIES.flatMap((f) => [`table ${f} ${FIREWALL_TABLE} {}`, `delete table ${f} ${FIREWALL_TABLE}`]);
}

/**
 * The script for `nft -f`: every Outrig table replaced by the one this state calls for, or removed
 * when the host carries no network and no guest NIC. Throws if any value fails validation.
 */
export function firewallScript(s: FirewallState, underlay?: string): string {
  validateFirewall(s, underlay);
  const lines = dropTables();
  if (!isEmptyFirewall(s)) {
    const tables: Record<(typeof FAMILIES)[number], string[]> = { bridge: bridgeTable(s), inet: inetTable(s, underlay), arp: arpTable() };
    for (const f of FAMILIES) lines.push(`table ${f} ${FIREWALL_TABLE} {`, ...tables[f], '}');
  }
  return lines.join('\n') + '\n';
}

/** The state with a network on this host; peers replaced when given, kept otherwise (a VM start knows none). */
export function withNetwork(s: FirewallState, segment: number, peers?: string[]): FirewallState {
  const cur = s.networks.find((n) => n.segment === segment);
  const next = { segment, peers: peers ? [...new Set(peers)].sort() : (cur?.peers ?? []) };
  return { ...s, networks: [...s.networks.filter((n) => n.segment !== segment), next].sort((a, b) => a.segment - b.segment) };
}

export function withoutNetwork(s: FirewallState, segment: number): FirewallState {
  return { ...s, networks: s.networks.filter((n) => n.segment !== segment) };
}

/** The instance's tap NICs, replacing any it had. */
export function withNics(s: FirewallState, instanceId: string, nics: FirewallNic[]): FirewallState {
  return { ...s, nics: [...s.nics.filter((n) => n.instanceId !== instanceId), ...nics].sort((a, b) => a.tap.localeCompare(b.tap)) };
}

export function withoutInstance(s: FirewallState, instanceId: string): FirewallState {
  return withNics(s, instanceId, []);
}

/** The state as kept on disk, checked: a file that does not hold one is an error, not an empty firewall. */
export function parseFirewallState(text: string): FirewallState {
  const v = JSON.parse(text) as Partial<FirewallState>;
  if (!v || !Array.isArray(v.networks) || !Array.isArray(v.nics)) throw new Error('the firewall state is not {networks, nics}');
  const s = { networks: v.networks, nics: v.nics };
  validateFirewall(s);
  return s;
}
