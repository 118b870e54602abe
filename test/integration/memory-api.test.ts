/**
 * Memory pools and tenants' entitlements through the API, against a real controller and agent:
 * bad input gets a clear 4xx and changes nothing; an instance over its tenant's limit is refused
 * or waits with the reason, never half-allocated. Instances here are created stopped (no guest
 * needed: placement and memory allocation happen all the same).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ApiClient } from '../../src/cli/client.ts';
import type { RunningController } from '../../src/server/index.ts';
import { startInProcess, type InProcessCluster } from '../helpers/in-process.ts';
import type { Instance } from '../../src/model/instance.ts';
import type { MemoryPool } from '../../src/model/memory.ts';
import type { Tenant } from '../../src/model/tenant.ts';
import { tlsFetch } from '../helpers/https.ts';
import { refusals } from '../helpers/refusals.ts';
import { waitUntil } from '../helpers/wait.ts';

describe('memory API', () => {
  let env: InProcessCluster;
  let ctl: RunningController;
  let api: ApiClient;

  before(async () => {
    env = await startInProcess('mem-host');
    ({ ctl, api } = env);
    await api.patch('/v1/memory/pools/default', {
      tiers: [
        { name: 'local', kind: 'local', capacityMiB: 1024 },
        { name: 'cxl', kind: 'pooled', capacityMiB: 512 },
      ],
    });
  });
  after(() => env?.close());

  /** Everything the memory API could change, to compare before and after a refused request. */
  async function state() {
    const strip = <T extends { updatedAt: string }>(xs: T[]) => xs.map((x) => ({ ...x, updatedAt: '' }));
    const pools = (await api.get<{ items: MemoryPool[] }>('/v1/memory/pools')).items.map((p) => ({ name: p.name, spec: p.spec, generation: p.generation }));
    return {
      pools,
      tenants: strip((await api.get<{ items: Tenant[] }>('/v1/tenants')).items),
      instances: (await api.get<{ items: Instance[] }>('/v1/instances')).items.map((i) => ({
        name: i.name,
        hostId: i.status.hostId,
        memory: i.status.memory?.portions,
      })),
    };
  }
  const send = (...a: Parameters<ReturnType<typeof refusals>['send']>) => refusals(ctl, state).send(...a);
  const refused = (...a: Parameters<ReturnType<typeof refusals>['refused']>) => refusals(ctl, state).refused(...a);

  test('bad entitlements: negative, absurd, guarantee above limit, unknown pool, more guarantees than the pool has', async () => {
    const t = (memory: unknown) => ({ name: 'bad', memory });
    await refused('POST', '/v1/tenants', t([{ pool: 'default', guaranteedMiB: -1, limitMiB: 100 }]), 400, /guaranteedMiB/);
    await refused('POST', '/v1/tenants', t([{ pool: 'default', guaranteedMiB: 0, limitMiB: 2 ** 40 }]), 400, /limitMiB/);
    await refused('POST', '/v1/tenants', t([{ pool: 'default', guaranteedMiB: 0, limitMiB: 1.5 }]), 400, /limitMiB/);
    await refused('POST', '/v1/tenants', t([{ pool: 'default', guaranteedMiB: 0, limitMiB: 100, pooledShare: 2 }]), 400, /pooledShare/);
    await refused('POST', '/v1/tenants', t([{ pool: 'default', guaranteedMiB: 200, limitMiB: 100 }]), 422, /guarantee 200 MiB is above the limit 100 MiB/);
    await refused('POST', '/v1/tenants', t([{ pool: 'nowhere', guaranteedMiB: 0, limitMiB: 100 }]), 422, /memory pool 'nowhere' does not exist/);
    await refused('POST', '/v1/tenants', t([{ pool: 'default', guaranteedMiB: 0, limitMiB: 100, prefer: ['dram'] }]), 422, /pool default has no tier dram/);
    await refused(
      'POST',
      '/v1/tenants',
      t([
        { pool: 'default', guaranteedMiB: 0, limitMiB: 100 },
        { pool: 'default', guaranteedMiB: 0, limitMiB: 100 },
      ]),
      400,
      /appears twice/,
    );
    await refused(
      'POST',
      '/v1/tenants',
      t([{ pool: 'default', guaranteedMiB: 4096, limitMiB: 8192 }]),
      422,
      /guarantees in pool default would add up to 4096 MiB, more than its 1536 MiB/,
    );

    // Two tenants that fit alone but not together: the second is refused.
    assert.equal((await send('POST', '/v1/tenants', { name: 'acme', memory: [{ pool: 'default', guaranteedMiB: 1024, limitMiB: 1024 }] })).status, 201);
    await refused(
      'POST',
      '/v1/tenants',
      { name: 'beta', memory: [{ pool: 'default', guaranteedMiB: 768, limitMiB: 1024 }] },
      422,
      /add up to 1792 MiB, more than its 1536 MiB/,
    );
    await refused('PATCH', '/v1/tenants/acme', { memory: [{ pool: 'default', guaranteedMiB: 2048, limitMiB: 4096 }] }, 422, /add up to 2048 MiB/);
    const ok = await send('PATCH', '/v1/tenants/acme', { memory: [{ pool: 'default', guaranteedMiB: 256, limitMiB: 768, prefer: ['local'] }] });
    assert.equal(ok.status, 200);
  });

  test('bad pools: unsized pooled tier, twice-named tier, second catch-all, a host in two pools, absurd overcommit, shrinking under guarantees', async () => {
    const pool = (o: object) => ({ name: 'p2', tiers: [{ name: 'local', kind: 'local' }], ...o });
    await refused(
      'POST',
      '/v1/memory/pools',
      pool({ hosts: ['mem-host'], tiers: [{ name: 'cxl', kind: 'pooled' }] }),
      400,
      /pooled tier cxl needs its capacityMiB/,
    );
    await refused(
      'POST',
      '/v1/memory/pools',
      pool({
        hosts: ['mem-host'],
        tiers: [
          { name: 'a', kind: 'local' },
          { name: 'a', kind: 'pooled', capacityMiB: 1 },
        ],
      }),
      400,
      /tier a is named twice/,
    );
    await refused('POST', '/v1/memory/pools', pool({}), 409, /only one pool may take every unnamed host/);
    await refused('POST', '/v1/memory/pools', pool({ hosts: ['mem-host'], maxOvercommit: 10 }), 400, /maxOvercommit/);
    await refused('POST', '/v1/memory/pools', pool({ hosts: ['mem-host'], tiers: [{ name: 'local', kind: 'local', capacityMiB: -5 }] }), 400, /capacityMiB/);
    assert.equal((await send('POST', '/v1/memory/pools', pool({ name: 'lab', hosts: ['elsewhere'] }))).status, 201);
    await refused('POST', '/v1/memory/pools', pool({ hosts: ['elsewhere'] }), 409, /host elsewhere is already in memory pool lab/);
    // acme's 256 MiB guarantee needs the default pool to keep at least that much.
    await refused(
      'PATCH',
      '/v1/memory/pools/default',
      { tiers: [{ name: 'local', kind: 'local', capacityMiB: 100 }] },
      422,
      /guarantees in pool default would add up to 256 MiB, more than its 100 MiB/,
    );
    await refused('DELETE', '/v1/memory/pools/default', {}, 409, /default memory pool cannot be deleted/);
    assert.equal((await send('DELETE', '/v1/memory/pools/lab', {})).status, 204);
  });

  test("an instance over its tenant's limit is refused; one that would take the tenant over it waits with the reason, holding nothing", async () => {
    const base = { image: 'test', vcpus: 1, tenant: 'acme', start: false };
    await refused(
      'POST',
      '/v1/instances',
      { ...base, name: 'huge', memoryMiB: 1024 },
      422,
      /1024 MiB is more than tenant acme's memory limit \(at most 768 MiB/,
    );
    await refused('POST', '/v1/instances', { ...base, name: 'neg', memoryMiB: -256 }, 400, /memoryMiB/);

    const a = await send('POST', '/v1/instances', { ...base, name: 'a1', memoryMiB: 512 });
    assert.equal(a.status, 201);
    const a1 = await api.get<Instance>('/v1/instances/a1');
    assert.deepEqual(a1.status.memory, { pool: 'default', portions: [{ tier: 'local', sizeMiB: 512 }] });
    assert.ok(a1.status.hostId);

    await refused(
      'POST',
      '/v1/instances',
      { ...base, name: 'a2', memoryMiB: 384 },
      422,
      /no host has room for instance a2 now: .*tenant acme holds 512 MiB of its 768 MiB limit/,
    );
    assert.equal((await send('POST', '/v1/instances', { ...base, name: 'a2', memoryMiB: 384, waitForRoom: true })).status, 201);
    const a2 = await api.get<Instance>('/v1/instances/a2');
    assert.equal(a2.status.phase, 'pending');
    assert.equal(a2.status.hostId, undefined);
    assert.equal(a2.status.memory, undefined);
    assert.match(a2.status.message ?? '', /tenant acme holds 512 MiB of its 768 MiB limit in pool default; 384 MiB more would exceed it/);

    // Raising the limit lets it in, without anyone touching the instance.
    assert.equal(
      (await send('PATCH', '/v1/tenants/acme', { memory: [{ pool: 'default', guaranteedMiB: 256, limitMiB: 1024, prefer: ['local'] }] })).status,
      200,
    );
    await waitUntil('a2 placed', async () => !!(await api.get<Instance>('/v1/instances/a2')).status.hostId, 15_000);
    assert.deepEqual((await api.get<Instance>('/v1/instances/a2')).status.memory?.portions, [{ tier: 'local', sizeMiB: 384 }]);

    // Its pool accounts for both, and so do the metrics, per tenant and per tier.
    await waitUntil(
      'pool status',
      async () => (await api.get<MemoryPool>('/v1/memory/pools/default')).status.tenants.find((t) => t.tenant === 'acme')?.committedMiB === 896,
    );
    const metrics = await (await tlsFetch(`${ctl.url}/metrics`, { tls: { ca: ctl.trust.ca.certPem }, token: ctl.adminToken })).text();
    assert.match(metrics, /^outrig_memory_tenant_mib\{pool="default",tenant="acme",measure="committed"\} 896$/m);
    assert.match(metrics, /^outrig_memory_tenant_mib\{pool="default",tenant="acme",measure="guaranteed"\} 256$/m);
    assert.match(metrics, /^outrig_memory_domain_mib\{pool="default",tier="local",domain="local@h-\w+",host="mem-host",measure="committed"\} 896$/m);
    assert.match(metrics, /^outrig_memory_domain_mib\{pool="default",tier="cxl",domain="cxl",host="",measure="capacity"\} 512$/m);
    await refused('DELETE', '/v1/tenants/acme', {}, 409, /has instances/);
  });

  test('tenants without entitlements keep working as before, in any pool', async () => {
    const r = await send('POST', '/v1/instances', { image: 'test', vcpus: 1, name: 'd1', memoryMiB: 256, start: false });
    assert.equal(r.status, 201);
    const d1 = await api.get<Instance>('/v1/instances/d1');
    assert.equal(d1.status.memory?.pool, 'default');
  });
});
