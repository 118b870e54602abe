/**
 * Host cluster use cases the API calls: create a cluster of a tenant's networks, dedicate a host to
 * it (its instance principal certificate issued and delivered), take a host out (the certificate
 * revoked), delete an empty cluster. Host changes run under the placement lock, so no instance
 * lands on a host between the check of its tenants and the write.
 */
import type { HostCluster } from '../../model/host-cluster.ts';
import { DEFAULT_TENANT } from '../../model/tenant.ts';
import type { Ctx } from '../context.ts';
import { describeForeign, foreignInstances } from '../host-clusters/plan.ts';
import type { TrustService } from '../trust/service.ts';
import { ServiceError } from './errors.ts';

export interface CreateHostClusterInput {
  name: string;
  tenant?: string;
  networks: string[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** What the cluster's hosts' instance principal certificates take from trust. */
export type Principals = Pick<TrustService, 'issuePrincipal'> & { certs: Pick<TrustService['certs'], 'revokeSerial'> };

export class HostClusterService {
  constructor(
    private readonly ctx: Ctx,
    /** Sends a host its instance principal certificate (or none, out of every cluster). */
    private readonly deliverPrincipal: (hostId: string) => Promise<void>,
  ) {}

  async create(b: CreateHostClusterInput): Promise<HostCluster> {
    const { store } = this.ctx;
    const tenant = await store.tenants.find(b.tenant ?? DEFAULT_TENANT);
    if (!tenant) throw new ServiceError(422, 'unknown_tenant', `tenant '${b.tenant}' does not exist`);
    const networks = [];
    for (const ref of b.networks) {
      const n = await store.networks.find(ref);
      if (!n) throw new ServiceError(422, 'unknown_network', `network '${ref}' does not exist`);
      if (n.spec.tenant !== tenant.name)
        throw new ServiceError(422, 'tenant_mismatch', `network '${n.name}' belongs to tenant ${n.spec.tenant}, not ${tenant.name}`);
      networks.push(n.id);
    }
    if (new Set(networks).size !== networks.length) throw new ServiceError(400, 'invalid_request', 'body/networks: a network is named twice');
    const c = await store.hostClusters.create({
      name: b.name,
      labels: b.labels,
      annotations: b.annotations,
      spec: { tenant: tenant.name, networks, hosts: [] },
      status: { phase: 'active', conditions: [], principals: [] },
    });
    this.ctx.runtime.enqueue('hostCluster', c.id);
    return c;
  }

  /** Dedicates a trusted host holding no other tenant's instances to the cluster, with a principal certificate naming its networks. */
  async addHost(ref: string, hostRef: string, trust: Principals): Promise<HostCluster> {
    const { store } = this.ctx;
    const out = await this.ctx.serialize(async () => {
      const c = await store.hostClusters.mustFind(ref);
      const h = await store.hosts.find(hostRef);
      if (!h) throw new ServiceError(422, 'unknown_host', `host '${hostRef}' does not exist`);
      if (c.spec.hosts.includes(h.id)) return c;
      const other = (await store.hostClusters.list()).find((x) => x.spec.hosts.includes(h.id));
      if (other) throw new ServiceError(409, 'host_in_cluster', `host ${h.name} is dedicated to cluster ${other.name} already`);
      // Inside the placement lock: no instance can land on the host between this check and the write.
      const foreign = foreignInstances([h.id], c.spec.tenant, await store.instances.list());
      if (foreign.length) {
        throw new ServiceError(
          409,
          'foreign_instances',
          `host ${h.name} holds instances of tenants other than ${c.spec.tenant}: ${describeForeign(foreign)}; delete them (or let them finish elsewhere) first`,
          { instances: foreign },
        );
      }
      const segments: number[] = [];
      for (const id of c.spec.networks) {
        const n = await store.networks.get(id);
        if (!n || n.status.phase !== 'active') throw new ServiceError(409, 'network_gone', `network ${id} of cluster ${c.name} is gone or being deleted`);
        segments.push(n.spec.segment);
      }
      const cert = await trust.issuePrincipal(h.id, segments);
      try {
        return await this.ctx.status.record(store.hostClusters, c.id, (cur) => ({
          spec: { ...cur.spec, hosts: [...cur.spec.hosts, h.id] },
          status: {
            ...cur.status,
            principals: [
              ...cur.status.principals,
              { hostId: h.id, hostName: h.name, serial: cert.serial, segments, notAfter: cert.notAfter.toISOString(), certificate: cert.pem },
            ],
          },
        }));
      } catch (e) {
        // Nothing half-made: a certificate nobody recorded as held is revoked at once.
        await trust.certs.revokeSerial(cert.serial);
        throw e;
      }
    });
    const added = await store.hosts.find(hostRef);
    if (added) await this.deliverPrincipal(added.id);
    this.ctx.runtime.enqueue('hostCluster', out.id);
    return out;
  }

  /** Takes a host out of the cluster; its principal certificate is revoked. */
  async removeHost(ref: string, hostRef: string, trust: Principals): Promise<HostCluster> {
    const { store } = this.ctx;
    const { cluster, hostId } = await this.ctx.serialize(async () => {
      const c = await store.hostClusters.mustFind(ref);
      const h = await store.hosts.find(hostRef);
      if (!h || !c.spec.hosts.includes(h.id)) throw new ServiceError(404, 'not_found', `host '${hostRef}' is not in cluster ${c.name}`);
      for (const p of c.status.principals) if (p.hostId === h.id) await trust.certs.revokeSerial(p.serial);
      const updated = await this.ctx.status.record(store.hostClusters, c.id, (cur) => ({
        spec: { ...cur.spec, hosts: cur.spec.hosts.filter((x) => x !== h.id) },
        status: { ...cur.status, principals: cur.status.principals.filter((p) => p.hostId !== h.id) },
      }));
      return { cluster: updated, hostId: h.id };
    });
    await this.deliverPrincipal(hostId);
    this.ctx.runtime.enqueue('hostCluster', cluster.id);
    return cluster;
  }

  /** Deletes a cluster without hosts. */
  async remove(ref: string): Promise<void> {
    const c = await this.ctx.store.hostClusters.mustFind(ref);
    if (c.spec.hosts.length) throw new ServiceError(409, 'in_use', `cluster ${c.name} still has hosts; remove them first`);
    await this.ctx.store.hostClusters.delete(c.id);
  }
}
