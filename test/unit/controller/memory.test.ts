import assert from 'node:assert/strict';
import { test } from 'node:test';
import { explain, needsMove, poolUsage, TARGET_DEADBAND_MIB } from '../../../src/controller/memory/reconciler.ts';
import { entitlementsIn, poolMembers, tenantMayUse, vmsIn } from '../../../src/controller/memory/pools.ts';
import { planBalloons, type VmMemory } from '../../../src/memory/index.ts';
import type { Host } from '../../../src/model/host.ts';
import type { Instance } from '../../../src/model/instance.ts';
import type { MemoryPool } from '../../../src/model/memory.ts';
import type { Tenant } from '../../../src/model/tenant.ts';
import { ent, pool } from '../memory/fixtures.ts';

const meta = { labels: {}, annotations: {}, createdAt: '', updatedAt: '', generation: 1 };
const mkPool = (name: string, hosts?: string[]): MemoryPool => ({
  ...meta,
  id: `mp-${name}`,
  name,
  spec: { hosts, tiers: [{ name: 'local', kind: 'local' }], maxOvercommit: 1 },
  status: { phase: 'active', conditions: [], hosts: [], domains: [], tenants: [] },
});
const mkHost = (name: string): Host => ({
  ...meta,
  id: `h-${name}`,
  name,
  spec: { cordoned: false },
  status: { phase: 'ready', conditions: [], agent: { connected: true } },
});

test('pools: named hosts belong to the pool naming them; the catch-all pool takes the rest', () => {
  const hosts = ['a', 'b', 'c'].map(mkHost);
  const m = poolMembers([mkPool('default'), mkPool('lab', ['b', 'h-c'])], hosts);
  assert.deepEqual(
    m.get('mp-default')!.map((h) => h.name),
    ['a'],
  );
  assert.deepEqual(
    m.get('mp-lab')!.map((h) => h.name),
    ['b', 'c'],
  );
  // Without a catch-all pool, unnamed hosts are in no pool.
  assert.deepEqual(
    poolMembers([mkPool('lab', ['b'])], hosts)
      .get('mp-lab')!
      .map((h) => h.name),
    ['b'],
  );
});

test('tenants: entitlements per pool; a tenant without any may use every pool', () => {
  const t = (name: string, memory?: Tenant['spec']['memory']): Tenant => ({
    ...meta,
    id: `t-${name}`,
    name,
    spec: { memory },
    status: { phase: 'active', conditions: [] },
  });
  const acme = t('acme', [{ pool: 'lab', guaranteedMiB: 1, limitMiB: 2, prefer: ['local'] }]);
  assert.deepEqual([...entitlementsIn('lab', [acme, t('beta')])], [['acme', { guaranteedMiB: 1, limitMiB: 2, prefer: ['local'], pooledShare: 0 }]]);
  assert.equal(tenantMayUse(acme, 'lab'), true);
  assert.equal(tenantMayUse(acme, 'default'), false);
  assert.equal(tenantMayUse(t('beta'), 'default'), true);
});

test('instances in a pool: recorded portions, or the whole size in local memory for ones placed before pools', () => {
  const p = pool(1024);
  const i = (id: string, hostId: string | undefined, memory?: Instance['status']['memory']): Instance =>
    ({ ...meta, id, name: id, spec: { tenant: 't', memoryMiB: 256 }, status: { hostId, memory } }) as unknown as Instance;
  const vms = vmsIn(p, [
    i('i-1', 'h1', { pool: 'lab', portions: [{ tier: 'local', sizeMiB: 256 }] }),
    i('i-2', 'h1'),
    i('i-3', undefined),
    i('i-4', 'h9'),
    i('i-5', 'h1', { pool: 'other', portions: [] }),
  ]);
  assert.deepEqual(
    vms.map((v) => [v.id, v.portions]),
    [
      ['i-1', [{ tier: 'local', sizeMiB: 256 }]],
      ['i-2', [{ tier: 'local', sizeMiB: 256 }]],
    ],
  );
});

test('balloon moves: a dead band against wobble, but always all the way back to full size', () => {
  assert.equal(needsMove(320, 240, undefined), true);
  assert.equal(needsMove(320, 320, undefined), false);
  assert.equal(needsMove(320, 240, { targetMiB: 240, actualMiB: 250 }), false);
  assert.equal(needsMove(320, 240 + TARGET_DEADBAND_MIB - 1, { targetMiB: 240, actualMiB: 240 }), false);
  assert.equal(needsMove(320, 240 + TARGET_DEADBAND_MIB, { targetMiB: 240, actualMiB: 240 }), true);
  assert.equal(needsMove(320, 320, { targetMiB: 316, actualMiB: 316 }), true);
  // An adopted VM whose target this agent never set: its actual size stands in.
  assert.equal(needsMove(320, 240, { actualMiB: 240 }), false);
});

test('explanations and usage: who gave what, why, and every reclaimed MiB in the pool totals', () => {
  const p = pool(768, 256);
  const ents = new Map([
    ['acme', ent(256, 1024)],
    ['beta', ent(384, 512)],
  ]);
  const vms: VmMemory[] = [
    { id: 'a1', tenant: 'acme', hostId: 'h1', sizeMiB: 320, portions: [{ tier: 'local', sizeMiB: 320 }] },
    { id: 'a2', tenant: 'acme', hostId: 'h1', sizeMiB: 320, portions: [{ tier: 'local', sizeMiB: 320 }] },
    {
      id: 'b1',
      tenant: 'beta',
      hostId: 'h1',
      sizeMiB: 384,
      portions: [
        { tier: 'local', sizeMiB: 288 },
        { tier: 'cxl', sizeMiB: 96 },
      ],
    },
  ];
  const plan = planBalloons(p, ents, vms);
  assert.equal(explain(plan, vms[2]!, p), undefined);
  assert.equal(
    explain(plan, vms[0]!, p),
    'local@h1 in pool lab is committed 928 MiB over 768 MiB and tenant acme is 384 MiB above its 256 MiB guarantee: gives back 80 MiB; 80 MiB of it was in use in the guest',
  );
  const u = poolUsage(p, ents, vms, plan);
  assert.deepEqual(
    u.domains.map((d) => [d.domain, d.capacityMiB, d.committedMiB, d.balloonedMiB, d.freeMiB, d.shortMiB]),
    [
      ['local@h1', 768, 928, 160, 0, 0],
      ['cxl', 256, 96, 0, 160, 0],
    ],
  );
  assert.deepEqual(
    u.tenants.map((t) => [t.tenant, t.committedMiB, t.balloonedMiB, t.heldMiB, t.instances]),
    [
      ['acme', 640, 160, 480, 2],
      ['beta', 384, 0, 384, 1],
    ],
  );
  assert.equal(
    u.domains.reduce((n, d) => n + d.balloonedMiB, 0),
    u.tenants.reduce((n, t) => n + t.balloonedMiB, 0),
  );
});
