import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConflictError, openStore } from '../../../src/store/index.ts';
import { tempDir } from '../../helpers/tmp.ts';

const tenant = (name: string) => ({ name, spec: {}, status: { phase: 'active', conditions: [] } });

test('create, find by id or name, unique names, and data that survives reopening', async () => {
  const dir = tempDir();
  try {
    const path = join(dir.path, 'db.sqlite');
    let store = await openStore({ kind: 'sqlite', path });
    const t = await store.tenants.create({ ...tenant('acme'), labels: { tier: 'gold' } });
    assert.match(t.id, /^t-[0-9a-f]{16}$/);
    assert.equal((await store.tenants.find('acme'))?.id, t.id);
    assert.equal((await store.tenants.find(t.id))?.name, 'acme');
    await assert.rejects(store.tenants.create(tenant('acme')), ConflictError);
    assert.equal(await store.tenants.count(), 1);
    await store.close();

    store = await openStore({ kind: 'sqlite', path });
    const again = await store.tenants.find('acme');
    assert.deepEqual(again?.labels, { tier: 'gold' });
    await store.close();
  } finally {
    dir.remove();
  }
});

test('spec changes bump generation, status changes do not; newGeneration forces one', async () => {
  const dir = tempDir();
  const store = await openStore({ kind: 'sqlite', path: join(dir.path, 'db.sqlite') });
  try {
    const h = await store.hosts.create({
      id: 'h-x',
      name: 'x',
      spec: { cordoned: false },
      status: { phase: 'ready', conditions: [], agent: { connected: true } },
    });
    assert.equal(h.generation, 1);
    const s1 = await store.hosts.updateStatus(h.id, (c) => ({ status: { ...c.status, phase: 'lost' } }), 'other');
    assert.equal(s1.generation, 1);
    const s2 = await store.hosts.update(h.id, (c) => ({ spec: { ...c.spec, cordoned: true } }));
    assert.equal(s2.generation, 2);
    const s3 = await store.hosts.update(h.id, (c) => ({ spec: c.spec }));
    assert.equal(s3.generation, 2, 'an unchanged spec is not a new generation');
    const s4 = await store.hosts.update(h.id, (c) => ({ spec: c.spec, newGeneration: true }));
    assert.equal(s4.generation, 3);
    assert.equal((await store.hosts.get(h.id))?.status.phase, 'lost');
  } finally {
    await store.close();
    dir.remove();
  }
});

test('concurrent read-modify-writes lose no update (compare-and-set on resource_version)', async () => {
  const dir = tempDir();
  const store = await openStore({ kind: 'sqlite', path: join(dir.path, 'db.sqlite') });
  try {
    const t = await store.tenants.create(tenant('counter'));
    await Promise.all(Array.from({ length: 20 }, () => store.tenants.update(t.id, (c) => ({ labels: { n: String(Number(c.labels.n ?? 0) + 1) } }))));
    assert.equal((await store.tenants.get(t.id))?.labels.n, '20');
  } finally {
    await store.close();
    dir.remove();
  }
});

test('ids and names never collide within a kind: refused at create in both directions; a reference matching two is refused', async () => {
  const dir = tempDir();
  const store = await openStore({ kind: 'sqlite', path: join(dir.path, 'db.sqlite') });
  const host = (id: string, name: string) => ({
    id,
    name,
    spec: { cordoned: false },
    status: { phase: 'pending-approval' as const, conditions: [], agent: { connected: false } },
  });
  try {
    await store.hosts.create(host('h-victim', 'alpha'));
    await assert.rejects(
      store.hosts.create(host('alpha', 'zzz')),
      (e: ConflictError) => e.code === 'id_name_collision' && /id 'alpha' is the name of Host h-victim/.test(e.message),
    );
    await assert.rejects(store.hosts.create(host('h-other', 'h-victim')), (e: ConflictError) => e.code === 'id_name_collision');
    assert.equal(await store.hosts.count(), 1, 'a refused create stores nothing');
    await store.hosts.create(host('h-self', 'h-self'));
    assert.equal((await store.hosts.find('h-self'))?.id, 'h-self', 'a name equal to its own id is one resource');
    assert.equal(await store.hosts.taken('alpha'), true);
    assert.equal(await store.hosts.taken('beta'), false);
    // Other kinds have their own space: a tenant may be named like a host's id.
    await store.tenants.create({ ...tenant('h-victim') });

    // Rows from before the check can still collide: finding them is refused, not guessed.
    const row = { labels: '{}', annotations: '{}', spec: '{}', status: '{}', created_at: 'x', updated_at: 'x', generation: 1, resource_version: 1 };
    await store.db
      .insertInto('hosts')
      .values({ ...row, id: 'beta', name: 'old-beta' })
      .execute();
    await store.db
      .insertInto('hosts')
      .values({ ...row, id: 'h-new-beta', name: 'beta' })
      .execute();
    const ambiguous = (e: ConflictError) =>
      e instanceof ConflictError && e.code === 'ambiguous_ref' && /id beta named old-beta; id h-new-beta named beta/.test(e.message);
    await assert.rejects(store.hosts.find('beta'), ambiguous);
    await assert.rejects(store.hosts.mustFind('beta'), ambiguous);
  } finally {
    await store.close();
    dir.remove();
  }
});
