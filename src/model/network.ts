import { Type, type Static } from 'typebox';
import { Condition, resourceSchema, type Resource } from './common.ts';

const NETWORK_PHASES = ['active', 'deleting'] as const;

export const NetworkSpec = Type.Object({
  tenant: Type.String(),
  /** IPv4 subnet in CIDR form, host bits zero. */
  subnet: Type.String(),
  /** Reserved for a router; no guest gets it. Absent: the network has no gateway. */
  gateway: Type.Optional(Type.String()),
  /** VXLAN network identifier or VLAN id: the same on every host. */
  segment: Type.Integer(),
  /** DHCP on: each host carrying the network answers its own guests, from this address. */
  dhcp: Type.Optional(Type.Object({ server: Type.String() })),
});
export type NetworkSpec = Static<typeof NetworkSpec>;

/** How far one host has the network: the flood list (other hosts' underlay addresses) it was given. */
export const NetworkOnHost = Type.Object({
  hostId: Type.String(),
  hostName: Type.String(),
  peers: Type.Array(Type.String()),
  /** The other hosts' guests' MACs on the network, each with its host's underlay address: the VXLAN device's static table. */
  macs: Type.Optional(Type.Array(Type.Object({ mac: Type.String(), dst: Type.String() }))),
  state: Type.Union([Type.Literal('sent'), Type.Literal('ready'), Type.Literal('failed'), Type.Literal('removing')]),
  opId: Type.String(),
  /** When the last operation was sent. */
  at: Type.String(),
  error: Type.Optional(Type.String()),
});
export type NetworkOnHost = Static<typeof NetworkOnHost>;

export const NetworkStatus = Type.Object({
  phase: Type.Enum(NETWORK_PHASES),
  conditions: Type.Array(Condition),
  hosts: Type.Array(NetworkOnHost),
  message: Type.Optional(Type.String()),
});
export type NetworkStatus = Static<typeof NetworkStatus>;

export const NetworkResource = resourceSchema('Network', NetworkSpec, NetworkStatus);
export type Network = Resource<NetworkSpec, NetworkStatus>;

/** An instance's NIC on a network: fixed at create, so the guest keeps its address and MAC across restarts and moves. */
export const InstanceNic = Type.Object({
  network: Type.String({ description: 'network id' }),
  networkName: Type.String(),
  address: Type.String(),
  /** Prefix length of the network's subnet. */
  prefix: Type.Integer(),
  gateway: Type.Optional(Type.String()),
  mac: Type.String(),
});
export type InstanceNic = Static<typeof InstanceNic>;
