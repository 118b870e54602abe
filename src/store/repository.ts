/** Generic repository for resource tables: JSON columns in, typed resources out. */
import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Resource } from '../model/common.ts';
import { AmbiguousRefError, ConflictError, NotFoundError } from './errors.ts';
import type { Database, ResourceRow, ResourceTable } from './schema.ts';

export interface NewResource<S, St> {
  id?: string;
  name: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  spec: S;
  status: St;
}

/** What update() may change: what users and services own. Status is not among it (updateStatus). */
export interface Change<S> {
  spec?: S;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** Start a new generation even if the spec is unchanged: an explicit action (start, restart). */
  newGeneration?: boolean;
}

/**
 * A status write, with a spec change when the two must land together (a host joining a cluster and
 * the principal certificate it was issued). Only the controller's status writer calls updateStatus
 * (a lint rule keeps it so).
 */
export interface StatusChange<S, St> {
  status: St;
  spec?: S;
}

export type Clock = () => Date;

/** Who made a change: a reconciled status write (`status`), or anyone else (an API request, a service). */
export type ChangeOrigin = 'status' | 'other';

/** A committed change of one resource: before is absent for a create, after for a delete. */
export interface ResourceEvent<S, St> {
  id: string;
  before?: Resource<S, St>;
  after?: Resource<S, St>;
  origin: ChangeOrigin;
}

export function isUniqueViolation(e: unknown): boolean {
  const err = e as { code?: string; message?: string };
  // SQLite: SQLITE_CONSTRAINT_UNIQUE / PRIMARYKEY; PostgreSQL: 23505.
  return err.code === 'SQLITE_CONSTRAINT_UNIQUE' || err.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || err.code === '23505';
}

export class ResourceRepository<S, St> {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly table: ResourceTable,
    readonly kind: string,
    private readonly idPrefix: string,
    private readonly clock: Clock,
    /** For a kind whose names are unique per scope (a snapshot's per volume): the scope of a spec, kept in the `scope` column. */
    private readonly scopeOf?: (spec: S) => string,
  ) {}

  private readonly watchers: ((e: ResourceEvent<S, St>) => void)[] = [];
  /**
   * Every row, in memory, when the store was opened with `cache`: reads cost no query and no JSON
   * parse (a controller reconciling 10,000 instances reads them all the time). Only sound while this
   * process is the one writer of the table (SQLite embedded; replicas on PostgreSQL will need the
   * other writers' changes notified). Resources in it are frozen: a caller that edits one throws.
   */
  private cache?: Map<string, Cached<S, St>>;

  /** Loads every row into memory; from then on reads are served from it and writes keep it current. */
  async enableCache(): Promise<void> {
    const rows = await this.db.selectFrom(this.table).selectAll().orderBy('created_at').orderBy('id').execute();
    this.cache = new Map(rows.map((r) => [r.id, freeze(this.toResource(r))]));
  }

  /** Calls fn after every committed change (the controller's watches). */
  watch(fn: (e: ResourceEvent<S, St>) => void): void {
    this.watchers.push(fn);
  }

  private emit(e: ResourceEvent<S, St>): void {
    // A watcher's failure must not make a committed write look failed.
    for (const w of this.watchers) {
      try {
        w(e);
      } catch {
        /* the watcher's own concern */
      }
    }
  }

  newId(): string {
    return `${this.idPrefix}-${randomBytes(8).toString('hex')}`;
  }

  private toResource(row: ResourceRow): Resource<S, St> & { resourceVersion: number } {
    return {
      id: row.id,
      name: row.name,
      labels: JSON.parse(row.labels) as Record<string, string>,
      annotations: JSON.parse(row.annotations) as Record<string, string>,
      spec: JSON.parse(row.spec) as S,
      status: JSON.parse(row.status) as St,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
      generation: row.generation,
      resourceVersion: row.resource_version,
    };
  }

  /**
   * Inserts a resource. Ids and names share one space per kind: a reference must never be one
   * resource's id and another's name, so a new id equal to an existing name (or a new name equal to
   * an existing id) is refused, checked in the same transaction as the insert.
   */
  async create(r: NewResource<S, St>): Promise<Resource<S, St>> {
    const now = this.clock().toISOString();
    const row: ResourceRow = {
      id: r.id ?? this.newId(),
      name: r.name,
      labels: JSON.stringify(r.labels ?? {}),
      annotations: JSON.stringify(r.annotations ?? {}),
      spec: JSON.stringify(r.spec),
      status: JSON.stringify(r.status),
      created_at: now,
      updated_at: now,
      generation: 1,
      resource_version: 1,
      ...(this.scopeOf ? { scope: this.scopeOf(r.spec) } : {}),
    };
    try {
      await this.db.transaction().execute(async (trx) => {
        const clash = await trx
          .selectFrom(this.table)
          .select(['id', 'name'])
          .where((eb) => eb.or([eb('name', '=', row.id), eb('id', '=', row.name)]))
          .executeTakeFirst();
        if (clash) {
          const what =
            clash.name === row.id ? `id '${row.id}' is the name of ${this.kind} ${clash.id}` : `name '${row.name}' is the id of another ${this.kind}`;
          throw new ConflictError(`${this.kind} ${what}: ids and names must not collide`, 'id_name_collision');
        }
        await trx.insertInto(this.table).values(row).execute();
      });
    } catch (e) {
      if (isUniqueViolation(e)) throw new ConflictError(`${this.kind} '${r.name}' already exists${this.scopeOf ? ` in ${this.scopeOf(r.spec)}` : ''}`);
      throw e;
    }
    const created = this.toResource(row);
    this.cache?.set(created.id, freeze(created));
    this.emit({ id: created.id, after: created, origin: 'other' });
    return created;
  }

  async get(id: string): Promise<Resource<S, St> | undefined> {
    if (this.cache) return this.cache.get(id);
    const row = await this.db.selectFrom(this.table).selectAll().where('id', '=', id).executeTakeFirst();
    return row ? this.toResource(row) : undefined;
  }

  /** Looks a resource up by id or name (users type names, programs keep ids); a reference that matches two is refused. */
  async find(ref: string): Promise<Resource<S, St> | undefined> {
    if (this.cache) {
      const byId = this.cache.get(ref);
      const byName = [...this.cache.values()].filter((r) => r.name === ref && r.id !== ref);
      const matches = [...(byId ? [byId] : []), ...byName].sort((a, b) => a.id.localeCompare(b.id));
      if (matches.length > 1) throw new AmbiguousRefError(this.kind, ref, matches);
      return matches[0];
    }
    const rows = await this.db
      .selectFrom(this.table)
      .selectAll()
      .where((eb) => eb.or([eb('id', '=', ref), eb('name', '=', ref)]))
      .orderBy('id')
      .limit(2)
      .execute();
    if (rows.length > 1) throw new AmbiguousRefError(this.kind, ref, rows);
    return rows[0] ? this.toResource(rows[0]) : undefined;
  }

  /** Whether a reference is already some resource's id or name (a new one must not take it). */
  async taken(ref: string): Promise<boolean> {
    if (this.cache) return this.cache.has(ref) || [...this.cache.values()].some((r) => r.name === ref);
    const row = await this.db
      .selectFrom(this.table)
      .select('id')
      .where((eb) => eb.or([eb('id', '=', ref), eb('name', '=', ref)]))
      .executeTakeFirst();
    return !!row;
  }

  async mustFind(ref: string): Promise<Resource<S, St>> {
    const r = await this.find(ref);
    if (!r) throw new NotFoundError(this.kind, ref);
    return r;
  }

  async list(): Promise<Resource<S, St>[]> {
    if (this.cache) return [...this.cache.values()];
    const rows = await this.db.selectFrom(this.table).selectAll().orderBy('created_at').orderBy('id').execute();
    return rows.map((r) => this.toResource(r));
  }

  async count(): Promise<number> {
    if (this.cache) return this.cache.size;
    const r = await this.db
      .selectFrom(this.table)
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  /**
   * Read-modify-write with compare-and-set on resource_version, retried on conflict.
   * `mutate` returns the change, or null to leave the resource as it is. A spec change bumps generation.
   */
  update(id: string, mutate: (cur: Resource<S, St>) => Change<S> | null): Promise<Resource<S, St>> {
    return this.write(
      id,
      (cur) => {
        const change = mutate(cur);
        // The type keeps status out of a literal, not out of an object built elsewhere.
        if (change && 'status' in change) throw new Error(`${this.kind} status is written through updateStatus (the status writer)`);
        return change;
      },
      'other',
    );
  }

  /** A status write (see StatusChange): for the status writer only. */
  updateStatus(id: string, mutate: (cur: Resource<S, St>) => StatusChange<S, St> | null, origin: ChangeOrigin): Promise<Resource<S, St>> {
    return this.write(id, mutate, origin);
  }

  private async write(id: string, mutate: (cur: Resource<S, St>) => (Change<S> & { status?: St }) | null, origin: ChangeOrigin): Promise<Resource<S, St>> {
    for (let attempt = 0; attempt < 100; attempt++) {
      // From memory first; should another writer have been first, the compare-and-set fails and the row is read.
      const cached = attempt === 0 ? this.cache?.get(id) : undefined;
      const row = cached ? toRow(cached, this.scopeOf) : await this.db.selectFrom(this.table).selectAll().where('id', '=', id).executeTakeFirst();
      if (!row) throw new NotFoundError(this.kind, id);
      const cur = cached ?? this.toResource(row);
      const change = mutate(cur);
      if (!change) return cur;
      const next: Partial<ResourceRow> = {
        updated_at: this.clock().toISOString(),
        resource_version: row.resource_version + 1,
      };
      if (change.spec !== undefined) {
        const spec = JSON.stringify(change.spec);
        if (spec !== row.spec) {
          next.spec = spec;
          next.generation = row.generation + 1;
        }
      }
      if (change.newGeneration) next.generation = row.generation + 1;
      if (change.status !== undefined) next.status = JSON.stringify(change.status);
      if (change.labels !== undefined) next.labels = JSON.stringify(change.labels);
      if (change.annotations !== undefined) next.annotations = JSON.stringify(change.annotations);
      const res = await this.db.updateTable(this.table).set(next).where('id', '=', id).where('resource_version', '=', row.resource_version).executeTakeFirst();
      if (Number(res.numUpdatedRows) === 1) {
        const after = this.toResource({ ...row, ...next } as ResourceRow);
        this.cache?.set(id, freeze(after));
        this.emit({ id, before: cur, after, origin });
        return after;
      }
    }
    throw new ConflictError(`${this.kind} '${id}' is being changed concurrently; try again`);
  }

  async delete(id: string): Promise<boolean> {
    const row = await this.db.deleteFrom(this.table).where('id', '=', id).returningAll().executeTakeFirst();
    this.cache?.delete(id);
    if (row) this.emit({ id, before: this.toResource(row as ResourceRow), origin: 'other' });
    return !!row;
  }
}

type Cached<S, St> = Resource<S, St> & { resourceVersion: number };

function freeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) freeze(v);
  }
  return o;
}

/** The row a cached resource was read from (what a compare-and-set starts from). */
function toRow<S, St>(r: Cached<S, St>, scopeOf?: (spec: S) => string): ResourceRow {
  return {
    id: r.id,
    name: r.name,
    labels: JSON.stringify(r.labels),
    annotations: JSON.stringify(r.annotations),
    spec: JSON.stringify(r.spec),
    status: JSON.stringify(r.status),
    created_at: r.createdAt,
    updated_at: r.updatedAt,
    generation: r.generation,
    resource_version: r.resourceVersion,
    ...(scopeOf ? { scope: scopeOf(r.spec) } : {}),
  };
}
