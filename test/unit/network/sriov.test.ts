/**
 * The VF allocator against sysfs trees recorded on machines with SR-IOV NICs (these have none):
 * test/fixtures/network/sriov/README.md says where each comes from. The fixtures keep sysfs's
 * layout with each symlink written as a small file holding its target; one test rebuilds a tree
 * with real symlinks to show both read the same.
 */
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { after, test } from 'node:test';
import fc from '../../helpers/fast-check.ts';
import {
  parseVfLinkInfo,
  readSriovNics,
  SriovError,
  vfCommand,
  VfAllocator,
  type NicAssignment,
  type SriovNic,
  type VfRequest,
} from '../../../src/network/sriov.ts';

const dir = join(import.meta.dirname, '..', '..', 'fixtures', 'network', 'sriov');
const classNet = (model: string) => join(dir, model, 'sys', 'class', 'net');

const i350 = await readSriovNics(classNet('intel-i350-igb'));
const e810 = await readSriovNics(classNet('intel-e810-ice'));
const virtio = await readSriovNics(classNet('virtio-net'));
const nic = (nics: SriovNic[], name: string) => nics.find((n) => n.name === name)!;

const scratch: string[] = [];
after(() => Promise.all(scratch.map((d) => rm(d, { recursive: true, force: true }))));
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'outrig-sriov-'));
  scratch.push(d);
  return d;
}

const req = (instanceId: string, nicIndex = 0, networkSegment = 100, extra: Partial<VfRequest> = {}): VfRequest => ({
  instanceId,
  nicIndex,
  networkSegment,
  mac: `52:54:00:00:${(instanceId.length % 256).toString(16).padStart(2, '0')}:0${nicIndex}`,
  ...extra,
});

function vf(a: NicAssignment) {
  if (a.mode !== 'vf') throw new Error(`expected a VF, got ${a.mode}: ${a.reason}`);
  return a;
}

test('Intel I350 (igb, 4 of 7 VFs enabled): each PF, its VFs, their drivers and netdevs', () => {
  assert.deepEqual(
    i350.map((n) => [n.name, n.kind]),
    [
      ['enp5s0f0', 'physical'],
      ['enp5s0f0v0', 'vf'],
      ['enp5s0f0v1', 'vf'],
      ['enp5s0f0v2', 'vf'],
      ['enp5s0f0v3', 'vf'],
      ['enp5s0f1', 'physical'],
      ['enp5s0f1v0', 'vf'],
      ['enp5s0f1v1', 'vf'],
      ['enp5s0f1v2', 'vf'],
      ['enp5s0f1v3', 'vf'],
    ],
  );
  assert.deepEqual(nic(i350, 'enp5s0f0'), {
    name: 'enp5s0f0',
    kind: 'physical',
    device: '0000:05:00.0',
    pciAddress: '0000:05:00.0',
    driver: 'igb',
    totalVfs: 7,
    numVfs: 4,
    // VF n is at PF + offset 128 + n * stride 4 in routing-id terms: 05:10.0, 05:10.4, 05:11.0, 05:11.4.
    vfs: [
      { index: 0, pciAddress: '0000:05:10.0', driver: 'igbvf', netdev: 'enp5s0f0v0' },
      { index: 1, pciAddress: '0000:05:10.4', driver: 'igbvf', netdev: 'enp5s0f0v1' },
      { index: 2, pciAddress: '0000:05:11.0', driver: 'igbvf', netdev: 'enp5s0f0v2' },
      { index: 3, pciAddress: '0000:05:11.4', driver: 'igbvf', netdev: 'enp5s0f0v3' },
    ],
  });
  assert.deepEqual(
    nic(i350, 'enp5s0f1').vfs.map((v) => v.pciAddress),
    ['0000:05:10.1', '0000:05:10.5', '0000:05:11.1', '0000:05:11.5'],
  );
  // A VF's own netdev is no NIC to take VFs from.
  assert.deepEqual(nic(i350, 'enp5s0f1v2'), {
    name: 'enp5s0f1v2',
    kind: 'vf',
    device: '0000:05:11.1',
    pciAddress: '0000:05:11.1',
    driver: 'igbvf',
    totalVfs: 0,
    numVfs: 0,
    vfs: [],
  });
});

test('Intel E810 (ice, VFs not enabled) and a virtio_net NIC without SR-IOV', () => {
  assert.deepEqual(e810, [
    { name: 'enp162s0f0np0', kind: 'physical', device: '0000:a2:00.0', pciAddress: '0000:a2:00.0', driver: 'ice', totalVfs: 128, numVfs: 0, vfs: [] },
  ]);
  // virtio_net's device is the virtio device, not the PCI function: no PCI address, no SR-IOV.
  assert.deepEqual(virtio, [
    { name: 'eth0', kind: 'physical', device: 'virtio2', driver: 'virtio_net', totalVfs: 0, numVfs: 0, vfs: [] },
    { name: 'lo', kind: 'virtual', totalVfs: 0, numVfs: 0, vfs: [] },
  ]);
});

/** Link files of the fixtures, by where sysfs has links. */
function isLinkFile(rel: string): boolean {
  return /(^|\/)(driver|physfn|virtfn\d+)$/.test(rel) || /\/net\/[^/]+\/device$/.test(rel) || rel.startsWith('sys/class/net/');
}

async function files(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(root, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(relative(root, join(e.parentPath, e.name)));
  return out.sort();
}

test('a tree of real symlinks reads the same as the fixture with link files', async () => {
  for (const model of ['intel-i350-igb', 'intel-e810-ice', 'virtio-net']) {
    const src = join(dir, model);
    const dst = await tempDir();
    let links = 0;
    for (const rel of await files(src)) {
      await mkdir(dirname(join(dst, rel)), { recursive: true });
      if (isLinkFile(rel)) {
        await symlink((await readFile(join(src, rel), 'utf8')).trim(), join(dst, rel));
        links++;
      } else {
        await cp(join(src, rel), join(dst, rel));
      }
    }
    assert.ok(links > 0, model);
    assert.deepEqual(await readSriovNics(join(dst, 'sys', 'class', 'net')), await readSriovNics(classNet(model)), model);
  }
});

test('an interface directory whose device is a plain directory: the PCI address comes from uevent', async () => {
  const root = await tempDir();
  await cp(join(dir, 'intel-e810-ice', 'sys', 'devices', 'pci0000:a2', '0000:a2:00.0'), join(root, 'enp162s0f0np0', 'device'), { recursive: true });
  const [read] = await readSriovNics(root);
  assert.equal((await stat(join(root, 'enp162s0f0np0', 'device'))).isDirectory(), true);
  assert.deepEqual(read, e810[0]);
});

test('a sysfs count that is not a number is an error naming the file; bonding_masters is skipped', async () => {
  const root = await tempDir();
  await mkdir(join(root, 'ens1f0', 'device'), { recursive: true });
  await writeFile(join(root, 'ens1f0', 'device', 'sriov_totalvfs'), 'eight\n');
  await writeFile(join(root, 'bonding_masters'), 'bond0\n');
  await assert.rejects(readSriovNics(root), /ens1f0\/device\/sriov_totalvfs: expected a count, read "eight"/);
  await writeFile(join(root, 'ens1f0', 'device', 'sriov_totalvfs'), '8\n');
  assert.deepEqual(
    (await readSriovNics(root)).map((n) => [n.name, n.totalVfs, n.numVfs]),
    [['ens1f0', 8, 0]],
  );
});

test('parseVfLinkInfo: the recorded virtio NIC has no vfinfo_list, so no VFs', async () => {
  const recorded = JSON.parse(await readFile(join(dir, 'virtio-net', 'ip-j-d-link-show-eth0.json'), 'utf8')) as unknown;
  assert.equal((recorded as { ifname: string }[])[0]!.ifname, 'eth0');
  assert.deepEqual(parseVfLinkInfo(recorded), []);
});

test('parseVfLinkInfo: both shapes iproute2 prints (no recording with VFs was found; these follow ip/ipaddress.c)', () => {
  // iproute2 5.3 and later (print_vfinfo): `address`, `vlan_list` with `{}` for VLAN 0, `rate`.
  const current = [
    {
      ifname: 'enp5s0f0',
      vfinfo_list: [
        {
          vf: 1,
          link_type: 'ether',
          address: '00:00:00:00:00:00',
          broadcast: 'ff:ff:ff:ff:ff:ff',
          vlan_list: [{}],
          rate: { max_tx: 0, min_tx: 0 },
          spoofchk: false,
          link_state: 'disable',
          trust: true,
        },
        {
          vf: 0,
          link_type: 'ether',
          address: '52:54:00:AB:CD:01',
          broadcast: 'ff:ff:ff:ff:ff:ff',
          vlan_list: [{ vlan: 100, qos: 3 }],
          rate: { max_tx: 0, min_tx: 0 },
          spoofchk: true,
          link_state: 'auto',
          trust: false,
          query_rss_en: false,
        },
      ],
    },
  ];
  assert.deepEqual(parseVfLinkInfo(current), [
    { index: 0, mac: '52:54:00:ab:cd:01', vlan: 100, qos: 3, spoofchk: true, trust: false, linkState: 'auto' },
    { index: 1, spoofchk: false, trust: true, linkState: 'disable' },
  ]);
  // Before 5.3: `mac`, and plain `vlan` where the kernel sends no VLAN list; no trust from old drivers.
  const old = [{ ifname: 'eth2', vfinfo_list: [{ vf: 0, mac: '52:54:00:12:34:56', vlan: 7, spoofchk: true, link_state: 'enable' }] }];
  assert.deepEqual(parseVfLinkInfo(old), [{ index: 0, mac: '52:54:00:12:34:56', vlan: 7, spoofchk: true, linkState: 'enable' }]);
  assert.deepEqual(parseVfLinkInfo([{ ifname: 'p0', vfinfo_list: [] }]), []);
});

test('parseVfLinkInfo refuses what is not one link with numbered VFs', () => {
  assert.throws(() => parseVfLinkInfo({ ifname: 'x' }), /did not print a list/);
  assert.throws(() => parseVfLinkInfo([{ ifname: 'a' }, { ifname: 'b' }]), /printed 2 links; expected the PF alone/);
  assert.throws(() => parseVfLinkInfo([{ ifname: 'a', vfinfo_list: {} }]), /a: vfinfo_list is not a list/);
  assert.throws(() => parseVfLinkInfo([{ ifname: 'a', vfinfo_list: [{ address: '52:54:00:00:00:01' }] }]), /a: vfinfo_list entry 0 has no VF number/);
});

test('the VF command: MAC, VLAN = segment, spoof check on, trust off', () => {
  const a = vf(new VfAllocator(i350).allocate({ instanceId: 'i-0a1b', nicIndex: 1, networkSegment: 4094, mac: '52:54:00:AA:BB:CC' }));
  assert.deepEqual(a.commands, [['ip', 'link', 'set', 'enp5s0f0', 'vf', '0', 'mac', '52:54:00:aa:bb:cc', 'vlan', '4094', 'spoofchk', 'on', 'trust', 'off']]);
  assert.deepEqual(
    { ...a, commands: undefined },
    { mode: 'vf', pf: 'enp5s0f0', vfIndex: 0, pciAddress: '0000:05:10.0', vfDriver: 'igbvf', vlan: 4094, commands: undefined },
  );
  assert.deepEqual(vfCommand('enp162s0f0np0', 17, '02:00:00:00:00:01', 1), [
    'ip',
    'link',
    'set',
    'enp162s0f0np0',
    'vf',
    '17',
    'mac',
    '02:00:00:00:00:01',
    'vlan',
    '1',
    'spoofchk',
    'on',
    'trust',
    'off',
  ]);
  assert.throws(() => vfCommand('enp5s0f0', 0, '02:00:00:00:00:01', 4095), /segment 4095 cannot be a VF's VLAN \(802\.1Q VLAN ids are 1-4094\)/);
});

test('allocation spreads over both I350 ports until all 8 VFs are taken, then falls back with the reason', () => {
  const a = new VfAllocator([...i350, ...virtio]);
  assert.equal(a.freeVfs(), 8);
  const got = Array.from({ length: 8 }, (_, i) => vf(a.allocate(req(`i-${i}`))));
  assert.deepEqual(
    got.map((g) => `${g.pf}/${g.vfIndex}`),
    ['enp5s0f0/0', 'enp5s0f1/0', 'enp5s0f0/1', 'enp5s0f1/1', 'enp5s0f0/2', 'enp5s0f1/2', 'enp5s0f0/3', 'enp5s0f1/3'],
  );
  assert.equal(new Set(got.map((g) => g.pciAddress)).size, 8);
  assert.equal(a.freeVfs(), 0);
  assert.deepEqual(a.allocate(req('i-8')), {
    mode: 'tap',
    reason: 'all 4 VFs of enp5s0f0 are assigned; all 4 VFs of enp5s0f1 are assigned; eth0 has no SR-IOV (no sriov_totalvfs; driver virtio_net)',
  });
  // Asked for a port by name, the reason is that port's.
  assert.deepEqual(a.allocate(req('i-9', 0, 100, { pf: 'enp5s0f1' })), { mode: 'tap', reason: 'all 4 VFs of enp5s0f1 are assigned' });
  // Released VFs are handed out again, lowest first.
  a.release('i-5');
  a.release('i-1');
  assert.equal(a.freeVfs('enp5s0f1'), 2);
  assert.deepEqual([vf(a.allocate(req('i-10'))).vfIndex, vf(a.allocate(req('i-11'))).vfIndex], [0, 2]);
});

test('the macvtap fallback sits on a physical NIC with the network as its VLAN, and says why', () => {
  const a = new VfAllocator([...e810, ...virtio], [], { fallback: 'macvtap' });
  assert.deepEqual(a.allocate(req('i-m', 2, 42)), {
    mode: 'macvtap',
    lower: 'enp162s0f0np0',
    vlan: 42,
    reason:
      'enp162s0f0np0 has no VFs enabled (sriov_numvfs is 0 of 128; `echo 128 > /sys/class/net/enp162s0f0np0/device/sriov_numvfs` enables them); eth0 has no SR-IOV (no sriov_totalvfs; driver virtio_net)',
  });
  // Only virtual devices: nothing for a macvtap to sit on.
  assert.deepEqual(
    new VfAllocator(
      virtio.filter((n) => n.kind === 'virtual'),
      [],
      { fallback: 'macvtap' },
    ).allocate(req('i-v')),
    {
      mode: 'tap',
      reason: 'this host has no physical NIC (only lo); a macvtap needs a physical NIC to sit on',
    },
  );
});

test('a segment above 4094 cannot be a VF VLAN: the NIC gets a tap, and a held VF cannot be moved to it', () => {
  const a = new VfAllocator(i350, [], { fallback: 'macvtap' });
  const t = a.allocate(req('i-x', 0, 5000));
  assert.equal(t.mode, 'tap');
  assert.match(
    t.mode === 'tap' ? t.reason : '',
    /^segment 5000 is above 4094, the last 802\.1Q VLAN id: a VF joins a network only by the VLAN tag its NIC adds/,
  );
  assert.equal(a.freeVfs(), 8, 'the tap took no VF');
  vf(a.allocate(req('i-y', 0, 100)));
  assert.throws(
    () => a.allocate(req('i-y', 0, 70000)),
    /i-y NIC 0 has VF 0 of enp5s0f0, which cannot carry segment 70000 \(above 4094, the last VLAN id\); release it first/,
  );
});

test('allocation is idempotent per instance and NIC, fallbacks included', () => {
  const a = new VfAllocator(i350);
  const first = a.allocate(req('i-a', 0));
  const second = a.allocate(req('i-a', 1));
  assert.deepEqual(a.allocate(req('i-a', 0)), first);
  assert.deepEqual(a.allocate(req('i-a', 1)), second);
  assert.notDeepEqual(vf(first).pciAddress, vf(second).pciAddress);
  assert.equal(a.freeVfs(), 6);
  // The same VF with the network or MAC it has now: the commands follow the request.
  assert.deepEqual(vf(a.allocate(req('i-a', 0, 200))).commands[0]!.slice(9, 10), ['200']);
  assert.equal(a.freeVfs(), 6);
  assert.throws(
    () => a.allocate(req('i-a', 0, 100, { pf: 'enp5s0f1' })),
    /i-a NIC 0 already has VF 0 of enp5s0f0; release it before asking for one of enp5s0f1/,
  );

  const full = new VfAllocator(virtio);
  const t = full.allocate(req('i-t', 3));
  assert.deepEqual(full.allocate(req('i-t', 3)), t);
  assert.deepEqual(full.holdings(), [{ instanceId: 'i-t', nicIndex: 3, mode: 'tap', reason: 'eth0 has no SR-IOV (no sriov_totalvfs; driver virtio_net)' }]);
});

test('release frees everything the instance held, VFs and fallbacks, and nothing of others', () => {
  const a = new VfAllocator(i350);
  for (let n = 0; n < 3; n++) a.allocate(req('i-big', n));
  a.allocate(req('i-other', 0));
  for (let i = 0; i < 4; i++) a.allocate(req(`i-fill${i}`));
  const fallback = a.allocate(req('i-big', 3));
  assert.equal(fallback.mode, 'tap');
  assert.equal(a.freeVfs(), 0);
  const freed = a.release('i-big');
  assert.deepEqual(
    freed.map((h) => [h.nicIndex, h.mode]),
    [
      [0, 'vf'],
      [1, 'vf'],
      [2, 'vf'],
      [3, 'tap'],
    ],
  );
  assert.equal(a.freeVfs(), 3);
  assert.deepEqual(
    a.holdings().map((h) => h.instanceId),
    ['i-fill0', 'i-fill1', 'i-fill2', 'i-fill3', 'i-other'],
  );
  assert.deepEqual(a.release('i-big'), [], 'releasing twice frees nothing more');
  // One NIC of an instance.
  a.allocate(req('i-two', 0));
  a.allocate(req('i-two', 1));
  assert.deepEqual(
    a.release('i-two', 1).map((h) => h.nicIndex),
    [1],
  );
  assert.deepEqual(
    a
      .holdings()
      .filter((h) => h.instanceId === 'i-two')
      .map((h) => h.nicIndex),
    [0],
  );
});

test('held VFs survive a restart: a new allocator starts from them and never hands them out again', () => {
  const a = new VfAllocator(i350);
  for (let i = 0; i < 5; i++) a.allocate(req(`i-${i}`, i % 2));
  const b = new VfAllocator(i350, a.heldVfs());
  assert.deepEqual(b.heldVfs(), a.heldVfs());
  assert.equal(b.freeVfs(), 3);
  const taken = new Set(a.heldVfs().map((h) => `${h.pf}/${h.vfIndex}`));
  for (let i = 5; i < 8; i++) {
    const g = vf(b.allocate(req(`i-${i}`)));
    assert.equal(taken.has(`${g.pf}/${g.vfIndex}`), false);
  }
  // Asked again, a held VF comes back with commands for the request (the store kept no MAC or network).
  assert.deepEqual(vf(b.allocate(req('i-0', 0))).vfIndex, a.heldVfs()[0]!.vfIndex);
});

test('held VFs that do not fit this host are refused with who holds what', () => {
  assert.throws(
    () => new VfAllocator(i350, [{ instanceId: 'i-a', nicIndex: 0, pf: 'ens9', vfIndex: 0 }]),
    /i-a NIC 0 holds VF 0 of ens9, which this host does not have/,
  );
  assert.throws(
    () => new VfAllocator(i350, [{ instanceId: 'i-a', nicIndex: 0, pf: 'enp5s0f0', vfIndex: 6 }]),
    /i-a NIC 0 holds VF 6 of enp5s0f0, which has VFs 0, 1, 2, 3 enabled/,
  );
  assert.throws(
    () =>
      new VfAllocator(i350, [
        { instanceId: 'i-a', nicIndex: 0, pf: 'enp5s0f0', vfIndex: 2 },
        { instanceId: 'i-b', nicIndex: 1, pf: 'enp5s0f0', vfIndex: 2 },
      ]),
    /VF 2 of enp5s0f0 is held by both i-a NIC 0 and i-b NIC 1/,
  );
  assert.throws(
    () =>
      new VfAllocator(i350, [
        { instanceId: 'i-a', nicIndex: 0, pf: 'enp5s0f0', vfIndex: 0 },
        { instanceId: 'i-a', nicIndex: 0, pf: 'enp5s0f1', vfIndex: 0 },
      ]),
    /i-a NIC 0 holds two VFs/,
  );
});

test('impossible requests get errors that say what is wrong, and how to enable VFs', () => {
  const a = new VfAllocator([...i350, ...e810, ...virtio]);
  const err = (r: VfRequest): SriovError => {
    try {
      a.allocate(r);
    } catch (e) {
      assert.ok(e instanceof SriovError);
      return e;
    }
    assert.fail('no error');
  };
  assert.match(err(req('i-a', 0, 100, { pf: 'ens9' })).message, /^no interface named ens9 on this host \(its NICs: enp162s0f0np0, enp5s0f0, enp5s0f1, eth0\)$/);
  const disabled = err(req('i-a', 0, 100, { pf: 'enp162s0f0np0' }));
  assert.equal(
    disabled.message,
    'enp162s0f0np0 can have up to 128 VFs but none are enabled (sriov_numvfs is 0): enable them with `echo 128 > /sys/class/net/enp162s0f0np0/device/sriov_numvfs` (any number from 1 to 128)',
  );
  assert.equal(disabled.command, 'echo 128 > /sys/class/net/enp162s0f0np0/device/sriov_numvfs');
  assert.equal(err(req('i-a', 0, 100, { pf: 'eth0' })).message, 'eth0 has no SR-IOV (no sriov_totalvfs; driver virtio_net)');
  assert.match(err(req('i-a', 0, 100, { pf: 'lo' })).message, /^lo is a virtual device, not a NIC/);
  assert.match(err(req('i-a', 0, 100, { pf: 'enp5s0f0v1' })).message, /^enp5s0f0v1 is itself a VF's network device/);
  assert.match(err({ ...req('i-a'), mac: '01:00:5e:00:00:01' }).message, /01:00:5e:00:00:01 is a multicast address; a VF needs a unicast MAC/);
  assert.match(err({ ...req('i-a'), mac: '52:54:00:00:01' }).message, /"52:54:00:00:01" is not a MAC address/);
  assert.match(err({ ...req('i-a'), mac: '00:00:00:00:00:00' }).message, /00:00:00:00:00:00 is no MAC/);
  assert.match(err(req('i-a', 10)).message, /NIC index 10 is out of range \(0-9\)/);
  assert.match(err(req('i-a', 0, 0)).message, /segment 0 is out of range \(1-16777215\)/);
  assert.match(err(req('', 0)).message, /needs an instance id/);
  // None of the refused requests took anything.
  assert.deepEqual(a.holdings(), []);
  assert.equal(a.freeVfs(), 8);
});

type Op = { op: 'alloc'; inst: number; nic: number; segment: number; pf?: string } | { op: 'release'; inst: number; nic?: number };

test('no VF is ever held twice, under any sequence of allocations and releases', () => {
  const nics = [...i350, ...e810, ...virtio];
  const total = 8;
  const op: fc.Arbitrary<Op> = fc.oneof(
    {
      weight: 3,
      arbitrary: fc.record(
        {
          op: fc.constant('alloc' as const),
          inst: fc.integer({ min: 0, max: 7 }),
          nic: fc.integer({ min: 0, max: 2 }),
          segment: fc.oneof(fc.integer({ min: 1, max: 4094 }), fc.integer({ min: 4095, max: 16_777_215 })),
          pf: fc.constantFrom('enp5s0f0', 'enp5s0f1'),
        },
        { requiredKeys: ['op', 'inst', 'nic', 'segment'] },
      ),
    },
    {
      weight: 1,
      arbitrary: fc.record(
        { op: fc.constant('release' as const), inst: fc.integer({ min: 0, max: 7 }), nic: fc.integer({ min: 0, max: 2 }) },
        { requiredKeys: ['op', 'inst'] },
      ),
    },
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), fc.constantFrom('tap' as const, 'macvtap' as const), (ops, fallback) => {
      const a = new VfAllocator(nics, [], { fallback });
      for (const o of ops) {
        const instanceId = `i-${o.inst}`;
        if (o.op === 'release') {
          const before = a.holdings().filter((h) => h.instanceId === instanceId && (o.nic === undefined || h.nicIndex === o.nic));
          const freeBefore = a.freeVfs();
          assert.deepEqual(a.release(instanceId, o.nic), before);
          assert.equal(a.freeVfs(), freeBefore + before.filter((h) => h.mode === 'vf').length);
        } else {
          const r: VfRequest = {
            instanceId,
            nicIndex: o.nic,
            networkSegment: o.segment,
            mac: `52:54:00:00:0${o.inst}:0${o.nic}`,
            ...(o.pf ? { pf: o.pf } : {}),
          };
          const held = a.holdings().find((h) => h.instanceId === instanceId && h.nicIndex === o.nic);
          const freeBefore = o.pf ? a.freeVfs(o.pf) : a.freeVfs();
          let got: NicAssignment;
          try {
            got = a.allocate(r);
          } catch (e) {
            // The only refusals here: a held VF or macvtap asked onto a VXLAN-only segment, or onto another port.
            assert.ok(e instanceof SriovError);
            assert.ok(held && held.mode !== 'tap', (e as Error).message);
            continue;
          }
          if (held)
            assert.deepEqual(
              a.holdings().find((h) => h.instanceId === instanceId && h.nicIndex === o.nic),
              held,
              'asking again changes nothing',
            );
          else if (got.mode === 'vf') assert.ok(o.segment <= 4094);
          // A fallback for a VLAN-sized segment only when the asked-for ports had no free VF.
          else if (o.segment <= 4094) assert.equal(freeBefore, 0, JSON.stringify(got));
          assert.deepEqual(a.allocate(r), got, 'idempotent');
        }
        const vfs = a.heldVfs().map((h) => `${h.pf}/${h.vfIndex}`);
        assert.equal(new Set(vfs).size, vfs.length, `a VF held twice: ${vfs.join(' ')}`);
        assert.equal(a.freeVfs() + vfs.length, total);
        for (const h of a.heldVfs()) assert.ok(nic(nics, h.pf).vfs.some((v) => v.index === h.vfIndex));
      }
    }),
    { numRuns: 300 },
  );
});
