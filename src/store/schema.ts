/** Table shapes as Kysely sees them. Every resource kind has a table of the same shape. */
export interface ResourceRow {
  id: string;
  name: string;
  /** JSON text: portable between SQLite and PostgreSQL (a jsonb column can replace it there). */
  labels: string;
  annotations: string;
  spec: string;
  status: string;
  created_at: string;
  updated_at: string;
  generation: number;
  /** Bumped on every write; compare-and-set on it keeps concurrent writers (replicas) honest. */
  resource_version: number;
  /** Only in tables of kinds whose names are unique per scope (snapshots: per volume). */
  scope?: string;
}

/** An operation sent to an agent (controller/runtime/op-tracker.ts). No secrets: the operation itself is not kept. */
export interface OperationRow {
  op_id: string;
  host_id: string;
  owner_kind: string;
  owner_key: string;
  /** The operation's kind (vm.start, backup.create, ...). */
  kind: string;
  /** What the operation is about inside its owner (an instance of a pool's balloon move, a host of a network). */
  subject: string | null;
  state: string;
  sent_at: string;
  answered_at: string | null;
  /** JSON of the agent's answer { ok, error?, result? }. */
  result: string | null;
}

export type ResourceTable =
  | 'hosts'
  | 'images'
  | 'instances'
  | 'tenants'
  | 'volumes'
  | 'snapshots'
  | 'certificates'
  | 'enrollment_rules'
  | 'memory_pools'
  | 'backups'
  | 'backup_policies'
  | 'networks'
  | 'host_clusters';

export interface Database {
  hosts: ResourceRow;
  images: ResourceRow;
  instances: ResourceRow;
  tenants: ResourceRow;
  volumes: ResourceRow;
  snapshots: ResourceRow;
  certificates: ResourceRow;
  enrollment_rules: ResourceRow;
  memory_pools: ResourceRow;
  backups: ResourceRow;
  backup_policies: ResourceRow;
  networks: ResourceRow;
  host_clusters: ResourceRow;
  ip_allocations: { network_id: string; address: number; instance_id: string; created_at: string };
  network_segments: { segment: number; network_id: string };
  operations: OperationRow;
}
