/** IPv4 addresses and subnets as 32-bit numbers: parsing, containment, overlap. Pure. */

export interface Subnet {
  /** Network address. */
  base: number;
  prefix: number;
}

export function parseIpv4(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p, i) => p > 255 || (m[i + 1]!.length > 1 && m[i + 1]!.startsWith('0')))) return undefined;
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function size(net: Subnet): number {
  return 2 ** (32 - net.prefix);
}

function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Smallest and largest subnets a network may have: /29 leaves 5 guests beside the gateway. */
const MIN_PREFIX = 8;
const MAX_PREFIX = 29;

type ParsedSubnet = { ok: true; subnet: Subnet } | { ok: false; reason: string };

/** The subnet of a stored network (checked when it was created: a bad one there is a bug, not bad input). */
export function subnetOf(n: { name: string; spec: { subnet: string } }): Subnet {
  const p = parseSubnet(n.spec.subnet);
  if (!p.ok) throw new Error(`network ${n.name} has a bad subnet in the store: ${p.reason}`);
  return p.subnet;
}

/** A subnet in CIDR form whose host bits are zero (10.1.0.0/24, not 10.1.0.5/24). */
export function parseSubnet(s: string): ParsedSubnet {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(s);
  const addr = m ? parseIpv4(m[1]!) : undefined;
  if (!m || addr === undefined) return { ok: false, reason: `'${s}' is not an IPv4 subnet in CIDR form (like 10.10.0.0/24)` };
  const prefix = Number(m[2]);
  if (prefix < MIN_PREFIX || prefix > MAX_PREFIX)
    return { ok: false, reason: `prefix /${prefix} is out of range: a network's subnet is /${MIN_PREFIX} to /${MAX_PREFIX}` };
  const base = (addr & mask(prefix)) >>> 0;
  if (base !== addr) return { ok: false, reason: `'${s}' has host bits set; the subnet is ${formatIpv4(base)}/${prefix}` };
  return { ok: true, subnet: { base, prefix } };
}

/** The dotted netmask of a prefix length (24 → 255.255.255.0). */
export function netmask(prefix: number): string {
  return formatIpv4(mask(prefix));
}

/** The subnet an address is in, given the prefix length (a NIC's address and its network's prefix). */
export function subnetAround(address: string, prefix: number): Subnet | undefined {
  const a = parseIpv4(address);
  if (a === undefined || !Number.isInteger(prefix) || prefix < 0 || prefix > 32) return undefined;
  return { base: (a & mask(prefix)) >>> 0, prefix };
}

export function formatSubnet(net: Subnet): string {
  return `${formatIpv4(net.base)}/${net.prefix}`;
}

export function contains(net: Subnet, addr: number): boolean {
  return (addr & mask(net.prefix)) >>> 0 === net.base;
}

export function overlaps(a: Subnet, b: Subnet): boolean {
  return contains(a, b.base) || contains(b, a.base);
}

/** The addresses hosts may use: all but the network and broadcast addresses. */
export function hostRange(net: Subnet): { first: number; last: number } {
  return { first: net.base + 1, last: net.base + size(net) - 2 };
}

/**
 * A locally administered MAC made from a guest's address (0a:58 and the four address bytes, as
 * OVN does): unique on its network because the address is, and the same each time the guest starts.
 */
export function macForAddress(addr: number): string {
  return ['0a', '58', ...[addr >>> 24, (addr >>> 16) & 255, (addr >>> 8) & 255, addr & 255].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}
