import { Type } from 'typebox';
import { HostResource, type Host } from '../../model/host.ts';
import { guarded } from '../errors.ts';
import type { Api, ApiServices } from '../server.ts';
import { errors, listOf, RefParams } from '../schemas.ts';

/**
 * Adds what the controller derives (capacity) to what is stored, the last heartbeat it heard (the
 * status records it every few minutes), and the disk space as placement sees it: the agent's latest
 * report (the status records it when it moves by 1% of the disk, or every 15 s), with what is
 * promised on the host and what can still be.
 */
async function withCapacity(s: ApiServices, hosts: Host[]): Promise<Host[]> {
  const cap = new Map((await s.controller.capacity()).map((c) => [c.id, c]));
  return hosts.map((h) => {
    const c = cap.get(h.id);
    if (!c) return h;
    const storage = s.controller.currentStorage(h);
    const heard = s.controller.lastHeartbeat(h)?.toISOString();
    return {
      ...h,
      status: {
        ...h.status,
        agent: heard ? { ...h.status.agent, lastHeartbeatAt: heard } : h.status.agent,
        allocatable: c.allocatable,
        allocated: c.allocated,
        storage: storage && c.disk ? { ...storage, promisedBytes: c.disk.promisedBytes, canPromiseBytes: c.disk.canPromiseBytes } : storage,
      },
    };
  });
}

export function hostRoutes(app: Api, s: ApiServices): void {
  app.get('/hosts', { schema: { tags: ['hosts'], response: { 200: listOf(HostResource) } } }, async () => ({
    items: await withCapacity(s, await s.store.hosts.list()),
  }));

  app.get('/hosts/:ref', { schema: { tags: ['hosts'], params: RefParams, response: { 200: HostResource, ...errors } } }, async (req) => {
    const [h] = await withCapacity(s, [await s.store.hosts.mustFind(req.params.ref)]);
    return h!;
  });

  for (const action of ['cordon', 'uncordon'] as const) {
    app.post(
      `/hosts/:ref/${action}`,
      {
        schema: {
          tags: ['hosts'],
          summary: action === 'cordon' ? 'Stop placing new instances on the host' : 'Allow placing instances on the host again',
          params: RefParams,
          response: { 200: HostResource, ...errors },
        },
      },
      async (req) => {
        const h = await s.controller.hosts.cordon(req.params.ref, action === 'cordon');
        const [out] = await withCapacity(s, [h]);
        return out!;
      },
    );
  }

  app.delete(
    '/hosts/:ref',
    {
      schema: {
        tags: ['hosts'],
        summary: 'Forget a host that holds nothing (waiting, rejected, revoked, or disconnected and empty); its certificates are revoked',
        params: RefParams,
        response: { 204: Type.Null(), ...errors },
      },
    },
    async (req, reply) => {
      await guarded(() => s.trust.deleteHost(req.params.ref, (id) => s.hub.isConnected(id)));
      // It may have connected since the check: its certificates are revoked now.
      s.hub.closeRevoked();
      return reply.status(204).send(null);
    },
  );
}
