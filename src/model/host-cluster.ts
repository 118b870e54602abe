import { Type, type Static } from 'typebox';
import { Condition, resourceSchema, type Resource } from './common.ts';

/** A group of hosts dedicated to one tenant and its virtual networks. */
export const HostClusterSpec = Type.Object({
  tenant: Type.String(),
  /** Network ids, the first being the one each host's port joins. */
  networks: Type.Array(Type.String()),
  /** Host ids. */
  hosts: Type.Array(Type.String()),
});
export type HostClusterSpec = Static<typeof HostClusterSpec>;

/** The instance principal certificate a member host holds. */
const Principal = Type.Object({
  hostId: Type.String(),
  hostName: Type.String(),
  serial: Type.String(),
  segments: Type.Array(Type.Integer()),
  notAfter: Type.String(),
  /** PEM, kept for the host to collect. */
  certificate: Type.String(),
});
type Principal = Static<typeof Principal>;

export const HostClusterStatus = Type.Object({
  phase: Type.String(),
  conditions: Type.Array(Condition),
  principals: Type.Array(Principal),
});
export type HostClusterStatus = Static<typeof HostClusterStatus>;

export const HostClusterResource = resourceSchema('HostCluster', HostClusterSpec, HostClusterStatus);
export type HostCluster = Resource<HostClusterSpec, HostClusterStatus>;
