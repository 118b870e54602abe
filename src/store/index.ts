/**
 * The controller's store. SQLite (better-sqlite3) is the embedded default; callers only see
 * Kysely and repositories, so a PostgreSQL dialect slots in without touching them.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, type Dialect } from 'kysely';
import type { BackupPolicySpec, BackupPolicyStatus, BackupSpec, BackupStatus } from '../model/backup.ts';
import type { HostSpec, HostStatus } from '../model/host.ts';
import type { ImageSpec, ImageStatus } from '../model/image.ts';
import type { InstanceSpec, InstanceStatus } from '../model/instance.ts';
import type { NetworkSpec, NetworkStatus } from '../model/network.ts';
import type { HostClusterSpec, HostClusterStatus } from '../model/host-cluster.ts';
import type { MemoryPoolSpec, MemoryPoolStatus } from '../model/memory.ts';
import type { TenantSpec, TenantStatus } from '../model/tenant.ts';
import type { SnapshotSpec, SnapshotStatus, VolumeSpec, VolumeStatus } from '../model/volume.ts';
import type { CertificateSpec, CertificateStatus, EnrollmentRuleSpec, EnrollmentRuleStatus } from '../model/trust.ts';
import { NetworkClaims } from './addresses.ts';
import { migrationProvider } from './migrations.ts';
import { ResourceRepository, type Clock } from './repository.ts';
import type { Database } from './schema.ts';

export { AmbiguousRefError, ConflictError, NotFoundError } from './errors.ts';
export type { Change, ChangeOrigin, NewResource, ResourceEvent, StatusChange } from './repository.ts';
export { ResourceRepository } from './repository.ts';
export type { AddressClaim, NetworkClaims } from './addresses.ts';

/** onQuery: called for every SQL statement run (the controller counts them: store queries per reconcile). */
/**
 * onQuery: called for every SQL statement run (the controller counts them: store queries per reconcile).
 * cache: every resource table in memory, reads served from it (see ResourceRepository.enableCache):
 * for the one process that writes the store.
 */
export type StoreConfig = { kind: 'sqlite'; path: string; onQuery?: () => void; cache?: boolean };

export interface Store {
  db: Kysely<Database>;
  hosts: ResourceRepository<HostSpec, HostStatus>;
  images: ResourceRepository<ImageSpec, ImageStatus>;
  instances: ResourceRepository<InstanceSpec, InstanceStatus>;
  tenants: ResourceRepository<TenantSpec, TenantStatus>;
  volumes: ResourceRepository<VolumeSpec, VolumeStatus>;
  snapshots: ResourceRepository<SnapshotSpec, SnapshotStatus>;
  certificates: ResourceRepository<CertificateSpec, CertificateStatus>;
  enrollmentRules: ResourceRepository<EnrollmentRuleSpec, EnrollmentRuleStatus>;
  memoryPools: ResourceRepository<MemoryPoolSpec, MemoryPoolStatus>;
  backups: ResourceRepository<BackupSpec, BackupStatus>;
  backupPolicies: ResourceRepository<BackupPolicySpec, BackupPolicyStatus>;
  networks: ResourceRepository<NetworkSpec, NetworkStatus>;
  hostClusters: ResourceRepository<HostClusterSpec, HostClusterStatus>;
  /** Guest addresses and segment ids: unique claims. */
  claims: NetworkClaims;
  close(): Promise<void>;
}

function sqliteDialect(path: string): Dialect {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const database = new SqliteDatabase(path);
  database.pragma('journal_mode = WAL');
  // FULL: a committed (acknowledged) write survives power loss, not just a process crash.
  database.pragma('synchronous = FULL');
  database.pragma('busy_timeout = 5000');
  database.pragma('foreign_keys = ON');
  return new SqliteDialect({ database });
}

export async function openStore(config: StoreConfig, clock: Clock = () => new Date()): Promise<Store> {
  const onQuery = config.onQuery;
  const db = new Kysely<Database>({ dialect: sqliteDialect(config.path), log: onQuery ? (e) => (e.level === 'query' ? onQuery() : undefined) : undefined });
  const migrator = new Migrator({ db, provider: migrationProvider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    await db.destroy();
    const failed = results?.find((r) => r.status === 'Error');
    throw new Error(`store migration ${failed?.migrationName ?? ''} failed: ${(error as Error).message ?? String(error)}`);
  }
  const store: Store = {
    db,
    hosts: new ResourceRepository(db, 'hosts', 'Host', 'h', clock),
    images: new ResourceRepository(db, 'images', 'Image', 'img', clock),
    instances: new ResourceRepository(db, 'instances', 'Instance', 'i', clock),
    tenants: new ResourceRepository(db, 'tenants', 'Tenant', 't', clock),
    volumes: new ResourceRepository(db, 'volumes', 'Volume', 'v', clock),
    snapshots: new ResourceRepository<SnapshotSpec, SnapshotStatus>(db, 'snapshots', 'Snapshot', 's', clock, (spec) => spec.volume),
    certificates: new ResourceRepository(db, 'certificates', 'Certificate', 'c', clock),
    enrollmentRules: new ResourceRepository(db, 'enrollment_rules', 'EnrollmentRule', 'r', clock),
    memoryPools: new ResourceRepository(db, 'memory_pools', 'MemoryPool', 'mp', clock),
    backups: new ResourceRepository(db, 'backups', 'Backup', 'b', clock),
    backupPolicies: new ResourceRepository(db, 'backup_policies', 'BackupPolicy', 'bp', clock),
    networks: new ResourceRepository(db, 'networks', 'Network', 'n', clock),
    hostClusters: new ResourceRepository(db, 'host_clusters', 'HostCluster', 'hc', clock),
    claims: new NetworkClaims(db, clock),
    close: () => db.destroy(),
  };
  if (config.cache) for (const repo of Object.values(store)) if (repo instanceof ResourceRepository) await repo.enableCache();
  return store;
}
export type { Database, OperationRow } from './schema.ts';
