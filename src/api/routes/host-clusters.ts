import { Type } from 'typebox';
import { Name } from '../../model/common.ts';
import { describeForeign, foreignInstances } from '../../controller/index.ts';
import { HostClusterResource, type HostCluster } from '../../model/host-cluster.ts';
import { DEFAULT_TENANT } from '../../model/tenant.ts';
import { ApiError, guarded } from '../errors.ts';
import type { Api, ApiServices } from '../server.ts';
import { errors, listOf, MetadataFields, RefParams } from '../schemas.ts';

const CreateHostCluster = Type.Object(
  {
    name: Name,
    tenant: Type.Optional(Type.String({ minLength: 1, description: `tenant the hosts are dedicated to (default: ${DEFAULT_TENANT})` })),
    networks: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, maxItems: 8, uniqueItems: true, description: "the tenant's networks (names or ids); each host's port joins the first" }),
    ...MetadataFields,
  },
  { additionalProperties: false },
);
const AddHost = Type.Object({ host: Type.String({ minLength: 1, description: 'host name or id' }) }, { additionalProperties: false });
const HostParams = Type.Object({ ref: Type.String(), host: Type.String() });

export function hostClusterRoutes(app: Api, s: ApiServices): void {
  app.get('/host-clusters', { schema: { tags: ['host-clusters'], response: { 200: listOf(HostClusterResource) } } }, async () => ({ items: await s.store.hostClusters.list() }));
  app.get('/host-clusters/:ref', { schema: { tags: ['host-clusters'], params: RefParams, response: { 200: HostClusterResource, ...errors } } }, async (req) =>
    s.store.hostClusters.mustFind(req.params.ref),
  );

  app.post('/host-clusters', { schema: { tags: ['host-clusters'], summary: 'Create a cluster of hosts dedicated to a tenant and its networks', body: CreateHostCluster, response: { 201: HostClusterResource, ...errors } } }, async (req, reply) => {
    const b = req.body;
    const tenant = await s.store.tenants.find(b.tenant ?? DEFAULT_TENANT);
    if (!tenant) throw new ApiError(422, 'unknown_tenant', `tenant '${b.tenant}' does not exist`);
    const networks = [];
    for (const ref of b.networks) {
      const n = await s.store.networks.find(ref);
      if (!n) throw new ApiError(422, 'unknown_network', `network '${ref}' does not exist`);
      if (n.spec.tenant !== tenant.name) throw new ApiError(422, 'tenant_mismatch', `network '${n.name}' belongs to tenant ${n.spec.tenant}, not ${tenant.name}`);
      networks.push(n.id);
    }
    if (new Set(networks).size !== networks.length) throw new ApiError(400, 'invalid_request', 'body/networks: a network is named twice');
    const c = await s.store.hostClusters.create({
      name: b.name,
      labels: b.labels,
      annotations: b.annotations,
      spec: { tenant: tenant.name, networks, hosts: [] },
      status: { phase: 'active', conditions: [], principals: [] },
    });
    s.controller.enqueue('hostCluster', c.id);
    return reply.status(201).send(c);
  });

  app.post(
    '/host-clusters/:ref/hosts',
    { schema: { tags: ['host-clusters'], summary: 'Dedicate a trusted host to the cluster: it gets an instance principal certificate naming the networks', params: RefParams, body: AddHost, response: { 200: HostClusterResource, ...errors } } },
    async (req) => {
      const out = await s.controller.exclusive(async () => {
        const c = await s.store.hostClusters.mustFind(req.params.ref);
        const h = await s.store.hosts.find(req.body.host);
        if (!h) throw new ApiError(422, 'unknown_host', `host '${req.body.host}' does not exist`);
        if (c.spec.hosts.includes(h.id)) return c;
        const other = (await s.store.hostClusters.list()).find((x) => x.spec.hosts.includes(h.id));
        if (other) throw new ApiError(409, 'host_in_cluster', `host ${h.name} is dedicated to cluster ${other.name} already`);
        // Inside the placement lock: no instance can land on the host between this check and the write.
        const foreign = foreignInstances([h.id], c.spec.tenant, await s.store.instances.list());
        if (foreign.length) {
          throw new ApiError(409, 'foreign_instances', `host ${h.name} holds instances of tenants other than ${c.spec.tenant}: ${describeForeign(foreign)}; delete them (or let them finish elsewhere) first`, { instances: foreign });
        }
        const segments: number[] = [];
        for (const id of c.spec.networks) {
          const n = await s.store.networks.get(id);
          if (!n || n.status.phase !== 'active') throw new ApiError(409, 'network_gone', `network ${id} of cluster ${c.name} is gone or being deleted`);
          segments.push(n.spec.segment);
        }
        const cert = await guarded(() => s.trust.issuePrincipal(h.id, segments));
        try {
          return await s.store.hostClusters.update(c.id, (cur) => ({
            spec: { ...cur.spec, hosts: [...cur.spec.hosts, h.id] },
            status: { ...cur.status, principals: [...cur.status.principals, { hostId: h.id, hostName: h.name, serial: cert.serial, segments, notAfter: cert.notAfter.toISOString(), certificate: cert.pem }] },
          }));
        } catch (e) {
          // Nothing half-made: a certificate nobody recorded as held is revoked at once.
          await s.trust.revokeSerial(cert.serial);
          throw e;
        }
      });
      const added = await s.store.hosts.find(req.body.host);
      if (added) await s.controller.deliverPrincipal(added.id);
      s.controller.enqueue('hostCluster', out.id);
      return out;
    },
  );

  app.delete(
    '/host-clusters/:ref/hosts/:host',
    { schema: { tags: ['host-clusters'], summary: "Take a host out of the cluster: its principal certificate is revoked", params: HostParams, response: { 200: HostClusterResource, ...errors } } },
    async (req) => {
      const { cluster, hostId } = await s.controller.exclusive(async () => {
        const c = await s.store.hostClusters.mustFind(req.params.ref);
        const h = await s.store.hosts.find(req.params.host);
        if (!h || !c.spec.hosts.includes(h.id)) throw new ApiError(404, 'not_found', `host '${req.params.host}' is not in cluster ${c.name}`);
        for (const p of c.status.principals) if (p.hostId === h.id) await s.trust.revokeSerial(p.serial);
        const updated = await s.store.hostClusters.update(c.id, (cur) => ({
          spec: { ...cur.spec, hosts: cur.spec.hosts.filter((x) => x !== h.id) },
          status: { ...cur.status, principals: cur.status.principals.filter((p) => p.hostId !== h.id) },
        }));
        return { cluster: updated, hostId: h.id };
      });
      await s.controller.deliverPrincipal(hostId);
      s.controller.enqueue('hostCluster', cluster.id);
      return cluster;
    },
  );

  app.delete('/host-clusters/:ref', { schema: { tags: ['host-clusters'], params: RefParams, response: { 204: Type.Null(), ...errors } } }, async (req, reply) => {
    const c: HostCluster = await s.store.hostClusters.mustFind(req.params.ref);
    if (c.spec.hosts.length) throw new ApiError(409, 'in_use', `cluster ${c.name} still has hosts; remove them first`);
    await s.store.hostClusters.delete(c.id);
    return reply.status(204).send(null);
  });

  app.post(
    '/port-authenticator-certificates',
    {
      schema: {
        tags: ['trust'],
        summary: "Issue a port authenticator's RADIUS server certificate for its own public key (the key never leaves it)",
        body: Type.Object({ name: Type.String({ pattern: '^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$', description: 'DNS-style name supplicants may match' }), publicKey: Type.String({ maxLength: 4096 }) }, { additionalProperties: false }),
        response: { 201: Type.Object({ certificate: Type.String(), ca: Type.String() }), ...errors },
      },
    },
    async (req, reply) => {
      let cert;
      try {
        cert = await s.trust.issueAuthenticator(req.body.name, req.body.publicKey);
      } catch (e) {
        throw new ApiError(400, 'invalid_request', `body/publicKey: not a usable public key (${(e as Error).message})`);
      }
      return reply.status(201).send({ certificate: cert.pem, ca: s.trust.ca.certPem });
    },
  );

  app.get('/pki/crl', { schema: { tags: ['trust'], summary: "The cluster CA's certificate revocation list (PEM): what port authentication checks principals against" } }, async (_req, reply) => {
    reply.header('content-type', 'application/x-pem-file');
    return reply.send(await s.trust.certs.crl());
  });
}
