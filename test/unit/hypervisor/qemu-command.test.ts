import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildQemuArgs, macFor, type VmSpec } from '../../../src/hypervisor/qemu-command.ts';

const spec: VmSpec = {
  id: 'i-0123456789abcdef',
  name: 'web1',
  vcpus: 2,
  memoryMiB: 512,
  kernel: '/k',
  initrd: '/i',
  cmdline: 'console=ttyS0',
  accel: 'tcg',
  forwards: [
    { guestPort: 80, hostAddress: '127.0.0.1', hostPort: 8080 },
    { guestPort: 22, hostAddress: '127.0.0.1', hostPort: 2222 },
  ],
  mac: '52:54:00:00:00:01',
  disks: [],
  owner: { generation: 1, restartSeq: 0 },
};
const paths = { dir: '/d', pidfile: '/d/qemu.pid', qmpSocket: '/d/q,mp.sock', inspectSocket: '/d/inspect.sock', serialLog: '/d/serial.log' };

function opt(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));
}

test('command line carries the spec: accelerator, cpu, size, forwards, detached with pidfile and QMP', () => {
  const a = buildQemuArgs(spec, paths);
  assert.deepEqual(opt(a, '-machine'), ['q35,accel=tcg']);
  assert.deepEqual(opt(a, '-cpu'), ['max']);
  assert.deepEqual(opt(a, '-smp'), ['2']);
  assert.deepEqual(opt(a, '-m'), ['512M']);
  assert.match(opt(a, '-netdev')[0]!, /hostfwd=tcp:127\.0\.0\.1:8080-:80,hostfwd=tcp:127\.0\.0\.1:2222-:22/);
  assert.ok(a.includes('-daemonize'));
  assert.deepEqual(opt(a, '-pidfile'), ['/d/qemu.pid']);
  // A comma in a path must be doubled or QEMU would split the option there.
  assert.deepEqual(opt(a, '-qmp'), ['unix:/d/q,,mp.sock,server=on,wait=off', 'unix:/d/inspect.sock,server=on,wait=off']);
  assert.match(opt(a, '-append')[0]!, /outrig\.name=web1/);
});

test('the management NIC is restricted: the guest can open no connection through it, the host forwards into it', () => {
  const netdev = opt(buildQemuArgs(spec, paths), '-netdev')[0]!;
  assert.equal(netdev, 'user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=tcp:127.0.0.1:2222-:22');
});

test('memory: plain -m without portions; with portions one backend and guest NUMA node per tier, bound where the tier has a host node', () => {
  const plain = buildQemuArgs(spec, paths);
  assert.deepEqual(opt(plain, '-object'), []);
  assert.deepEqual(opt(plain, '-numa'), []);
  const a = buildQemuArgs(
    {
      ...spec,
      memory: [
        { tier: 'local', sizeMiB: 384, hostNode: 0 },
        { tier: 'cxl', sizeMiB: 128 },
      ],
    },
    paths,
  );
  assert.deepEqual(opt(a, '-m'), ['512M']);
  assert.deepEqual(opt(a, '-object'), ['memory-backend-ram,id=mem-0-local,size=384M,host-nodes=0,policy=bind', 'memory-backend-ram,id=mem-1-cxl,size=128M']);
  // The vCPUs sit on the first (local) node; the pooled node is memory only, as a CPU-less node on real hardware.
  assert.deepEqual(opt(a, '-numa'), ['node,nodeid=0,cpus=0-1,memdev=mem-0-local', 'node,nodeid=1,memdev=mem-1-cxl']);
  assert.throws(() => buildQemuArgs({ ...spec, memory: [{ tier: 'local', sizeMiB: 256 }] }, paths), /add up to 256 MiB, not the VM's 512 MiB/);
});

test('KVM gets the host CPU model', () => {
  const a = buildQemuArgs({ ...spec, accel: 'kvm' }, paths);
  assert.deepEqual(opt(a, '-machine'), ['q35,accel=kvm']);
  assert.deepEqual(opt(a, '-cpu'), ['host']);
});

test('MACs are stable per id, locally administered and unicast', () => {
  assert.equal(macFor('i-1'), macFor('i-1'));
  assert.notEqual(macFor('i-1'), macFor('i-2'));
  assert.match(macFor('i-1'), /^52:54:00(:[0-9a-f]{2}){3}$/);
});

test('network NICs after the management NIC: a tap as virtio-net with its MTU, a virtual function as vfio-pci', () => {
  const a = buildQemuArgs(
    {
      ...spec,
      nics: [
        { mode: 'tap', tap: 'ot0123456789ab0', mac: '0a:58:0a:0a:00:02', mtu: 1450, reason: 'carried by VXLAN' },
        { mode: 'vf', pciAddress: '0000:03:10.1', mac: '0a:58:0a:0a:00:03', reason: 'VF 0 of eth1' },
      ],
    },
    paths,
  );
  assert.deepEqual(opt(a, '-netdev').slice(1), ['tap,id=nic0,ifname=ot0123456789ab0,script=no,downscript=no']);
  assert.deepEqual(
    opt(a, '-device').filter((d) => /nic\d/.test(d)),
    ['virtio-net-pci,netdev=nic0,mac=0a:58:0a:0a:00:02,host_mtu=1450,romfile=', 'vfio-pci,host=0000:03:10.1,id=nic1'],
  );
  // The management NIC comes first, so the guest names the network NICs eth1, eth2.
  assert.ok(a.indexOf('virtio-net-pci,netdev=net0,mac=52:54:00:00:00:01,romfile=') < a.indexOf('vfio-pci,host=0000:03:10.1,id=nic1'));
});
