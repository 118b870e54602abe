/** From the controller's VM definition to the launch spec the QEMU driver takes. Pure. */
import { macFor, type Accel, type PortForward, type VmDisk, type VmNetNic, type VmSpec } from '../hypervisor/index.ts';
import type { VmDefinition, VmNic } from '../model/agent-protocol.ts';

/**
 * The guest's NIC configuration, on the kernel command line: outrig.nicN=MAC,ADDRESS/PREFIX[,GATEWAY],
 * or outrig.nicN=MAC,dhcp on a network with DHCP (the guest asks this host's server).
 */
function nicArgs(nics: VmNic[]): string {
  return nics
    .map((n, i) => `outrig.nic${i + 1}=${n.dhcpServer ? `${n.mac},dhcp` : [n.mac, `${n.address}/${n.prefix}`, n.gateway].filter(Boolean).join(',')}`)
    .join(' ');
}

interface HostSide {
  accel: Accel;
  /** diskd's NBD socket; export name = volume id. */
  nbdSocket: string;
  /** Local paths of the image's files (direct kernel boot). */
  files?: { kernel: string; initrd: string };
  forwards: PortForward[];
  nics?: VmNetNic[];
}

export function vmSpec(id: string, def: VmDefinition, h: HostSide): VmSpec {
  const disks: VmDisk[] = def.disks.map((d, i) => ({ volumeId: d.volumeId, socket: h.nbdSocket, export: d.volumeId, boot: d.boot, port: i, tag: d.tag }));
  return {
    id,
    name: def.name,
    vcpus: def.vcpus,
    memoryMiB: def.memoryMiB,
    memory: def.memory,
    kernel: h.files?.kernel,
    initrd: h.files?.initrd,
    cmdline: def.image ? [def.image.cmdline, def.kernelArgs, nicArgs(def.nics ?? [])].filter(Boolean).join(' ') : undefined,
    disks,
    accel: h.accel,
    forwards: h.forwards,
    readyMarker: def.readyMarker ?? def.image?.readyMarker,
    mac: macFor(id),
    nics: h.nics,
    owner: { generation: def.generation, restartSeq: def.restartSeq },
  };
}
