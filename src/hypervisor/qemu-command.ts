/** Builds the QEMU command line for an instance. Pure: no I/O, so it is tested directly. */

export type Accel = 'kvm' | 'tcg';

export interface PortForward {
  guestPort: number;
  hostAddress: string;
  hostPort: number;
}

export interface VmSpec {
  id: string;
  name: string;
  vcpus: number;
  memoryMiB: number;
  /** Direct kernel boot: local paths of the verified image files. */
  kernel: string;
  initrd: string;
  cmdline: string;
  accel: Accel;
  forwards: PortForward[];
  /** Printed on the serial console when the guest is ready; optional. */
  readyMarker?: string;
  mac: string;
  /** Opaque to the driver: what the owner (the agent) needs to know about this VM after a restart. */
  owner: { generation: number; restartSeq: number };
}

export interface VmPaths {
  dir: string;
  pidfile: string;
  qmpSocket: string;
  serialLog: string;
}

/** `-cpu host` only makes sense under KVM; TCG emulates the richest model it has. */
export function cpuModelFor(accel: Accel): string {
  return accel === 'kvm' ? 'host' : 'max';
}

/** QEMU option values separate sub-options with commas; a literal comma is doubled. */
export function qemuOptValue(v: string): string {
  return v.replace(/,/g, ',,');
}

export function buildQemuArgs(spec: VmSpec, paths: VmPaths): string[] {
  const hostfwd = spec.forwards.map((f) => `,hostfwd=tcp:${f.hostAddress}:${f.hostPort}-:${f.guestPort}`).join('');
  return [
    '-name', `guest=${qemuOptValue(spec.name)},process=outrig-${spec.id},debug-threads=on`,
    '-machine', `q35,accel=${spec.accel}`,
    '-cpu', cpuModelFor(spec.accel),
    '-smp', String(spec.vcpus),
    '-m', `${spec.memoryMiB}M`,
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-kernel', spec.kernel,
    '-initrd', spec.initrd,
    '-append', `${spec.cmdline} outrig.name=${spec.name}`,
    // append=on keeps the console history across restarts of the same instance.
    '-chardev', `file,id=serial0,path=${qemuOptValue(paths.serialLog)},append=on`,
    '-serial', 'chardev:serial0',
    '-netdev', `user,id=net0${hostfwd}`,
    '-device', `virtio-net-pci,netdev=net0,mac=${spec.mac},romfile=`,
    '-device', 'virtio-balloon-pci,id=balloon0',
    '-qmp', `unix:${qemuOptValue(paths.qmpSocket)},server=on,wait=off`,
    '-pidfile', paths.pidfile,
    '-daemonize',
    // Least privilege (seccomp). spawn=deny and elevateprivileges=deny would break -daemonize's fork and
    // setsid on QEMU 7.2 (measured: "Bad system call" / exit 1), so those two stay allowed.
    '-sandbox', 'on,obsolete=deny,resourcecontrol=deny',
  ];
}

/** A locally administered unicast MAC derived from the instance id, stable across restarts. */
export function macFor(id: string): string {
  let h = 0x811c9dc5;
  for (const c of id) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
  const b = [0x52, 0x54, 0x00, (h >>> 16) & 0xff, (h >>> 8) & 0xff, h & 0xff];
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}
