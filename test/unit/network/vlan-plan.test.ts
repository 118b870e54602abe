/**
 * The vlan backend's plans against `ip -j -d link show` and `bridge -j vlan show` output recorded on
 * machines that have bridge VLAN filtering (these do not): test/fixtures/network/vlan/README.md
 * says where each file comes from. Where a test needs Outrig's names, it renames the recorded
 * devices here, in the open, rather than in the fixture files.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseLinks } from '../../../src/network/links.ts';
import {
  parseBridgeVlans,
  parseVlanLinks,
  planVlanSegment,
  planVlanSegmentRemoval,
  planVlanTap,
  vlanSegmentProblem,
  type BridgeVlans,
  type PortVlan,
  type VlanLink,
} from '../../../src/network/vlan-plan.ts';
import type { Command } from '../../../src/network/vxlan-plan.ts';

const dir = join(import.meta.dirname, '..', '..', 'fixtures', 'network');
const fixture = (f: string) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as unknown;
const vlanFixture = (f: string) => fixture(join('vlan', f));

/** Recorded output with some devices renamed (ifname, master and lower-device fields only). */
function renamed(json: unknown, names: Record<string, string>): unknown {
  return JSON.parse(JSON.stringify(json), (key: string, value: unknown) =>
    ['ifname', 'master', 'link'].includes(key) && typeof value === 'string' && Object.hasOwn(names, value) ? names[value] : value,
  ) as unknown;
}

const tagged = (...vids: number[]): PortVlan[] => vids.map((vid) => ({ vid, pvid: false, untagged: false }));
const access = (vid: number): PortVlan => ({ vid, pvid: true, untagged: true });

interface State {
  links: VlanLink[];
  vlans: BridgeVlans;
}

/**
 * A model of what the kernel does with the commands the plans emit, so a test can run a plan and
 * plan again against the result. It knows only these command forms and throws on any other.
 */
function apply(s: State, commands: Command[]): State {
  const links: VlanLink[] = s.links.map((l) => ({ ...l, ...(l.bridge ? { bridge: { ...l.bridge } } : {}) }));
  const vlans: BridgeVlans = new Map([...s.vlans].map(([k, v]) => [k, v.map((e) => ({ ...e }))]));
  const find = (name: string) => {
    const l = links.find((x) => x.name === name);
    if (!l) throw new Error(`Cannot find device "${name}"`);
    return l;
  };
  const portOfBridge = (name: string) => {
    const l = find(name);
    if (!l.master || find(l.master).kind !== 'bridge') throw new Error(`${name} is not a bridge port`);
  };
  for (const c of commands) {
    const line = c.join(' ');
    let m: RegExpExecArray | null;
    if ((m = /^ip link add (\S+) type bridge vlan_filtering 1 vlan_default_pvid 0$/.exec(line))) {
      if (links.some((l) => l.name === m![1])) throw new Error('File exists');
      links.push({ name: m[1]!, mtu: 1500, up: false, kind: 'bridge', bridge: { vlanFiltering: true, defaultPvid: 0 } });
    } else if ((m = /^ip link set (\S+) type bridge vlan_filtering 1 vlan_default_pvid 0$/.exec(line))) {
      const br = find(m[1]!);
      const old = br.bridge?.defaultPvid ?? 1;
      br.bridge = { vlanFiltering: true, defaultPvid: 0 };
      // Ports still in the old default PVID as the bridge put them there lose it.
      for (const p of links.filter((l) => l.master === br.name)) {
        const left = (vlans.get(p.name) ?? []).filter((v) => !(v.vid === old && v.pvid && v.untagged));
        if (left.length) vlans.set(p.name, left);
        else vlans.delete(p.name);
      }
    } else if ((m = /^ip tuntap add dev (\S+) mode tap$/.exec(line))) {
      if (links.some((l) => l.name === m![1])) throw new Error('Device or resource busy');
      links.push({ name: m[1]!, mtu: 1500, up: false, kind: 'tun' });
    } else if ((m = /^ip link set (\S+)(?: master (\S+))?(?: mtu (\d+))? up$/.exec(line))) {
      const l = find(m[1]!);
      if (m[2] && l.master !== m[2]) {
        const br = find(m[2]);
        if (br.kind !== 'bridge') throw new Error(`${m[2]} is not a bridge`);
        l.master = m[2];
        vlans.delete(l.name);
        const d = br.bridge?.defaultPvid ?? 1;
        if (d) vlans.set(l.name, [access(d)]);
      }
      if (m[3]) l.mtu = Number(m[3]);
      l.up = true;
    } else if ((m = /^bridge vlan add vid (\d+) dev (\S+)( pvid)?( untagged)?$/.exec(line))) {
      portOfBridge(m[2]!);
      const vid = Number(m[1]);
      const pvid = !!m[3];
      const list = (vlans.get(m[2]!) ?? []).filter((v) => v.vid !== vid).map((v) => (pvid ? { ...v, pvid: false } : v));
      list.push({ vid, pvid, untagged: !!m[4] });
      vlans.set(
        m[2]!,
        list.sort((a, b) => a.vid - b.vid),
      );
    } else if ((m = /^bridge vlan del vid (\d+) dev (\S+)$/.exec(line))) {
      portOfBridge(m[2]!);
      const left = (vlans.get(m[2]!) ?? []).filter((v) => v.vid !== Number(m![1]));
      if (left.length) vlans.set(m[2]!, left);
      else vlans.delete(m[2]!);
    } else if ((m = /^ip link del (\S+)$/.exec(line))) {
      find(m[1]!);
      links.splice(
        links.findIndex((l) => l.name === m![1]),
        1,
      );
      vlans.delete(m[1]!);
    } else {
      throw new Error(`the model does not know: ${line}`);
    }
  }
  return { links, vlans };
}

// Infix (kernelkit/infix) test system: br-Q filters VLANs with default PVID 0; e3 and veth0b are
// trunk ports with VLANs 20, 30 and 40 tagged; e3.10 is an 802.1Q device on e3.
const infixAll: State = {
  links: parseVlanLinks(vlanFixture('infix-interfaces-all.ip-link.json')),
  vlans: parseBridgeVlans(vlanFixture('infix-interfaces-all.bridge-vlan.json')),
};
/** A recorded Infix state with one of its bridges renamed obrv, the vlan backend's bridge. */
const asObrv = (recording: 'interfaces-all' | 'containers', bridge: string): State => ({
  links: parseVlanLinks(renamed(vlanFixture(`infix-${recording}.ip-link.json`), { [bridge]: 'obrv' })),
  vlans: parseBridgeVlans(renamed(vlanFixture(`infix-${recording}.bridge-vlan.json`), { [bridge]: 'obrv' })),
});
// The tap recorded on these machines (a port of obr100, the vxlan backend's bridge).
const recordedTap = parseLinks(fixture('ip-link-vxlan.json')).find((l) => l.name === 'ot0123456789ab0')!;

test("bridge -j vlan show, iproute2 4.19+ shape (Infix, recorded): trunk ports tagged, the bridge's own VLANs", () => {
  assert.deepEqual(
    infixAll.vlans,
    new Map([
      ['e3', tagged(20, 30, 40)],
      ['veth0b', tagged(20, 30, 40)],
      ['br-Q', [{ vid: 20, pvid: false, untagged: true }, { vid: 30, pvid: false, untagged: true }, ...tagged(40)]],
    ]),
  );
});

test('an access port is PVID and egress untagged; a port in no VLAN is left out of the output (Infix containers, recorded)', () => {
  const vlans = parseBridgeVlans(vlanFixture('infix-containers.bridge-vlan.json'));
  assert.deepEqual(vlans.get('veth1b'), [access(6)]);
  assert.deepEqual(vlans.get('e3'), [access(1)]);
  assert.equal(vlans.has('veth3b'), false);
  const links = parseVlanLinks(vlanFixture('infix-containers.ip-link.json'));
  assert.equal(links.find((l) => l.name === 'veth3b')?.master, 'br1', 'veth3b is a port of br1 all the same');
  assert.deepEqual(links.find((l) => l.name === 'br1')?.bridge, { vlanFiltering: true, defaultPvid: 0 });
});

test('ranges (vlanEnd, from -compressvlans) expand to the same VLANs as the expanded output (ifupdown2, recorded)', () => {
  const compressed = parseBridgeVlans(vlanFixture('ifupdown2-bridge4-compressed.bridge-vlan.json'));
  const expanded = parseBridgeVlans(vlanFixture('ifupdown2-bridge4.bridge-vlan.json'));
  assert.deepEqual(compressed, expanded);
  assert.deepEqual(compressed.get('swp_AA_'), [...tagged(1, 2, 3), access(4), ...tagged(5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20)]);
  assert.deepEqual(compressed.get('swp_BB_'), [access(3), ...tagged(40)]);
  assert.deepEqual(compressed.get('bridge'), [access(1)]);
});

test('the older object-keyed shape (iproute2 4.17 and before) and the -d shape with extra keys', () => {
  assert.deepEqual(
    parseBridgeVlans(vlanFixture('ifupdown2-old-object-format.bridge-vlan.json')),
    new Map([
      ['vx-1002', [access(1002)]],
      ['vx-1004', [access(1004)]],
    ]),
  );
  assert.deepEqual(parseBridgeVlans(vlanFixture('iproute2-detail-swp1.bridge-vlan.json')), new Map([['swp1', tagged(10)]]));
});

test('bridge -j vlan show: no VLANs is an empty table; what is not an id or a known shape is refused', () => {
  assert.deepEqual(parseBridgeVlans([]), new Map());
  assert.throws(() => parseBridgeVlans('Cannot find device'), /neither a list nor an object/);
  assert.throws(() => parseBridgeVlans([{ ifname: 'e3', vlans: [{ vlan: 4095 }] }]), /e3 has a VLAN entry that is not an id or range within 1-4094/);
  assert.throws(() => parseBridgeVlans([{ ifname: 'e3', vlans: [{ vlan: 30, vlanEnd: 20 }] }]), /not an id or range/);
  assert.throws(() => parseBridgeVlans([{ vlans: [{ vlan: 1 }] }]), /a port without a name/);
  assert.throws(() => parseBridgeVlans(['br0']), /unexpected entry "br0"/);
});

test('ip -j -d link show (Infix, recorded): bridge VLAN settings and 802.1Q devices, on top of parseLinks', () => {
  const byName = (n: string) => infixAll.links.find((l) => l.name === n);
  assert.deepEqual(byName('br-Q')?.bridge, { vlanFiltering: true, defaultPvid: 0 });
  assert.deepEqual(byName('br-X')?.bridge, { vlanFiltering: false, defaultPvid: 0 });
  assert.deepEqual(byName('e3.10')?.vlan, { id: 10, protocol: '802.1Q', dev: 'e3' });
  assert.deepEqual(byName('br-Q.40')?.vlan, { id: 40, protocol: '802.1Q', dev: 'br-Q' });
  assert.deepEqual(byName('e3'), { name: 'e3', master: 'br-Q', mtu: 1500, up: true, kind: undefined });
  const plain = parseLinks(vlanFixture('infix-interfaces-all.ip-link.json'));
  assert.deepEqual(
    infixAll.links.map(({ bridge: _b, vlan: _v, ...l }) => l),
    plain,
  );
});

test('from nothing: VLAN-aware bridge, uplink a port with the segment tagged; then a tap; planning again is a no-op', () => {
  const bare: State = {
    links: parseVlanLinks(fixture('ip-link-vxlan.json')).filter((l) => !['obr100', 'ovx100', 'ot0123456789ab0'].includes(l.name)),
    vlans: new Map(),
  };
  const want = { segment: 100, uplink: 'veth0', uplinkMtu: 1500 };
  const plan = planVlanSegment(bare.links, bare.vlans, want);
  assert.deepEqual(plan, [
    ['ip', 'link', 'add', 'obrv', 'type', 'bridge', 'vlan_filtering', '1', 'vlan_default_pvid', '0'],
    ['ip', 'link', 'set', 'veth0', 'master', 'obrv', 'up'],
    ['bridge', 'vlan', 'add', 'vid', '100', 'dev', 'veth0'],
    ['ip', 'link', 'set', 'obrv', 'mtu', '1500', 'up'],
  ]);
  const s1 = apply(bare, plan);
  assert.deepEqual(planVlanSegment(s1.links, s1.vlans, want), []);
  const tap = planVlanTap(s1.links, s1.vlans, 'ot0123456789ab1', 100, 1500);
  assert.deepEqual(tap, [
    ['ip', 'tuntap', 'add', 'dev', 'ot0123456789ab1', 'mode', 'tap'],
    ['ip', 'link', 'set', 'ot0123456789ab1', 'master', 'obrv', 'mtu', '1500', 'up'],
    ['bridge', 'vlan', 'add', 'vid', '100', 'dev', 'ot0123456789ab1', 'pvid', 'untagged'],
  ]);
  const s2 = apply(s1, tap);
  assert.deepEqual(planVlanTap(s2.links, s2.vlans, 'ot0123456789ab1', 100, 1500), []);
  assert.deepEqual(planVlanSegment(s2.links, s2.vlans, want), []);
  assert.deepEqual(
    s2.vlans,
    new Map([
      ['veth0', tagged(100)],
      ['ot0123456789ab1', [access(100)]],
    ]),
  );
});

test('the recorded Infix state, br-Q as obrv and e3 the uplink: carried segments need nothing, a new one one command', () => {
  const s = asObrv('interfaces-all', 'br-Q');
  for (const segment of [20, 30, 40]) assert.deepEqual(planVlanSegment(s.links, s.vlans, { segment, uplink: 'e3', uplinkMtu: 1500 }), [], `segment ${segment}`);
  assert.deepEqual(planVlanSegment(s.links, s.vlans, { segment: 50, uplink: 'e3', uplinkMtu: 1500 }), [['bridge', 'vlan', 'add', 'vid', '50', 'dev', 'e3']]);
  assert.deepEqual(planVlanSegment(s.links, s.vlans, { segment: 20, uplink: 'e3', uplinkMtu: 9000 }), [['ip', 'link', 'set', 'obrv', 'mtu', '9000', 'up']]);
  const uplinkDown = s.links.map((l) => (l.name === 'e3' ? { ...l, up: false } : l));
  assert.deepEqual(planVlanSegment(uplinkDown, s.vlans, { segment: 20, uplink: 'e3', uplinkMtu: 1500 }), [['ip', 'link', 'set', 'e3', 'master', 'obrv', 'up']]);
});

test("an 802.1Q device on the uplink for the segment's VLAN is refused: it would take the frames first (recorded e3.10)", () => {
  const s = asObrv('interfaces-all', 'br-Q');
  assert.throws(() => planVlanSegment(s.links, s.vlans, { segment: 10, uplink: 'e3', uplinkMtu: 1500 }), /uplink e3 has the 802\.1Q device e3\.10 for VLAN 10/);
});

test('a bridge that does not filter VLANs is switched to filtering with default PVID 0 (recorded br-X as obrv)', () => {
  const s = asObrv('interfaces-all', 'br-X');
  const plan = planVlanSegment(s.links, s.vlans, { segment: 100, uplink: 'e1', uplinkMtu: 1500 });
  assert.deepEqual(plan, [
    ['ip', 'link', 'set', 'obrv', 'type', 'bridge', 'vlan_filtering', '1', 'vlan_default_pvid', '0'],
    ['ip', 'link', 'set', 'e1', 'master', 'obrv', 'up'],
    ['bridge', 'vlan', 'add', 'vid', '100', 'dev', 'e1'],
  ]);
  const after = apply(s, plan);
  assert.deepEqual(planVlanSegment(after.links, after.vlans, { segment: 100, uplink: 'e1', uplinkMtu: 1500 }), []);
});

test('a VLAN-aware bridge that still puts new ports in VLAN 1, or whose settings were not read, is set again', () => {
  const s = asObrv('interfaces-all', 'br-Q');
  const want = { segment: 20, uplink: 'e3', uplinkMtu: 1500 };
  const setAgain = [['ip', 'link', 'set', 'obrv', 'type', 'bridge', 'vlan_filtering', '1', 'vlan_default_pvid', '0']];
  // Constructed from the recording: br-Q as it would be with the kernel's default PVID left at 1.
  const pvid1 = s.links.map((l) => (l.name === 'obrv' ? { ...l, bridge: { vlanFiltering: true, defaultPvid: 1 } } : l));
  assert.deepEqual(planVlanSegment(pvid1, s.vlans, want), setAgain);
  // Read without -d (parseLinks alone): nothing says the bridge filters, so it is told to.
  const plain = parseLinks(renamed(vlanFixture('infix-interfaces-all.ip-link.json'), { 'br-Q': 'obrv' }));
  assert.deepEqual(planVlanSegment(plain, s.vlans, want), setAgain);
  assert.throws(() => planVlanTap(plain, s.vlans, 'ot0123456789ab1', 20, 1500), /obrv does not filter VLANs \(or its settings were not read with ip -d\)/);
});

test('a segment the uplink has as PVID untagged is made tagged (recorded e3 on br0, VLAN 1)', () => {
  const s = asObrv('containers', 'br0');
  const plan = planVlanSegment(s.links, s.vlans, { segment: 1, uplink: 'e3', uplinkMtu: 1500 });
  assert.deepEqual(plan, [['bridge', 'vlan', 'add', 'vid', '1', 'dev', 'e3']]);
  assert.deepEqual(apply(s, plan).vlans.get('e3'), tagged(1));
  assert.throws(() => planVlanSegment(s.links, s.vlans, { segment: 8, uplink: 'e3', uplinkMtu: 1500 }), /802\.1Q device e3\.8 for VLAN 8/);
});

test('taps: joining from another bridge, PVID changes, stray VLANs (VLAN 1 too) removed, each converging', () => {
  const base = asObrv('containers', 'br1');
  const tap = recordedTap.name;
  const withTap = (master: string, mtu: number, vlans: PortVlan[]): State => ({
    links: [...base.links, { ...recordedTap, master, mtu }],
    vlans: vlans.length ? new Map([...base.vlans, [tap, vlans]]) : base.vlans,
  });
  const cases: { name: string; from: State; segment: number; plan: Command[] }[] = [
    {
      // A port of a bridge that does not filter is still in its default VLAN 1; that goes with the move.
      name: 'from the vxlan bridge obr100, MTU 1450 as recorded',
      from: withTap('obr100', recordedTap.mtu, [access(1)]),
      segment: 6,
      plan: [
        ['ip', 'link', 'set', tap, 'master', 'obrv', 'mtu', '1500', 'up'],
        ['bridge', 'vlan', 'add', 'vid', '6', 'dev', tap, 'pvid', 'untagged'],
      ],
    },
    { name: 'already as wanted', from: withTap('obrv', 1500, [access(6)]), segment: 6, plan: [] },
    {
      name: 'PVID 6 to 7',
      from: withTap('obrv', 1500, [access(6)]),
      segment: 7,
      plan: [
        ['bridge', 'vlan', 'del', 'vid', '6', 'dev', tap],
        ['bridge', 'vlan', 'add', 'vid', '7', 'dev', tap, 'pvid', 'untagged'],
      ],
    },
    {
      name: 'VLAN 1 as PVID, the segment only tagged',
      from: withTap('obrv', 1500, [access(1), ...tagged(6)]),
      segment: 6,
      plan: [
        ['bridge', 'vlan', 'del', 'vid', '1', 'dev', tap],
        ['bridge', 'vlan', 'add', 'vid', '6', 'dev', tap, 'pvid', 'untagged'],
      ],
    },
    {
      name: 'in other VLANs besides',
      from: withTap('obrv', 1500, [access(6), ...tagged(20, 30)]),
      segment: 6,
      plan: [
        ['bridge', 'vlan', 'del', 'vid', '20', 'dev', tap],
        ['bridge', 'vlan', 'del', 'vid', '30', 'dev', tap],
      ],
    },
  ];
  for (const c of cases) {
    const plan = planVlanTap(c.from.links, c.from.vlans, tap, c.segment, 1500);
    assert.deepEqual(plan, c.plan, c.name);
    const after = apply(c.from, plan);
    assert.deepEqual(after.vlans.get(tap), [access(c.segment)], c.name);
    assert.deepEqual(planVlanTap(after.links, after.vlans, tap, c.segment, 1500), [], `${c.name}: again`);
  }
  assert.deepEqual(base.vlans.get('veth1b'), [access(6)], 'the recorded access port is untouched by a tap plan');
});

test('segment ids outside 1-4094 are refused with the reason: such a network is VXLAN-only', () => {
  const s = asObrv('interfaces-all', 'br-Q');
  for (const segment of [0, 4095, 5000, 16777215, 1.5]) {
    assert.match(vlanSegmentProblem(segment) ?? '', /cannot be carried by a vlan host: 802\.1Q VLAN ids are 1-4094.*VXLAN-only/);
    assert.throws(
      () => planVlanSegment(s.links, s.vlans, { segment, uplink: 'e3', uplinkMtu: 1500 }),
      new RegExp(`segment ${segment} cannot be carried by a vlan host`),
    );
    assert.throws(() => planVlanTap(s.links, s.vlans, 'ot0123456789ab1', segment, 1500), /cannot be carried by a vlan host/);
  }
  assert.equal(vlanSegmentProblem(1), undefined);
  assert.equal(vlanSegmentProblem(4094), undefined);
});

test('names taken by another kind of device, uplinks in use elsewhere and bridges not ready are errors, not takeovers', () => {
  const s = asObrv('interfaces-all', 'br-Q');
  const clash: VlanLink[] = [
    { name: 'obrv', mtu: 1500, up: true, kind: 'veth' },
    { name: 'eth0', mtu: 1500, up: true },
  ];
  assert.throws(() => planVlanSegment(clash, new Map(), { segment: 20, uplink: 'eth0', uplinkMtu: 1500 }), /obrv exists and is not a bridge \(veth\)/);
  assert.throws(() => planVlanTap(clash, new Map(), 'ot0123456789ab1', 20, 1500), /obrv is not a bridge here yet/);
  assert.throws(() => planVlanTap(s.links, s.vlans, 'e3.10', 20, 1500), /e3\.10 exists and is not a tap device \(vlan\)/);
  const containers = asObrv('containers', 'br1');
  assert.throws(() => planVlanTap(containers.links, containers.vlans, 'veth1b', 6, 1500), /veth1b exists and is not a tap device \(veth\)/);
  assert.throws(() => planVlanSegment(s.links, s.vlans, { segment: 20, uplink: 'eth9', uplinkMtu: 1500 }), /uplink eth9 does not exist/);
  assert.throws(() => planVlanSegment(s.links, s.vlans, { segment: 20, uplink: 'e2.30', uplinkMtu: 1500 }), /uplink e2\.30 is a port of br-X/);
  assert.throws(() => planVlanSegment(s.links, s.vlans, { segment: 20, uplink: 'br-D', uplinkMtu: 1500 }), /uplink br-D is a bridge/);
  const unfiltered = asObrv('interfaces-all', 'br-X');
  assert.throws(() => planVlanTap(unfiltered.links, unfiltered.vlans, 'ot0123456789ab1', 20, 1500), /obrv does not filter VLANs/);
});

test('a segment leaves the uplink only when no other port is in its VLAN (recorded veth0b in VLAN 20)', () => {
  const s = asObrv('interfaces-all', 'br-Q');
  assert.deepEqual(planVlanSegmentRemoval(s.links, s.vlans, 20, 'e3'), { commands: [], busy: 'VLAN 20 on obrv still has veth0b' });
  const gone = apply(s, [['ip', 'link', 'del', 'veth0b']]);
  const plan = planVlanSegmentRemoval(gone.links, gone.vlans, 20, 'e3');
  assert.deepEqual(plan, { commands: [['bridge', 'vlan', 'del', 'vid', '20', 'dev', 'e3']] });
  const after = apply(gone, plan.commands);
  assert.deepEqual(after.vlans.get('e3'), tagged(30, 40));
  assert.deepEqual(planVlanSegmentRemoval(after.links, after.vlans, 20, 'e3'), { commands: [] });
  assert.deepEqual(planVlanSegmentRemoval(s.links, s.vlans, 50, 'e3'), { commands: [] });
  assert.deepEqual(planVlanSegmentRemoval(s.links, s.vlans, 5000, 'e3'), { commands: [] });
});

test("a host's life: two networks, two guests, one guest moves, a network leaves; every step converges", () => {
  let s: State = {
    links: parseVlanLinks(fixture('ip-link-vxlan.json')).filter((l) => !['obr100', 'ovx100', 'ot0123456789ab0'].includes(l.name)),
    vlans: new Map(),
  };
  const step = (plan: Command[], again: () => Command[]) => {
    s = apply(s, plan);
    assert.deepEqual(again(), []);
  };
  for (const segment of [100, 200])
    step(planVlanSegment(s.links, s.vlans, { segment, uplink: 'veth0', uplinkMtu: 1500 }), () =>
      planVlanSegment(s.links, s.vlans, { segment, uplink: 'veth0', uplinkMtu: 1500 }),
    );
  step(planVlanTap(s.links, s.vlans, 'ota0', 100, 1500), () => planVlanTap(s.links, s.vlans, 'ota0', 100, 1500));
  step(planVlanTap(s.links, s.vlans, 'otb0', 200, 1500), () => planVlanTap(s.links, s.vlans, 'otb0', 200, 1500));
  assert.equal(planVlanSegmentRemoval(s.links, s.vlans, 200, 'veth0').busy, 'VLAN 200 on obrv still has otb0');
  step(planVlanTap(s.links, s.vlans, 'otb0', 100, 1500), () => planVlanTap(s.links, s.vlans, 'otb0', 100, 1500));
  step(planVlanSegmentRemoval(s.links, s.vlans, 200, 'veth0').commands, () => planVlanSegmentRemoval(s.links, s.vlans, 200, 'veth0').commands);
  assert.deepEqual(
    s.vlans,
    new Map([
      ['veth0', tagged(100)],
      ['ota0', [access(100)]],
      ['otb0', [access(100)]],
    ]),
  );
});
