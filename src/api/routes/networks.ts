import { Type } from 'typebox';
import { Name } from '../../model/common.ts';
import { NetworkResource, type Network } from '../../model/network.ts';
import { DEFAULT_TENANT } from '../../model/tenant.ts';
import { contains, formatIpv4, hostRange, overlaps, parseIpv4, parseSubnet, pickAddress, pickSegment, SEGMENT_MAX, SEGMENT_MIN, type Subnet } from '../../network/index.ts';
import { forgetHost } from '../../controller/index.ts';
import { ApiError } from '../errors.ts';
import type { Api, ApiServices } from '../server.ts';
import { errors, listOf, MetadataFields, RefParams } from '../schemas.ts';

export const CreateNetwork = Type.Object(
  {
    name: Name,
    tenant: Type.Optional(Type.String({ minLength: 1, description: `tenant name or id (default: ${DEFAULT_TENANT})` })),
    subnet: Type.String({ minLength: 9, maxLength: 18, description: 'IPv4 subnet in CIDR form, host bits zero (10.10.0.0/24)' }),
    gateway: Type.Optional(Type.String({ minLength: 7, maxLength: 15, description: 'address kept for a router inside the subnet; no guest gets it' })),
    segment: Type.Optional(Type.Integer({ minimum: SEGMENT_MIN, maximum: SEGMENT_MAX, description: 'VXLAN network id (VLAN id on vlan hosts: 1-4094); default: the lowest free from 100' })),
    dhcp: Type.Optional(Type.Boolean({ description: "serve guests their addresses by DHCP (default false: guests booted from Outrig's kernel images get them on the command line)" })),
    ...MetadataFields,
  },
  { additionalProperties: false },
);

/** Address usage of a network and who holds the addresses, for `network show`. */
const NetworkView = Type.Intersect([
  NetworkResource,
  Type.Object({
    addresses: Type.Object({ used: Type.Integer(), free: Type.Integer() }),
    instances: Type.Array(Type.Object({ name: Type.String(), id: Type.String(), address: Type.String(), mac: Type.String(), host: Type.Optional(Type.String()) })),
  }),
]);

export function subnetOf(n: Network): Subnet {
  const p = parseSubnet(n.spec.subnet);
  if (!p.ok) throw new Error(`network ${n.name} has a bad subnet in the store: ${p.reason}`);
  return p.subnet;
}

export function networkRoutes(app: Api, s: ApiServices): void {
  const view = async (n: Network) => {
    const used = (await s.store.claims.addresses(n.id)).length;
    const { first, last } = hostRange(subnetOf(n));
    const instances = (await s.store.instances.list()).flatMap((i) =>
      (i.spec.nics ?? []).filter((x) => x.network === n.id).map((x) => ({ name: i.name, id: i.id, address: x.address, mac: x.mac, host: i.status.hostName })),
    );
    return { ...n, addresses: { used, free: last - first + 1 - used - (n.spec.gateway ? 1 : 0) }, instances };
  };

  app.get('/networks', { schema: { tags: ['networks'], response: { 200: listOf(NetworkView) } } }, async () => ({
    items: await Promise.all((await s.store.networks.list()).map(view)),
  }));

  app.get('/networks/:ref', { schema: { tags: ['networks'], params: RefParams, response: { 200: NetworkView, ...errors } } }, async (req) =>
    view(await s.store.networks.mustFind(req.params.ref)),
  );

  app.post('/networks', { schema: { tags: ['networks'], summary: 'Create a virtual network', body: CreateNetwork, response: { 201: NetworkResource, ...errors } } }, async (req, reply) => {
    const b = req.body;
    const parsed = parseSubnet(b.subnet);
    if (!parsed.ok) throw new ApiError(400, 'invalid_request', `body/subnet: ${parsed.reason}`, [{ path: '/subnet', problem: parsed.reason }]);
    const subnet = parsed.subnet;
    let gateway: string | undefined;
    if (b.gateway !== undefined) {
      const g = parseIpv4(b.gateway);
      const { first, last } = hostRange(subnet);
      if (g === undefined) throw new ApiError(400, 'invalid_request', `body/gateway: '${b.gateway}' is not an IPv4 address`);
      if (!contains(subnet, g) || g < first || g > last) throw new ApiError(400, 'invalid_request', `body/gateway: ${b.gateway} is not a host address of ${b.subnet} (${formatIpv4(first)}-${formatIpv4(last)})`);
      gateway = formatIpv4(g);
    }
    const tenant = await s.store.tenants.find(b.tenant ?? DEFAULT_TENANT);
    if (!tenant) throw new ApiError(422, 'unknown_tenant', `tenant '${b.tenant}' does not exist`);
    // Serialised with other network changes: two overlapping subnets cannot both pass the check.
    const net = await s.controller.exclusive(async () => {
      if (await s.store.networks.find(b.name)) throw new ApiError(409, 'conflict', `network '${b.name}' already exists`);
      for (const other of await s.store.networks.list()) {
        if (other.spec.tenant === tenant.name && overlaps(subnetOf(other), subnet)) {
          throw new ApiError(409, 'subnet_overlap', `subnet ${b.subnet} overlaps network ${other.name}'s ${other.spec.subnet} (tenant ${tenant.name})`);
        }
      }
      const id = s.store.networks.newId();
      const taken = await s.store.claims.segments();
      const segment = b.segment ?? pickSegment(new Set(taken.keys()));
      if (segment === undefined) throw new ApiError(409, 'segments_exhausted', 'every automatic segment id (100-4094) is in use; give one with segment');
      if (!(await s.store.claims.claimSegment(segment, id))) {
        const holder = await s.store.networks.get(taken.get(segment) ?? '');
        throw new ApiError(409, 'segment_in_use', `segment ${segment} is in use by network ${holder?.name ?? taken.get(segment) ?? 'another network'}`);
      }
      try {
        // The DHCP servers' address is the network's own claim (holder: the network), the lowest free.
        let dhcp: { server: string } | undefined;
        if (b.dhcp) {
          const reserved = new Set(gateway ? [parseIpv4(gateway)!] : []);
          const server = await s.store.claims.claimAddress(id, id, (used) => pickAddress(subnet, reserved, used));
          if (server === undefined) throw new ApiError(409, 'network_full', `subnet ${b.subnet} has no address left for the DHCP server`);
          dhcp = { server: formatIpv4(server) };
        }
        return await s.store.networks.create({
          id,
          name: b.name,
          labels: b.labels,
          annotations: b.annotations,
          spec: { tenant: tenant.name, subnet: `${formatIpv4(subnet.base)}/${subnet.prefix}`, gateway, segment, dhcp },
          status: { phase: 'active', conditions: [], hosts: [] },
        });
      } catch (e) {
        await s.store.claims.releaseInstance(id);
        await s.store.claims.releaseSegments(id);
        throw e;
      }
    });
    return reply.status(201).send(net);
  });

  app.delete('/networks/:ref', { schema: { tags: ['networks'], summary: 'Delete a network no instance uses', params: RefParams, response: { 202: NetworkResource, ...errors } } }, async (req, reply) => {
    const n = await s.store.networks.mustFind(req.params.ref);
    const updated = await s.controller.exclusive(async () => {
      // Address claims, not instances: an instance being created holds its claim before it exists.
      const holders = new Set((await s.store.claims.addresses(n.id)).map((c) => c.instanceId).filter((holder) => holder !== n.id));
      const users = (await s.store.instances.list()).filter((i) => holders.has(i.id)).map((i) => i.name);
      const clusters = (await s.store.hostClusters.list()).filter((c) => c.spec.networks.includes(n.id)).map((c) => c.name);
      if (clusters.length) throw new ApiError(409, 'in_use', `network ${n.name} is a network of host cluster ${clusters.join(', ')}`);
      if (holders.size) throw new ApiError(409, 'in_use', `network ${n.name} has instances on it: ${users.join(', ') || 'one being created'}; delete them first`);
      return s.store.networks.update(n.id, (cur) => (cur.status.phase === 'deleting' ? null : { status: { ...cur.status, phase: 'deleting' } }));
    });
    await s.controller.reconcileNow('network', n.id);
    return reply.status(202).send((await s.store.networks.get(n.id)) ?? updated);
  });

  app.delete(
    '/networks/:ref/hosts/:host',
    {
      schema: {
        tags: ['networks'],
        summary: "Vouch that a deleted host no longer has the network's devices: its entry goes, and the segment is freed once no host holds it",
        params: Type.Object({ ref: Type.String(), host: Type.String({ minLength: 1, description: 'host id or name, as the network lists it' }) }),
        response: { 200: NetworkResource, ...errors },
      },
    },
    async (req) => {
      const n = await s.store.networks.mustFind(req.params.ref);
      const existing = new Set((await s.store.hosts.list()).map((h) => h.id));
      const updated = await s.store.networks.update(n.id, (cur) => {
        const r = forgetHost(cur, req.params.host, (id) => existing.has(id));
        if (!r.ok) throw new ApiError(r.status, r.status === 404 ? 'not_found' : 'host_exists', r.message);
        return { status: { ...cur.status, hosts: r.hosts } };
      });
      req.log.warn({ network: n.name, host: req.params.host }, 'an operator vouched that a deleted host no longer carries the network');
      await s.controller.reconcileNow('network', n.id);
      return (await s.store.networks.get(n.id)) ?? updated;
    },
  );
}
