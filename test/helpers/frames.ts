/**
 * Ethernet frames a hostile guest sends, built byte by byte (IPv4, IPv6, UDP, ARP, DHCP, VXLAN),
 * and what the tests read back from sniffed frames. Payloads carry a marker (OUTRIG-ATTACK-... or
 * OUTRIG-CONTROL-...) so a sniffer can tell which frames arrived.
 */
const macBytes = (mac: string) => Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
const ipBytes = (ip: string) => Buffer.from(ip.split('.').map(Number));
const macOf = (b: Buffer) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
const ipOf = (b: Buffer) => [...b].join('.');

export const BROADCAST = 'ff:ff:ff:ff:ff:ff';

function checksum(b: Buffer): number {
  let sum = 0;
  for (let i = 0; i < b.length; i += 2) sum += (b[i]! << 8) + (b[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export function ether(dst: string, src: string, type: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(14);
  macBytes(dst).copy(h, 0);
  macBytes(src).copy(h, 6);
  h.writeUInt16BE(type, 12);
  return Buffer.concat([h, payload]);
}

/** An IPv4 packet with a UDP datagram (UDP checksum 0: none, which IPv4 allows). */
export function ipv4Udp(src: string, dst: string, sport: number, dport: number, data: Buffer): Buffer {
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(sport, 0);
  udp.writeUInt16BE(dport, 2);
  udp.writeUInt16BE(8 + data.length, 4);
  const ip = Buffer.alloc(20);
  ip.writeUInt8(0x45, 0);
  ip.writeUInt16BE(20 + 8 + data.length, 2);
  ip.writeUInt8(64, 8);
  ip.writeUInt8(17, 9);
  ipBytes(src).copy(ip, 12);
  ipBytes(dst).copy(ip, 16);
  ip.writeUInt16BE(checksum(ip), 10);
  return Buffer.concat([ip, udp, data]);
}

export function udpFrame(o: { srcMac: string; dstMac: string; src: string; dst: string; dport: number; data: Buffer | string }): Buffer {
  return ether(o.dstMac, o.srcMac, 0x0800, ipv4Udp(o.src, o.dst, 40000, o.dport, Buffer.from(o.data)));
}

/** An IPv6 UDP datagram between link-local addresses (checksum left 0: the receiver drops it, a sniffer still sees it). */
export function udp6Frame(o: { srcMac: string; dstMac: string; data: string }): Buffer {
  const data = Buffer.from(o.data);
  const h = Buffer.alloc(40 + 8);
  h.writeUInt32BE(0x60000000, 0);
  h.writeUInt16BE(8 + data.length, 4);
  h.writeUInt8(17, 6);
  h.writeUInt8(64, 7);
  Buffer.from('fe800000000000000000000000000001', 'hex').copy(h, 8);
  Buffer.from('fe800000000000000000000000000002', 'hex').copy(h, 24);
  h.writeUInt16BE(40000, 40);
  h.writeUInt16BE(7777, 42);
  h.writeUInt16BE(8 + data.length, 44);
  return ether(o.dstMac, o.srcMac, 0x86dd, Buffer.concat([h, data]));
}

export function arpFrame(o: { srcMac: string; dstMac: string; op: 1 | 2; sha: string; spa: string; tha?: string; tpa: string }): Buffer {
  const a = Buffer.alloc(28);
  a.writeUInt16BE(1, 0);
  a.writeUInt16BE(0x0800, 2);
  a.writeUInt8(6, 4);
  a.writeUInt8(4, 5);
  a.writeUInt16BE(o.op, 6);
  macBytes(o.sha).copy(a, 8);
  ipBytes(o.spa).copy(a, 14);
  macBytes(o.tha ?? '00:00:00:00:00:00').copy(a, 18);
  ipBytes(o.tpa).copy(a, 24);
  return ether(o.dstMac, o.srcMac, 0x0806, a);
}

const DHCP_MAGIC = 0x63825363;

/**
 * A DHCP client message, broadcast flag set so the answer is broadcast. `from` is the IPv4 source
 * (0.0.0.0 before a lease); type 1 DISCOVER, 4 DECLINE (with the address and server it declines).
 */
export function dhcpFrame(o: {
  srcMac: string;
  chaddr: string;
  xid: number;
  from?: string;
  to?: string;
  type: 1 | 4;
  requested?: string;
  server?: string;
}): Buffer {
  const m = Buffer.alloc(240);
  m.writeUInt8(1, 0);
  m.writeUInt8(1, 1);
  m.writeUInt8(6, 2);
  m.writeUInt32BE(o.xid, 4);
  m.writeUInt16BE(0x8000, 10);
  macBytes(o.chaddr).copy(m, 28);
  m.writeUInt32BE(DHCP_MAGIC, 236);
  const opts = [Buffer.from([53, 1, o.type])];
  if (o.requested) opts.push(Buffer.concat([Buffer.from([50, 4]), ipBytes(o.requested)]));
  if (o.server) opts.push(Buffer.concat([Buffer.from([54, 4]), ipBytes(o.server)]));
  opts.push(Buffer.from([255]));
  const body = Buffer.concat([m, ...opts, Buffer.alloc(64)]);
  return ether(BROADCAST, o.srcMac, 0x0800, ipv4Udp(o.from ?? '0.0.0.0', o.to ?? '255.255.255.255', 68, 67, body));
}

/** A VXLAN datagram's payload: the header (the I flag, the VNI) and the inner frame. */
export function vxlanPayload(vni: number, inner: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt8(0x08, 0);
  h.writeUIntBE(vni, 4, 3);
  return Buffer.concat([h, inner]);
}

/** The OUTRIG-... markers a frame carries. */
export function markers(frame: Buffer): string[] {
  return [...frame.toString('latin1').matchAll(/OUTRIG-(?:ATTACK|CONTROL)-[\w-]+/g)].map((m) => m[0]);
}

export function parseArp(frame: Buffer): { op: number; sha: string; spa: string; tpa: string } | undefined {
  if (frame.length < 42 || frame.readUInt16BE(12) !== 0x0806) return undefined;
  return { op: frame.readUInt16BE(20), sha: macOf(frame.subarray(22, 28)), spa: ipOf(frame.subarray(28, 32)), tpa: ipOf(frame.subarray(38, 42)) };
}

/** A DHCP server's answer (an IPv4 frame from UDP port 67 to 68): its transaction id, type and the address it offers. */
export function parseDhcpReply(frame: Buffer): { xid: number; type: number; yiaddr: string } | undefined {
  if (frame.length < 14 + 20 + 8 + 240 || frame.readUInt16BE(12) !== 0x0800) return undefined;
  const ihl = (frame[14]! & 0xf) * 4;
  const udp = 14 + ihl;
  if (frame[14 + 9] !== 17 || frame.readUInt16BE(udp) !== 67 || frame.readUInt16BE(udp + 2) !== 68) return undefined;
  const m = udp + 8;
  let type = 0;
  for (let i = m + 240; i < frame.length && frame[i] !== 255; i += 2 + frame[i + 1]!) if (frame[i] === 53) type = frame[i + 2]!;
  return { xid: frame.readUInt32BE(m + 4), type, yiaddr: ipOf(frame.subarray(m + 16, m + 20)) };
}

/** The EUI-64 link-local address the kernel gives an interface with this MAC (addr_gen_mode eui64). */
export function linkLocalOf(mac: string): string {
  const b = macBytes(mac);
  b[0] = b[0]! ^ 2;
  const h = (i: number) => b[i]!.toString(16).padStart(2, '0');
  return `fe80::${((b[0]! << 8) | b[1]!).toString(16)}:${h(2)}ff:fe${h(3)}:${((b[4]! << 8) | b[5]!).toString(16)}`;
}
