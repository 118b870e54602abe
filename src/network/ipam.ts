/**
 * Address management, the pure part: which address a new NIC gets. The store makes each claim
 * unique (a primary key on network and address), so two controllers that pick the same address
 * at once cannot both have it: the loser picks again.
 */
import { hostRange, type Subnet } from './cidr.ts';

/** The lowest address of the subnet that is neither reserved (the gateway) nor in use. */
export function pickAddress(net: Subnet, reserved: ReadonlySet<number>, used: ReadonlySet<number>): number | undefined {
  const { first, last } = hostRange(net);
  for (let a = first; a <= last; a++) if (!reserved.has(a) && !used.has(a)) return a;
  return undefined;
}

/** Segment ids: VXLAN carries 24 bits; automatic ones stay within 802.1Q's range so a VLAN host can carry them too. */
export const SEGMENT_MIN = 1;
export const SEGMENT_MAX = 16_777_215;
const AUTO_SEGMENT_FIRST = 100;
const AUTO_SEGMENT_LAST = 4094;

export function pickSegment(used: ReadonlySet<number>): number | undefined {
  for (let s = AUTO_SEGMENT_FIRST; s <= AUTO_SEGMENT_LAST; s++) if (!used.has(s)) return s;
  return undefined;
}
