import type { Api, ApiServices } from '../server.ts';

export function systemRoutes(app: Api, s: ApiServices): void {
  app.get('/healthz', { schema: { hide: true } }, async () => {
    await s.store.tenants.count();
    return { status: 'ok', version: s.version };
  });
  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => {
    reply.header('content-type', s.metrics.registry.contentType);
    return s.metrics.registry.metrics();
  });
  app.get('/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
