/** Builds the QEMU command line for an instance. Pure: no I/O, so it is tested directly. */
import type { BlockdevNbdOptions, DeviceOptions } from './qmp-commands.ts';

export type Accel = 'kvm' | 'tcg';

export interface PortForward {
  guestPort: number;
  hostAddress: string;
  hostPort: number;
}

/** A volume plugged into the VM: an NBD export on a UNIX socket, on its own PCIe root port. */
export interface VmDisk {
  volumeId: string;
  socket: string;
  export: string;
  /** The firmware boots from this disk. */
  boot: boolean;
  /** Index of the PCIe root port it sits on (0..ROOT_PORTS-1). */
  port: number;
  /** Opaque to the driver: the owner's name for the request that plugged it in. */
  tag?: string;
}

/** Spare PCIe root ports, so volumes can be plugged and unplugged while the VM runs. */
export const ROOT_PORTS = 8;

/** A share of guest memory from one tier: its own memory backend and guest NUMA node. */
interface VmMemoryPortion {
  tier: string;
  sizeMiB: number;
  /** The host NUMA node to bind it to, where the host has one for the tier. */
  hostNode?: number;
}

/**
 * A guest NIC on a network: a tap on the network's bridge (virtio-net), or a virtual function of
 * the host's NIC handed to the guest whole (vfio-pci). `reason` says which, and why not the other.
 */
export type VmNetNic =
  | {
      mode: 'tap';
      tap: string;
      mac: string;
      /** Told to the guest's driver (virtio-net host_mtu): the network's MTU after VXLAN's headers. */
      mtu: number;
      reason: string;
    }
  | {
      mode: 'vf';
      /** The VF's PCI address; its MAC is set on the physical function before the guest starts. */
      pciAddress: string;
      mac: string;
      reason: string;
    };

export interface VmSpec {
  id: string;
  name: string;
  vcpus: number;
  memoryMiB: number;
  /** Absent (VMs started before memory pools): plain `-m`. The first portion carries the vCPUs. */
  memory?: VmMemoryPortion[];
  /** Direct kernel boot: local paths of the verified image files; absent to boot from a disk. */
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  disks: VmDisk[];
  accel: Accel;
  forwards: PortForward[];
  /** Printed on the serial console when the guest is ready; optional. */
  readyMarker?: string;
  mac: string;
  /** NICs on Outrig networks: taps made by the agent, opened by name. */
  nics?: VmNetNic[];
  /** Opaque to the driver: what the owner (the agent) needs to know about this VM after a restart. */
  owner: { generation: number; restartSeq: number; released?: { volumeId: string; tag?: string }[] };
}

export interface VmPaths {
  dir: string;
  pidfile: string;
  qmpSocket: string;
  /** A second QMP monitor for operators and tests: QEMU serves one client per monitor, and the agent holds the first. */
  inspectSocket: string;
  serialLog: string;
}

/** `-cpu host` only makes sense under KVM; TCG emulates the richest model it has. */
export function cpuModelFor(accel: Accel): string {
  return accel === 'kvm' ? 'host' : 'max';
}

/** QEMU option values separate sub-options with commas; a literal comma is doubled. */
function qemuOptValue(v: string): string {
  return v.replace(/,/g, ',,');
}

export function diskNode(volumeId: string): string {
  return `vol-${volumeId}`;
}

export function diskDevice(volumeId: string): string {
  return `disk-${volumeId}`;
}

/** QMP blockdev-add arguments (also the -blockdev JSON) for a volume. */
export function blockdevOptions(d: VmDisk): BlockdevNbdOptions {
  // reconnect-delay: if diskd restarts, the guest's I/O waits for it instead of failing.
  return { driver: 'nbd', 'node-name': diskNode(d.volumeId), server: { type: 'unix', path: d.socket }, export: d.export, 'reconnect-delay': 30 };
}

/** QMP device_add arguments for a volume's virtio-blk device. */
export function diskDeviceOptions(d: VmDisk): DeviceOptions {
  const o: DeviceOptions = {
    driver: 'virtio-blk-pci',
    drive: diskNode(d.volumeId),
    id: diskDevice(d.volumeId),
    bus: `rp${d.port}`,
    serial: d.volumeId.slice(0, 20),
  };
  if (d.boot) o.bootindex = 0;
  return o;
}

function deviceArg(o: Record<string, unknown>): string {
  return Object.entries(o)
    .map(([k, v]) => (k === 'driver' ? String(v) : `${k}=${qemuOptValue(String(v))}`))
    .join(',');
}

/** One memory backend and guest NUMA node per portion, so the guest sees each tier as a node of its own. */
function memoryArgs(spec: Pick<VmSpec, 'memoryMiB' | 'memory' | 'vcpus'>): string[] {
  if (!spec.memory?.length) return ['-m', `${spec.memoryMiB}M`];
  const total = spec.memory.reduce((n, p) => n + p.sizeMiB, 0);
  if (total !== spec.memoryMiB) throw new Error(`memory portions add up to ${total} MiB, not the VM's ${spec.memoryMiB} MiB`);
  const out = ['-m', `${total}M`];
  spec.memory.forEach((p, i) => {
    const bind = p.hostNode === undefined ? '' : `,host-nodes=${p.hostNode},policy=bind`;
    out.push('-object', `memory-backend-ram,id=mem-${i}-${qemuOptValue(p.tier)},size=${p.sizeMiB}M${bind}`);
    out.push('-numa', `node,nodeid=${i}${i === 0 ? `,cpus=0-${spec.vcpus - 1}` : ''},memdev=mem-${i}-${qemuOptValue(p.tier)}`);
  });
  return out;
}

export function buildQemuArgs(spec: VmSpec, paths: VmPaths): string[] {
  const hostfwd = spec.forwards.map((f) => `,hostfwd=tcp:${f.hostAddress}:${f.hostPort}-:${f.guestPort}`).join('');
  const boot = spec.kernel ? ['-kernel', spec.kernel, '-initrd', spec.initrd ?? '', '-append', `${spec.cmdline ?? ''} outrig.name=${spec.name}`] : [];
  const ports: string[] = [];
  for (let i = 0; i < ROOT_PORTS; i++) ports.push('-device', `pcie-root-port,id=rp${i},chassis=${i + 1},slot=${i + 1}`);
  const disks = spec.disks.flatMap((d) => ['-blockdev', JSON.stringify(blockdevOptions(d)), '-device', deviceArg(diskDeviceOptions(d))]);
  return [
    '-name',
    `guest=${qemuOptValue(spec.name)},process=outrig-${spec.id},debug-threads=on`,
    '-machine',
    `q35,accel=${spec.accel}`,
    '-cpu',
    cpuModelFor(spec.accel),
    '-smp',
    String(spec.vcpus),
    ...memoryArgs(spec),
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-no-reboot',
    ...boot,
    // The guest finds its name here too when it boots from a disk (no kernel command line).
    '-smbios',
    `type=1,manufacturer=Outrig,product=Outrig VM,serial=${qemuOptValue(spec.name)}`,
    ...ports,
    ...disks,
    // append=on keeps the console history across restarts of the same instance.
    '-chardev',
    `file,id=serial0,path=${qemuOptValue(paths.serialLog)},append=on`,
    '-serial',
    'chardev:serial0',
    // restrict=on: the guest initiates nothing through the management NIC. Without it, 10.0.2.2 is the
    // host's loopback (other guests' forwarded ports, the controller's API) and the NAT reaches every
    // network the host does. The host's forwards into the guest (hostfwd) keep working.
    '-netdev',
    `user,id=net0,restrict=on${hostfwd}`,
    '-device',
    `virtio-net-pci,netdev=net0,mac=${spec.mac},romfile=`,
    // After the management NIC on the command line, so the guest names them eth1, eth2, ...
    ...(spec.nics ?? []).flatMap((n, i) =>
      n.mode === 'vf'
        ? ['-device', `vfio-pci,host=${n.pciAddress},id=nic${i}`]
        : [
            '-netdev',
            `tap,id=nic${i},ifname=${n.tap},script=no,downscript=no`,
            '-device',
            `virtio-net-pci,netdev=nic${i},mac=${n.mac},host_mtu=${n.mtu},romfile=`,
          ],
    ),
    '-device',
    'virtio-balloon-pci,id=balloon0',
    '-qmp',
    `unix:${qemuOptValue(paths.qmpSocket)},server=on,wait=off`,
    '-qmp',
    `unix:${qemuOptValue(paths.inspectSocket)},server=on,wait=off`,
    '-pidfile',
    paths.pidfile,
    '-daemonize',
    // Least privilege (seccomp). spawn=deny and elevateprivileges=deny would break -daemonize's fork and
    // setsid on QEMU 7.2 (measured: "Bad system call" / exit 1), so those two stay allowed.
    '-sandbox',
    'on,obsolete=deny,resourcecontrol=deny',
  ];
}

/** A locally administered unicast MAC derived from the instance id, stable across restarts. */
export function macFor(id: string): string {
  let h = 0x811c9dc5;
  for (const c of id) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
  const b = [0x52, 0x54, 0x00, (h >>> 16) & 0xff, (h >>> 8) & 0xff, h & 0xff];
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}
