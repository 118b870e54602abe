import { Type } from 'typebox';
import { Name } from '../../model/common.ts';
import { HostClusterResource } from '../../model/host-cluster.ts';
import { DEFAULT_TENANT } from '../../model/tenant.ts';
import { ApiError } from '../errors.ts';
import type { Api, ApiServices } from '../server.ts';
import { errors, listOf, MetadataFields, RefParams } from '../schemas.ts';

const CreateHostCluster = Type.Object(
  {
    name: Name,
    tenant: Type.Optional(Type.String({ minLength: 1, description: `tenant the hosts are dedicated to (default: ${DEFAULT_TENANT})` })),
    networks: Type.Array(Type.String({ minLength: 1 }), {
      minItems: 1,
      maxItems: 8,
      uniqueItems: true,
      description: "the tenant's networks (names or ids); each host's port joins the first",
    }),
    ...MetadataFields,
  },
  { additionalProperties: false },
);
const AddHost = Type.Object({ host: Type.String({ minLength: 1, description: 'host name or id' }) }, { additionalProperties: false });
const HostParams = Type.Object({ ref: Type.String(), host: Type.String() });

export function hostClusterRoutes(app: Api, s: ApiServices): void {
  app.get('/host-clusters', { schema: { tags: ['host-clusters'], response: { 200: listOf(HostClusterResource) } } }, async () => ({
    items: await s.store.hostClusters.list(),
  }));
  app.get('/host-clusters/:ref', { schema: { tags: ['host-clusters'], params: RefParams, response: { 200: HostClusterResource, ...errors } } }, async (req) =>
    s.store.hostClusters.mustFind(req.params.ref),
  );

  app.post(
    '/host-clusters',
    {
      schema: {
        tags: ['host-clusters'],
        summary: 'Create a cluster of hosts dedicated to a tenant and its networks',
        body: CreateHostCluster,
        response: { 201: HostClusterResource, ...errors },
      },
    },
    async (req, reply) => reply.status(201).send(await s.controller.hostClusters.create(req.body)),
  );

  app.post(
    '/host-clusters/:ref/hosts',
    {
      schema: {
        tags: ['host-clusters'],
        summary: 'Dedicate a trusted host to the cluster: it gets an instance principal certificate naming the networks',
        params: RefParams,
        body: AddHost,
        response: { 200: HostClusterResource, ...errors },
      },
    },
    async (req) => s.controller.hostClusters.addHost(req.params.ref, req.body.host, s.trust),
  );

  app.delete(
    '/host-clusters/:ref/hosts/:host',
    {
      schema: {
        tags: ['host-clusters'],
        summary: 'Take a host out of the cluster: its principal certificate is revoked',
        params: HostParams,
        response: { 200: HostClusterResource, ...errors },
      },
    },
    async (req) => s.controller.hostClusters.removeHost(req.params.ref, req.params.host, s.trust),
  );

  app.delete(
    '/host-clusters/:ref',
    { schema: { tags: ['host-clusters'], params: RefParams, response: { 204: Type.Null(), ...errors } } },
    async (req, reply) => {
      await s.controller.hostClusters.remove(req.params.ref);
      return reply.status(204).send(null);
    },
  );

  app.post(
    '/port-authenticator-certificates',
    {
      schema: {
        tags: ['trust'],
        summary: "Issue a port authenticator's RADIUS server certificate for its own public key (the key never leaves it)",
        body: Type.Object(
          {
            name: Type.String({ pattern: '^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$', description: 'DNS-style name supplicants may match' }),
            publicKey: Type.String({ maxLength: 4096 }),
          },
          { additionalProperties: false },
        ),
        response: { 201: Type.Object({ certificate: Type.String(), ca: Type.String() }), ...errors },
      },
    },
    async (req, reply) => {
      let cert;
      try {
        cert = await s.trust.certs.issueAuthenticator(req.body.name, req.body.publicKey);
      } catch (e) {
        throw new ApiError(400, 'invalid_request', `body/publicKey: not a usable public key (${(e as Error).message})`);
      }
      return reply.status(201).send({ certificate: cert.pem, ca: s.trust.ca.certPem });
    },
  );

  app.get(
    '/pki/crl',
    { schema: { tags: ['trust'], summary: "The cluster CA's certificate revocation list (PEM): what port authentication checks principals against" } },
    async (_req, reply) => {
      reply.header('content-type', 'application/x-pem-file');
      return reply.send(await s.trust.certs.crl());
    },
  );
}
