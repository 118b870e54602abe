/** The controller's HTTP API: fastify with TypeBox schemas, OpenAPI at /v1/openapi.json. */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { AgentHub } from '../controller/agent-hub.ts';
import type { Controller } from '../controller/controller.ts';
import type { ImageFiles } from '../controller/image-files.ts';
import type { ControllerMetrics } from '../controller/metrics.ts';
import type { Store } from '../store/index.ts';
import { errorHandler } from './errors.ts';
import { hostRoutes } from './routes/hosts.ts';
import { imageRoutes } from './routes/images.ts';
import { instanceRoutes } from './routes/instances.ts';
import { systemRoutes } from './routes/system.ts';
import { tenantRoutes } from './routes/tenants.ts';
import { volumeRoutes } from './routes/volumes.ts';

export interface ApiServices {
  store: Store;
  controller: Controller;
  hub: AgentHub;
  imageFiles: ImageFiles;
  metrics: ControllerMetrics;
  joinToken: string;
  version: string;
}

export type Api = FastifyInstance<
  Server,
  IncomingMessage,
  ServerResponse,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

export async function buildApi(services: ApiServices, log: Logger): Promise<Api> {
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024 * 1024,
    ajv: {
      // Unknown fields are an error, not silently dropped; no type coercion of JSON bodies.
      customOptions: { removeAdditional: false, coerceTypes: false, allErrors: true, useDefaults: true },
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send({ error: { code: 'not_found', message: `no route ${req.method} ${req.url}` } }),
  );
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

  await app.register(async (v1) => {
    hostRoutes(v1 as Api, services);
    imageRoutes(v1 as Api, services);
    instanceRoutes(v1 as Api, services);
    tenantRoutes(v1 as Api, services);
    volumeRoutes(v1 as Api, services);
  }, { prefix: '/v1' });
  systemRoutes(app, services);
  return app;
}
