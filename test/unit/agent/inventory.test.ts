import assert from 'node:assert/strict';
import { cpus, totalmem } from 'node:os';
import { test } from 'node:test';
import { readInventory } from '../../../src/agent/inventory.ts';
import { countCpuList, isVirtualBlockDevice, parseCpuinfo, parseMemTotalMiB } from '../../../src/agent/inventory-parse.ts';
import type { KvmProbeResult } from '../../../src/hypervisor/kvm-probe.ts';

const CPUINFO = `processor	: 0
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz
physical id	: 0
cpu cores	: 2
flags		: fpu vme de vmx aes avx avx2 hypervisor lm

processor	: 1
model name	: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz
physical id	: 0
cpu cores	: 2
flags		: fpu vme de vmx aes avx avx2 hypervisor lm

processor	: 2
model name	: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz
physical id	: 1
cpu cores	: 2
flags		: fpu vme de vmx aes avx avx2 hypervisor lm

processor	: 3
model name	: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz
physical id	: 1
cpu cores	: 2
flags		: fpu vme de vmx aes avx avx2 hypervisor lm
`;

test('cpuinfo: model, count, sockets, cores and the flags that matter', () => {
  assert.deepEqual(parseCpuinfo(CPUINFO), {
    model: 'Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz',
    count: 4,
    sockets: 2,
    coresPerSocket: 2,
    flags: ['aes', 'avx', 'avx2', 'hypervisor', 'lm', 'vmx'],
  });
});

test('meminfo and cpulists', () => {
  assert.equal(parseMemTotalMiB('MemTotal:       24576000 kB\nMemFree: 1 kB'), 24000);
  assert.equal(parseMemTotalMiB('Node 1 MemTotal:  1048576 kB'), 1024);
  assert.throws(() => parseMemTotalMiB('nothing'), /MemTotal/);
  assert.equal(countCpuList('0-3,8,10-11\n'), 7);
  assert.ok(isVirtualBlockDevice('loop0') && isVirtualBlockDevice('zram0') && !isVirtualBlockDevice('nvme0n1') && !isVirtualBlockDevice('vda'));
});

test('inventory read from this machine agrees with what Node sees', async () => {
  const kvm: KvmProbeResult = { usable: false, reason: 'test', bootId: 'x', qemuVersion: 'QEMU 7.2', checkedAt: new Date().toISOString(), durationMs: 1 };
  const inv = await readInventory(kvm);
  assert.equal(inv.cpu.count, cpus().length);
  assert.ok(Math.abs(inv.memory.totalMiB - totalmem() / 1048576) < 2);
  assert.ok(inv.numa.length >= 1, 'at least one NUMA node');
  assert.equal(
    inv.numa.reduce((n, x) => n + countCpuList(x.cpus), 0),
    cpus().length,
  );
  assert.ok(inv.nics.every((n) => n.name !== 'lo'));
  assert.ok(inv.disks.every((d) => !isVirtualBlockDevice(d.name)));
  assert.equal(inv.accel, 'tcg');
  assert.equal(inv.kvm.reason, 'test');
});
