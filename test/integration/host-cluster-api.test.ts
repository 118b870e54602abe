/**
 * Dedicated means dedicated (issue 16, finding 7), through the API against a real controller and
 * agent in this process: add-host is refused while the host holds another tenant's instances (and
 * changes nothing), placement keeps other tenants' instances off a dedicated host, and a violation
 * that got past both shows on the cluster. On main before the fix (b8fa89d) add-host succeeded
 * with tenant other's instance on the host, and the next instance of tenant other was placed there.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { HostCluster } from '../../src/model/host-cluster.ts';
import type { Instance } from '../../src/model/instance.ts';
import { startInProcess, type InProcessCluster } from '../helpers/in-process.ts';
import { apiSend } from '../helpers/https.ts';
import { waitUntil } from '../helpers/wait.ts';

const HOST = 'dc-api-host';

describe('dedicated host clusters: placement and add-host', () => {
  let env: InProcessCluster;

  before(async () => {
    env = await startInProcess(HOST);
    for (const name of ['acme', 'other']) await env.api.post('/v1/tenants', { name });
    await env.api.post('/v1/networks', { name: 'net-acme', tenant: 'acme', subnet: '10.10.0.0/24' });
    const dc = await env.api.post<HostCluster>('/v1/host-clusters', { name: 'dc-a', tenant: 'acme', networks: ['net-acme'] });
    // Its Dedicated condition settled now, so no reconcile changes the cluster under the comparisons below.
    await env.ctl.controller.reconcileNow('hostCluster', dc.id);
  });
  after(() => env?.close());

  const send = (method: string, path: string, body?: unknown) => apiSend<object>(env.ctl, method, path, body);
  const instance = (name: string, tenant: string) =>
    env.api.post<Instance>('/v1/instances', { name, tenant, image: 'test', vcpus: 1, memoryMiB: 64, start: false });
  const placed = (name: string) => waitUntil(`${name} placed`, async () => (await env.api.get<Instance>(`/v1/instances/${name}`)).status.hostName);
  const cluster = () => env.api.get<HostCluster>('/v1/host-clusters/dc-a');
  const certificates = async () => (await env.api.get<{ items: unknown[] }>('/v1/certificates')).items.length;

  test("add-host is refused (409, naming them) while the host holds another tenant's instances, and changes nothing", async () => {
    await instance('b1', 'other');
    assert.equal(await placed('b1'), HOST);
    const before = { cluster: await cluster(), certificates: await certificates() };
    const r = await send('POST', '/v1/host-clusters/dc-a/hosts', { host: HOST });
    assert.equal(r.status, 409, JSON.stringify(r.body));
    assert.equal(r.body.error?.code, 'foreign_instances');
    assert.match(r.body.error?.message ?? '', new RegExp(`host ${HOST} holds instances of tenants other than acme: b1 \\(tenant other\\) on ${HOST}`));
    assert.deepEqual(r.body.error?.details, { instances: [{ name: 'b1', tenant: 'other', hostName: HOST }] });
    assert.deepEqual({ cluster: await cluster(), certificates: await certificates() }, before, 'no host added, no principal certificate issued');
  });

  test("once they are gone the host joins, and another tenant's new instance is not placed on it", async () => {
    assert.equal((await send('DELETE', '/v1/instances/b1')).status, 202);
    await waitUntil('b1 gone', async () => (await send('GET', '/v1/instances/b1')).status === 404);
    assert.equal((await send('POST', '/v1/host-clusters/dc-a/hosts', { host: HOST })).status, 200);
    await instance('b2', 'other');
    const why = await waitUntil('b2 refused a place', async () => {
      const i = await env.api.get<Instance>('/v1/instances/b2');
      return i.status.conditions.find((c) => c.type === 'Scheduled' && c.status === 'False');
    });
    assert.equal(why.message, '0/1 hosts fit: 1 dedicated to tenant acme (host cluster dc-a)');
    const b2 = await env.api.get<Instance>('/v1/instances/b2');
    assert.deepEqual([b2.status.phase, b2.status.hostId], ['pending', undefined]);
    await instance('a1', 'acme');
    assert.equal(await placed('a1'), HOST, "the cluster's own tenant is placed there");
  });

  test("a violation that got past both (an instance placed before the rule) raises the cluster's Dedicated condition", async () => {
    const host = await env.api.get<{ id: string }>(`/v1/hosts/${HOST}`);
    await env.ctl.store.instances.updateStatus(
      (await env.api.get<Instance>('/v1/instances/b2')).id,
      (cur) => ({
        status: { ...cur.status, hostId: host.id, hostName: HOST },
      }),
      'other',
    );
    await env.ctl.controller.reconcileNow('hostCluster', (await cluster()).id);
    const c = (await cluster()).status.conditions.find((x) => x.type === 'Dedicated');
    assert.deepEqual([c?.status, c?.reason], ['False', 'ForeignInstances']);
    assert.match(c?.message ?? '', new RegExp(`b2 \\(tenant other\\) on ${HOST}`));
    assert.equal((await send('DELETE', '/v1/instances/b2')).status, 202);
    await waitUntil('b2 gone', async () => (await send('GET', '/v1/instances/b2')).status === 404);
    await env.ctl.controller.reconcileNow('hostCluster', (await cluster()).id);
    assert.equal((await cluster()).status.conditions.find((x) => x.type === 'Dedicated')?.status, 'True');
  });
});
