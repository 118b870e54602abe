/** Virtual networks: addresses, segments, the Linux adapter, the backend probe and the host firewall. */
export { formatIpv4, formatSubnet, subnetAround, contains, hostRange, macForAddress, overlaps, parseIpv4, parseSubnet, subnetOf, type Subnet } from './cidr.ts';
export { pickAddress, pickSegment, SEGMENT_MAX, SEGMENT_MIN } from './ipam.ts';
export { bridgeName, tapName, vxlanName } from './links.ts';
export {
  ensurePortSegment,
  ensureRemoteMacs,
  ensureSegment,
  ensureTap,
  isolateFromHost,
  mtuOf,
  findUnderlay,
  removeSegment,
  removeTaps,
  sh,
  type Underlay,
} from './linux.ts';
export { chooseBackend, probeBackends, type BackendProbe } from './probe.ts';
export { segmentMtu } from './vxlan-plan.ts';
export { readSriovNics, untaggedVfCommand, VfAllocator, type HeldVf, type NicAssignment } from './sriov.ts';
export { dhcpNames, dhcpTag, type DhcpLease } from './dhcp-plan.ts';
export { dhcpSegments, ensureDhcp, isolate, releaseDhcp, stopDhcp } from './dhcp.ts';
export { withNetwork, withNics, withoutInstance, withoutNetwork, type FirewallNic } from './firewall-plan.ts';
export { HostFirewall } from './firewall.ts';
export type { RemoteMac } from './isolation-plan.ts';
export { applySysfsWrites, planVfioBind, planVfioRelease, readPciDevice, vfioLoaded } from './vfio.ts';
