/** The controller's HTTP API: fastify with TypeBox schemas, OpenAPI at /v1/openapi.json. */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server } from 'node:https';
import type { TLSSocket } from 'node:tls';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { type AgentHub, type Controller, type ImageFiles, type ControllerMetrics, type Peer, type TrustService } from '../controller/index.ts';
import type { DiscoveryResponder } from '../discovery/index.ts';
import type { ControllerInfo } from '../discovery/index.ts';
import type { Store } from '../store/index.ts';
import { guardConnections, type ConnectionLimits } from './connection-guard.ts';
import { errorHandler } from './errors.ts';
import { hostRoutes } from './routes/hosts.ts';
import { imageRoutes } from './routes/images.ts';
import { instanceRoutes } from './routes/instances.ts';
import { memoryRoutes } from './routes/memory.ts';
import { systemRoutes } from './routes/system.ts';
import { tenantRoutes } from './routes/tenants.ts';
import { volumeRoutes } from './routes/volumes.ts';
import { backupRoutes } from './routes/backups.ts';
import { backupPolicyRoutes } from './routes/backup-policies.ts';
import { trustRoutes } from './routes/trust.ts';
import { networkRoutes } from './routes/networks.ts';
import { hostClusterRoutes } from './routes/host-clusters.ts';
import { certificateRoutes } from './routes/certificates.ts';

export interface ApiServices {
  store: Store;
  controller: Controller;
  hub: AgentHub;
  trust: TrustService;
  responder: DiscoveryResponder;
  imageFiles: ImageFiles;
  metrics: ControllerMetrics;
  adminToken: string;
  version: string;
  /** This controller as operators see it (GET /v1/cluster); discovery tells strangers far less. */
  info: () => Promise<ControllerInfo>;
}

/** Requests anyone may make: health, the API description, and the discovery/enrollment exchange. */
// The CRL is signed and public by nature: port authenticators fetch it without an account.
const PUBLIC_ROUTES = new Set(['GET /healthz', 'GET /v1/openapi.json', 'POST /v1/discover', 'POST /v1/enroll', 'GET /v1/pki/crl']);
/** Requests hosts make with their certificate (operators may too). */
const HOST_ROUTES = new Set(['GET /v1/images/:ref/files/:file', 'POST /v1/agent/renew']);

declare module 'fastify' {
  interface FastifyRequest {
    peer?: Peer | { kind: 'admin' };
  }
}

export type Api = FastifyInstance<Server, IncomingMessage, ServerResponse, FastifyBaseLogger, TypeBoxTypeProvider>;

function tokenMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer (.+)$/.exec(header ?? '');
  if (!m) return false;
  const a = Buffer.from(m[1]!);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Everything is served over TLS; clients may present a certificate (hosts must, operators may).
 * Operators without a certificate send the admin token as a bearer token. Connections are limited
 * per source address and in total, and must finish their handshake and send requests in time.
 */
export async function buildApi(services: ApiServices, log: Logger, tls: { key: string; cert: string; ca: string }, limits: ConnectionLimits): Promise<Api> {
  const app = Fastify({
    https: {
      key: tls.key,
      cert: tls.cert,
      ca: [tls.ca],
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
      handshakeTimeout: limits.handshakeTimeoutMs,
    },
    keepAliveTimeout: limits.idleTimeoutMs,
    loggerInstance: log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024 * 1024,
    ajv: {
      // Unknown fields are an error, not silently dropped; no type coercion of JSON bodies.
      customOptions: { removeAdditional: false, coerceTypes: false, allErrors: true, useDefaults: true },
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  guardConnections(app.server, limits, { log, onClosed: (reason) => services.metrics.connectionsClosed.inc({ reason }) });
  app.setErrorHandler(errorHandler);
  app.addHook('onRequest', async (req, reply) => {
    const route = `${req.method} ${req.routeOptions.url ?? ''}`;
    if (PUBLIC_ROUTES.has(route)) return;
    const sock = req.raw.socket as TLSSocket;
    const peer = services.trust.certs.identify(sock.authorized, sock.getPeerCertificate?.(), sock.getPeerX509Certificate?.());
    if (peer.kind === 'operator' || tokenMatches(req.headers.authorization, services.adminToken)) {
      req.peer = peer.kind === 'operator' ? peer : { kind: 'admin' };
      return;
    }
    if (peer.kind === 'host' && HOST_ROUTES.has(route)) {
      const h = await services.store.hosts.get(peer.hostId);
      if (h?.status.trust?.state === 'trusted') {
        req.peer = peer;
        return;
      }
    }
    const why = peer.kind === 'none' && !req.headers.authorization ? peer.reason : 'invalid credentials';
    return reply.status(401).send({ error: { code: 'unauthorized', message: `authentication required (admin token or client certificate): ${why}` } });
  });
  app.setNotFoundHandler((req, reply) => reply.status(404).send({ error: { code: 'not_found', message: `no route ${req.method} ${req.url}` } }));
  app.addHook('onResponse', async (req, reply) => {
    services.metrics.apiRequests.inc({ method: req.method, route: req.routeOptions.url ?? 'unknown', status: String(reply.statusCode) });
    if (reply.statusCode >= 400 || req.method !== 'GET') {
      req.log.info({ method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
    }
  });

  await app.register(swagger, {
    openapi: {
      info: { title: 'Outrig API', version: services.version, description: 'Private cloud control plane' },
    },
  });

  await app.register(
    async (v1) => {
      hostRoutes(v1 as Api, services);
      imageRoutes(v1 as Api, services);
      instanceRoutes(v1 as Api, services);
      tenantRoutes(v1 as Api, services);
      memoryRoutes(v1 as Api, services);
      volumeRoutes(v1 as Api, services);
      backupRoutes(v1 as Api, services);
      backupPolicyRoutes(v1 as Api, services);
      trustRoutes(v1 as Api, services);
      certificateRoutes(v1 as Api, services);
      networkRoutes(v1 as Api, services);
      hostClusterRoutes(v1 as Api, services);
    },
    { prefix: '/v1' },
  );
  systemRoutes(app, services);
  return app;
}
