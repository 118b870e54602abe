/** Reads host inventory from /proc and /sys. */
import { existsSync } from 'node:fs';
import { readFile, readdir, readlink } from 'node:fs/promises';
import { hostname, release } from 'node:os';
import { basename, join } from 'node:path';
import type { KvmProbeResult } from '../hypervisor/index.ts';
import type { Inventory } from '../model/host.ts';
import { countCpuList, isVirtualBlockDevice, parseCpuinfo, parseMemTotalMiB } from './inventory-parse.ts';

async function read(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

async function driverOf(devicePath: string): Promise<string> {
  try {
    return basename(await readlink(join(devicePath, 'driver')));
  } catch {
    return '';
  }
}

async function list(dir: string): Promise<string[]> {
  return existsSync(dir) ? (await readdir(dir)).sort() : [];
}

export async function readInventory(kvm: KvmProbeResult, sys = '/sys', proc = '/proc'): Promise<Inventory> {
  const cpu = parseCpuinfo((await read(join(proc, 'cpuinfo'))) ?? '');
  const totalMiB = parseMemTotalMiB((await read(join(proc, 'meminfo'))) ?? '');

  const numa: Inventory['numa'] = [];
  for (const d of await list(join(sys, 'devices/system/node'))) {
    const m = /^node(\d+)$/.exec(d);
    if (!m) continue;
    const base = join(sys, 'devices/system/node', d);
    const cpus = (await read(join(base, 'cpulist'))) ?? '';
    numa.push({ id: Number(m[1]), cpus, memoryMiB: parseMemTotalMiB((await read(join(base, 'meminfo'))) ?? 'MemTotal: 0 kB') });
  }

  const nics: Inventory['nics'] = [];
  for (const n of await list(join(sys, 'class/net'))) {
    if (n === 'lo') continue;
    const base = join(sys, 'class/net', n);
    const speed = Number(await read(join(base, 'speed')));
    nics.push({
      name: n,
      mac: (await read(join(base, 'address'))) ?? '',
      state: (await read(join(base, 'operstate'))) ?? 'unknown',
      mtu: Number(await read(join(base, 'mtu'))) || 0,
      driver: await driverOf(join(base, 'device')),
      speedMbps: Number.isFinite(speed) && speed > 0 ? speed : null,
    });
  }

  const disks: Inventory['disks'] = [];
  for (const b of await list(join(sys, 'block'))) {
    if (isVirtualBlockDevice(b)) continue;
    const base = join(sys, 'block', b);
    disks.push({
      name: b,
      sizeBytes: Number(await read(join(base, 'size'))) * 512 || 0,
      rotational: (await read(join(base, 'queue/rotational'))) === '1',
      model: (await read(join(base, 'device/model'))) ?? (await read(join(base, 'device/vendor'))) ?? '',
    });
  }

  const pci: Inventory['pci'] = [];
  for (const a of await list(join(sys, 'bus/pci/devices'))) {
    const base = join(sys, 'bus/pci/devices', a);
    pci.push({
      address: a,
      vendor: (await read(join(base, 'vendor'))) ?? '',
      device: (await read(join(base, 'device'))) ?? '',
      class: (await read(join(base, 'class'))) ?? '',
      driver: await driverOf(base),
    });
  }

  return {
    hostname: hostname(),
    cpu: { ...cpu, count: cpu.count || numa.reduce((n, x) => n + countCpuList(x.cpus), 0) },
    memory: { totalMiB },
    numa,
    nics,
    disks,
    pci,
    kvm: { usable: kvm.usable, reason: kvm.reason, checkedAt: kvm.checkedAt },
    accel: kvm.usable ? 'kvm' : 'tcg',
    os: { kernel: release(), qemu: kvm.qemuVersion },
  };
}
