import { Type } from 'typebox';
import { Name } from '../../model/common.ts';
import { NetworkResource, type Network } from '../../model/network.ts';
import { DEFAULT_TENANT } from '../../model/tenant.ts';
import { hostRange, SEGMENT_MAX, SEGMENT_MIN, subnetOf } from '../../network/index.ts';
import type { Api, ApiServices } from '../server.ts';
import { errors, listOf, MetadataFields, RefParams } from '../schemas.ts';

const CreateNetwork = Type.Object(
  {
    name: Name,
    tenant: Type.Optional(Type.String({ minLength: 1, description: `tenant name or id (default: ${DEFAULT_TENANT})` })),
    subnet: Type.String({ minLength: 9, maxLength: 18, description: 'IPv4 subnet in CIDR form, host bits zero (10.10.0.0/24)' }),
    gateway: Type.Optional(Type.String({ minLength: 7, maxLength: 15, description: 'address kept for a router inside the subnet; no guest gets it' })),
    segment: Type.Optional(
      Type.Integer({
        minimum: SEGMENT_MIN,
        maximum: SEGMENT_MAX,
        description: 'VXLAN network id (VLAN id on vlan hosts: 1-4094); default: the lowest free from 100',
      }),
    ),
    dhcp: Type.Optional(
      Type.Boolean({
        description: "serve guests their addresses by DHCP (default false: guests booted from Outrig's kernel images get them on the command line)",
      }),
    ),
    ...MetadataFields,
  },
  { additionalProperties: false },
);

/** Address usage of a network and who holds the addresses, for `network show`. */
const NetworkView = Type.Intersect([
  NetworkResource,
  Type.Object({
    addresses: Type.Object({ used: Type.Integer(), free: Type.Integer() }),
    instances: Type.Array(
      Type.Object({ name: Type.String(), id: Type.String(), address: Type.String(), mac: Type.String(), host: Type.Optional(Type.String()) }),
    ),
  }),
]);

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

  app.post(
    '/networks',
    { schema: { tags: ['networks'], summary: 'Create a virtual network', body: CreateNetwork, response: { 201: NetworkResource, ...errors } } },
    async (req, reply) => reply.status(201).send(await s.controller.networks.create(req.body)),
  );

  app.delete(
    '/networks/:ref',
    { schema: { tags: ['networks'], summary: 'Delete a network no instance uses', params: RefParams, response: { 202: NetworkResource, ...errors } } },
    async (req, reply) => reply.status(202).send(await s.controller.networks.remove(req.params.ref)),
  );

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
    async (req) => s.controller.networks.forgetHost(req.params.ref, req.params.host),
  );
}
