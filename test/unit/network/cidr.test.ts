import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from '../../helpers/fast-check.ts';
import { contains, formatIpv4, hostRange, macForAddress, overlaps, parseIpv4, parseSubnet } from '../../../src/network/cidr.ts';
import { pickAddress, pickSegment } from '../../../src/network/ipam.ts';

const net = (s: string) => {
  const p = parseSubnet(s);
  if (!p.ok) throw new Error(p.reason);
  return p.subnet;
};

test('IPv4 addresses parse and print back; bad ones are refused', () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), (n) => parseIpv4(formatIpv4(n)) === n));
  for (const bad of ['10.0.0', '10.0.0.256', '10.0.0.01', '10.0.0.1/24', 'a.b.c.d', '', ' 10.0.0.1']) assert.equal(parseIpv4(bad), undefined, bad);
});

test('subnets: host bits, prefix range and malformed text each get their reason', () => {
  assert.deepEqual(net('10.10.0.0/24'), { base: parseIpv4('10.10.0.0'), prefix: 24 });
  const cases: [string, RegExp][] = [
    ['10.10.0.5/24', /host bits set; the subnet is 10\.10\.0\.0\/24/],
    ['10.0.0.0/30', /prefix \/30 is out of range: .* \/8 to \/29/],
    ['10.0.0.0/7', /out of range/],
    ['10.0.0.0', /not an IPv4 subnet in CIDR form/],
    ['10.0.0.0/abc', /not an IPv4 subnet/],
  ];
  for (const [s, why] of cases) {
    const p = parseSubnet(s);
    assert.equal(p.ok, false, s);
    if (!p.ok) assert.match(p.reason, why);
  }
});

test('overlap is symmetric and matches containment of either base', () => {
  assert.equal(overlaps(net('10.10.0.0/16'), net('10.10.5.0/24')), true);
  assert.equal(overlaps(net('10.10.5.0/24'), net('10.10.0.0/16')), true);
  assert.equal(overlaps(net('10.10.0.0/24'), net('10.10.1.0/24')), false);
  const subnet = fc
    .tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 8, max: 29 }))
    .map(([a, p]) => net(`${formatIpv4(((a >>> (32 - p)) << (32 - p)) >>> 0)}/${p}`));
  fc.assert(
    fc.property(subnet, subnet, fc.integer({ min: 0, max: 0xffffffff }), (a, b, x) => {
      assert.equal(overlaps(a, b), overlaps(b, a));
      // An address in both means they overlap.
      if (contains(a, x) && contains(b, x)) assert.equal(overlaps(a, b), true);
    }),
  );
});

test('addresses are handed out lowest first, never the network, broadcast, reserved or used ones', () => {
  const n = net('10.1.0.0/29'); // .1-.6 usable
  assert.deepEqual(hostRange(n), { first: parseIpv4('10.1.0.1'), last: parseIpv4('10.1.0.6') });
  const reserved = new Set([parseIpv4('10.1.0.1')!]);
  const used = new Set<number>();
  const got: string[] = [];
  for (let a = pickAddress(n, reserved, used); a !== undefined; a = pickAddress(n, reserved, used)) {
    used.add(a);
    got.push(formatIpv4(a));
  }
  assert.deepEqual(got, ['10.1.0.2', '10.1.0.3', '10.1.0.4', '10.1.0.5', '10.1.0.6']);
  used.delete(parseIpv4('10.1.0.4')!);
  assert.equal(formatIpv4(pickAddress(n, reserved, used)!), '10.1.0.4', 'a released address is reused');
});

test('automatic segments start at 100 and stay within VLAN range; MACs follow addresses', () => {
  assert.equal(pickSegment(new Set()), 100);
  assert.equal(pickSegment(new Set([100, 101, 103])), 102);
  assert.equal(pickSegment(new Set(Array.from({ length: 3995 }, (_, i) => 100 + i))), undefined);
  assert.equal(macForAddress(parseIpv4('10.10.0.2')!), '0a:58:0a:0a:00:02');
});
