/**
 * Network use cases the API calls: create a network (its subnet apart from the tenant's others, a
 * segment id, the DHCP server's address), delete one nobody uses, and forget a deleted host's entry.
 * Creates and deletes hold the placement lock, which address claims are made under too.
 */
import type { Network } from '../../model/network.ts';
import { DEFAULT_TENANT } from '../../model/tenant.ts';
import { contains, formatIpv4, hostRange, overlaps, parseIpv4, parseSubnet, pickAddress, pickSegment, subnetOf } from '../../network/index.ts';
import type { Ctx } from '../context.ts';
import { forgetHost } from '../networks/plan.ts';
import { ServiceError } from './errors.ts';

export interface CreateNetworkInput {
  name: string;
  tenant?: string;
  subnet: string;
  gateway?: string;
  segment?: number;
  dhcp?: boolean;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export class NetworkService {
  constructor(private readonly ctx: Ctx) {}

  async create(b: CreateNetworkInput): Promise<Network> {
    const { store } = this.ctx;
    const parsed = parseSubnet(b.subnet);
    if (!parsed.ok) throw new ServiceError(400, 'invalid_request', `body/subnet: ${parsed.reason}`, [{ path: '/subnet', problem: parsed.reason }]);
    const subnet = parsed.subnet;
    let gateway: string | undefined;
    if (b.gateway !== undefined) {
      const g = parseIpv4(b.gateway);
      const { first, last } = hostRange(subnet);
      if (g === undefined) throw new ServiceError(400, 'invalid_request', `body/gateway: '${b.gateway}' is not an IPv4 address`);
      if (!contains(subnet, g) || g < first || g > last)
        throw new ServiceError(
          400,
          'invalid_request',
          `body/gateway: ${b.gateway} is not a host address of ${b.subnet} (${formatIpv4(first)}-${formatIpv4(last)})`,
        );
      gateway = formatIpv4(g);
    }
    const tenant = await store.tenants.find(b.tenant ?? DEFAULT_TENANT);
    if (!tenant) throw new ServiceError(422, 'unknown_tenant', `tenant '${b.tenant}' does not exist`);
    // Serialised with other network changes: two overlapping subnets cannot both pass the check.
    return this.ctx.serialize(async () => {
      if (await store.networks.find(b.name)) throw new ServiceError(409, 'conflict', `network '${b.name}' already exists`);
      for (const other of await store.networks.list()) {
        if (other.spec.tenant === tenant.name && overlaps(subnetOf(other), subnet)) {
          throw new ServiceError(409, 'subnet_overlap', `subnet ${b.subnet} overlaps network ${other.name}'s ${other.spec.subnet} (tenant ${tenant.name})`);
        }
      }
      const id = store.networks.newId();
      const taken = await store.claims.segments();
      const segment = b.segment ?? pickSegment(new Set(taken.keys()));
      if (segment === undefined) throw new ServiceError(409, 'segments_exhausted', 'every automatic segment id (100-4094) is in use; give one with segment');
      if (!(await store.claims.claimSegment(segment, id))) {
        const holder = await store.networks.get(taken.get(segment) ?? '');
        throw new ServiceError(409, 'segment_in_use', `segment ${segment} is in use by network ${holder?.name ?? taken.get(segment) ?? 'another network'}`);
      }
      try {
        // The DHCP servers' address is the network's own claim (holder: the network), the lowest free.
        let dhcp: { server: string } | undefined;
        if (b.dhcp) {
          const reserved = new Set(gateway ? [parseIpv4(gateway)!] : []);
          const server = await store.claims.claimAddress(id, id, (used) => pickAddress(subnet, reserved, used));
          if (server === undefined) throw new ServiceError(409, 'network_full', `subnet ${b.subnet} has no address left for the DHCP server`);
          dhcp = { server: formatIpv4(server) };
        }
        return await store.networks.create({
          id,
          name: b.name,
          labels: b.labels,
          annotations: b.annotations,
          spec: { tenant: tenant.name, subnet: `${formatIpv4(subnet.base)}/${subnet.prefix}`, gateway, segment, dhcp },
          status: { phase: 'active', conditions: [], hosts: [] },
        });
      } catch (e) {
        await store.claims.releaseInstance(id);
        await store.claims.releaseSegments(id);
        throw e;
      }
    });
  }

  /** Deletes a network no instance (nor one being created) and no host cluster uses; its reconciler takes it off the hosts. */
  async remove(ref: string): Promise<Network> {
    const { store } = this.ctx;
    const n = await store.networks.mustFind(ref);
    const updated = await this.ctx.serialize(async () => {
      // Address claims, not instances: an instance being created holds its claim before it exists.
      const holders = new Set((await store.claims.addresses(n.id)).map((c) => c.instanceId).filter((holder) => holder !== n.id));
      const users = (await store.instances.list()).filter((i) => holders.has(i.id)).map((i) => i.name);
      const clusters = (await store.hostClusters.list()).filter((c) => c.spec.networks.includes(n.id)).map((c) => c.name);
      if (clusters.length) throw new ServiceError(409, 'in_use', `network ${n.name} is a network of host cluster ${clusters.join(', ')}`);
      if (holders.size)
        throw new ServiceError(409, 'in_use', `network ${n.name} has instances on it: ${users.join(', ') || 'one being created'}; delete them first`);
      return this.ctx.status.requestDeletion(store.networks, n.id);
    });
    await this.ctx.runtime.reconcileNow('network', n.id);
    return (await store.networks.get(n.id)) ?? updated;
  }

  /** An operator vouches that a deleted host no longer has the network's devices: its entry goes. */
  async forgetHost(ref: string, host: string): Promise<Network> {
    const { store } = this.ctx;
    const n = await store.networks.mustFind(ref);
    const existing = new Set((await store.hosts.list()).map((h) => h.id));
    const updated = await this.ctx.status.record(store.networks, n.id, (cur) => {
      const r = forgetHost(cur, host, (id) => existing.has(id));
      if (!r.ok) throw new ServiceError(r.status, r.status === 404 ? 'not_found' : 'host_exists', r.message);
      return { status: { ...cur.status, hosts: r.hosts } };
    });
    this.ctx.log.warn({ network: n.name, host }, 'an operator vouched that a deleted host no longer carries the network');
    await this.ctx.runtime.reconcileNow('network', n.id);
    return (await store.networks.get(n.id)) ?? updated;
  }
}
