/**
 * Snapshot names are unique per volume (issue 18, finding 7): a store made before that keeps its
 * snapshots through the migration, and then takes "nightly" on a second volume but not twice on one.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import { migrationProvider } from '../../../src/store/migrations.ts';
import { ConflictError, openStore } from '../../../src/store/index.ts';
import { tempDir } from '../../helpers/tmp.ts';

const snapshot = (name: string, volume: string) => ({ name, spec: { volume }, status: { phase: 'ready' as const, conditions: [] } });

test('snapshots made under global names survive the migration; afterwards names are unique per volume', async () => {
  const dir = tempDir();
  try {
    const path = join(dir.path, 'db.sqlite');
    // The store as it was: migrated to 0006, one snapshot.
    const old = new Kysely<{ snapshots: Record<string, unknown> }>({ dialect: new SqliteDialect({ database: new SqliteDatabase(path) }) });
    const r = await new Migrator({ db: old, provider: migrationProvider }).migrateTo('0006_networks');
    assert.equal(r.error, undefined);
    const now = new Date().toISOString();
    await old
      .insertInto('snapshots')
      .values({
        id: 's-old',
        name: 'nightly',
        labels: '{"k":"v"}',
        annotations: '{}',
        spec: JSON.stringify({ volume: 'v-data' }),
        status: JSON.stringify({ phase: 'ready', conditions: [] }),
        created_at: now,
        updated_at: now,
        generation: 3,
        resource_version: 7,
      })
      .execute();
    await old.destroy();

    const store = await openStore({ kind: 'sqlite', path });
    try {
      const kept = await store.snapshots.get('s-old');
      assert.deepEqual(
        { name: kept?.name, labels: kept?.labels, spec: kept?.spec, generation: kept?.generation },
        { name: 'nightly', labels: { k: 'v' }, spec: { volume: 'v-data' }, generation: 3 },
      );
      const second = await store.snapshots.create(snapshot('nightly', 'v-logs'));
      assert.equal(second.name, 'nightly');
      await assert.rejects(
        store.snapshots.create(snapshot('nightly', 'v-data')),
        (e: Error) => e instanceof ConflictError && /Snapshot 'nightly' already exists in v-data/.test(e.message),
      );
      assert.equal(await store.snapshots.count(), 2);
      // Other kinds keep global names.
      await store.tenants.create({ name: 'acme', spec: {}, status: { phase: 'active', conditions: [] } });
      await assert.rejects(store.tenants.create({ name: 'acme', spec: {}, status: { phase: 'active', conditions: [] } }), ConflictError);
    } finally {
      await store.close();
    }
  } finally {
    dir.remove();
  }
});
