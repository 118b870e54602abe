/**
 * Versioned migrations, in code so they ship with the binary. Names sort in order of application.
 * Only portable DDL here (text, integer): the PostgreSQL dialect runs the same list.
 */
import { type Kysely, type Migration, type MigrationProvider } from 'kysely';

async function createResourceTable(db: Kysely<unknown>, table: string, o: { scoped?: boolean } = {}): Promise<void> {
  let t = db.schema
    .createTable(table)
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => (o.scoped ? c.notNull() : c.notNull().unique()))
    .addColumn('labels', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('annotations', 'text', (c) => c.notNull().defaultTo('{}'))
    .addColumn('spec', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('generation', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('resource_version', 'integer', (c) => c.notNull().defaultTo(1));
  // A scoped kind's names are unique within their scope (a snapshot's: its volume), not across the table.
  if (o.scoped) t = t.addColumn('scope', 'text', (c) => c.notNull()).addUniqueConstraint(`${table}_scope_name`, ['scope', 'name']);
  await t.execute();
}

interface SnapshotRowV1 {
  id: string;
  name: string;
  labels: string;
  annotations: string;
  spec: string;
  status: string;
  created_at: string;
  updated_at: string;
  generation: number;
  resource_version: number;
}

/**
 * Moves the snapshots into a table of the given shape (SQLite cannot drop a unique constraint in
 * place). Rows are copied in code, not with JSON functions, so the migration stays portable.
 */
async function rebuildSnapshots(db: Kysely<unknown>, scoped: boolean): Promise<void> {
  const d = db as unknown as Kysely<{ snapshots: SnapshotRowV1 & { scope?: string }; snapshots_next: SnapshotRowV1 & { scope?: string } }>;
  await createResourceTable(db, 'snapshots_next', { scoped });
  for (const row of await d.selectFrom('snapshots').selectAll().execute()) {
    const { scope: _old, ...rest } = row;
    const next = scoped ? { ...rest, scope: (JSON.parse(row.spec) as { volume: string }).volume } : rest;
    await d.insertInto('snapshots_next').values(next).execute();
  }
  await db.schema.dropTable('snapshots').execute();
  await db.schema.alterTable('snapshots_next').renameTo('snapshots').execute();
}

const migrations: Record<string, Migration> = {
  '0001_resources': {
    async up(db: Kysely<unknown>) {
      for (const table of ['hosts', 'images', 'instances', 'tenants']) await createResourceTable(db, table);
    },
    async down(db: Kysely<unknown>) {
      for (const table of ['hosts', 'images', 'instances', 'tenants']) await db.schema.dropTable(table).execute();
    },
  },
  '0002_volumes': {
    async up(db: Kysely<unknown>) {
      for (const table of ['volumes', 'snapshots']) await createResourceTable(db, table);
    },
    async down(db: Kysely<unknown>) {
      for (const table of ['volumes', 'snapshots']) await db.schema.dropTable(table).execute();
    },
  },
  '0003_trust': {
    async up(db: Kysely<unknown>) {
      for (const table of ['certificates', 'enrollment_rules']) await createResourceTable(db, table);
    },
    async down(db: Kysely<unknown>) {
      for (const table of ['certificates', 'enrollment_rules']) await db.schema.dropTable(table).execute();
    },
  },
  '0004_memory': {
    async up(db: Kysely<unknown>) {
      await createResourceTable(db, 'memory_pools');
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropTable('memory_pools').execute();
    },
  },
  '0005_backups': {
    async up(db: Kysely<unknown>) {
      for (const table of ['backups', 'backup_policies']) await createResourceTable(db, table);
    },
    async down(db: Kysely<unknown>) {
      for (const table of ['backups', 'backup_policies']) await db.schema.dropTable(table).execute();
    },
  },
  '0006_networks': {
    async up(db: Kysely<unknown>) {
      await createResourceTable(db, 'networks');
      await createResourceTable(db, 'host_clusters');
      await db.schema
        .createTable('ip_allocations')
        .addColumn('network_id', 'text', (c) => c.notNull())
        .addColumn('address', 'integer', (c) => c.notNull())
        .addColumn('instance_id', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('ip_allocations_pk', ['network_id', 'address'])
        .execute();
      await db.schema.createIndex('ip_allocations_instance').on('ip_allocations').column('instance_id').execute();
      await db.schema
        .createTable('network_segments')
        .addColumn('segment', 'integer', (c) => c.primaryKey())
        .addColumn('network_id', 'text', (c) => c.notNull())
        .execute();
    },
    async down(db: Kysely<unknown>) {
      for (const table of ['networks', 'host_clusters', 'ip_allocations', 'network_segments']) await db.schema.dropTable(table).execute();
    },
  },
  // Snapshot names are per volume ("nightly" on every volume), as in every other cloud.
  '0007_snapshot_names_per_volume': {
    up: (db: Kysely<unknown>) => rebuildSnapshots(db, true),
    down: (db: Kysely<unknown>) => rebuildSnapshots(db, false),
  },
  // Operations sent to agents, so that an answer arriving after a controller restart still reaches
  // its owner and an answer from any host but the target is still dropped.
  '0008_operations': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('operations')
        .addColumn('op_id', 'text', (c) => c.primaryKey())
        .addColumn('host_id', 'text', (c) => c.notNull())
        .addColumn('owner_kind', 'text', (c) => c.notNull())
        .addColumn('owner_key', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('subject', 'text')
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('sent_at', 'text', (c) => c.notNull())
        .addColumn('answered_at', 'text')
        .addColumn('result', 'text')
        .execute();
      await db.schema.createIndex('operations_owner').on('operations').columns(['owner_kind', 'owner_key']).execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropTable('operations').execute();
    },
  },
};
export const migrationProvider: MigrationProvider = {
  async getMigrations() {
    return migrations;
  },
};
