/**
 * diskd: the storage data plane of one host. Keeps every volume of the host open, serves them to
 * QEMU over NBD on one UNIX socket (export name = volume name, `name@snapshot` for snapshots),
 * and takes orders from the agent over a control socket (HTTP+JSON): create, delete, resize,
 * snapshot, clone, register images. It runs as its own process so an agent restart never
 * interrupts a guest's disk I/O.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { BacklogBudget } from './backlog.ts';
import { DiskEngine, DiskError, type CacheMode, type EngineInfo } from './engine.ts';
import { NbdServer } from './nbd/server.ts';
import { DiskExports } from './serve.ts';
import { fileSystemSpace, volumeMayAllocate, type DiskSpace } from './space.ts';

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const IMAGE_SNAPSHOT = 'base';

export interface DiskdPaths {
  dir: string;
  control: string;
  nbd: string;
  pidfile: string;
  volumes: string;
  images: string;
}

export function diskdPaths(dir: string): DiskdPaths {
  return {
    dir,
    control: join(dir, 'diskd.sock'),
    nbd: join(dir, 'nbd.sock'),
    pidfile: join(dir, 'diskd.pid'),
    volumes: join(dir, 'volumes'),
    images: join(dir, 'images'),
  };
}

export interface VolumeState {
  name: string;
  sizeBytes: number;
  blockSize: number;
  usedBytes: number;
  snapshots: string[];
  /** What the volume was cloned from, if anything. */
  source?: { volume?: string; image?: string; snapshot: string };
}

export type VolumeSource = { volume: string; snapshot: string } | { image: string };

class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

export class Diskd {
  readonly paths: DiskdPaths;
  private readonly exports = new DiskExports();
  private readonly nbd: NbdServer;
  private api?: FastifyInstance;
  /** uuid -> image id, for images registered here. */
  private readonly imageUuids = new Map<string, string>();
  /** Per volume name: operations run one at a time. */
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(
    dir: string,
    private readonly log: Logger,
    private readonly cache: CacheMode = 'writeback',
    limits: {
      /** Write bytes all NBD connections together may have in flight (NbdServer's default when absent). */
      maxTotalInFlightBytes?: number;
      /** Write-back bytes all volumes together may hold not yet durable (the engine's default when absent). */
      maxBacklogBytes?: number;
    } = {},
  ) {
    this.paths = diskdPaths(dir);
    this.nbd = new NbdServer({ exports: this.exports, log, maxTotalInFlightBytes: limits.maxTotalInFlightBytes });
    this.backlog = new BacklogBudget(limits.maxBacklogBytes);
  }

  /** Shared by every volume: one limit on what the host holds acknowledged but not durable. */
  readonly backlog: BacklogBudget;

  async start(): Promise<void> {
    mkdirSync(this.paths.volumes, { recursive: true, mode: 0o700 });
    mkdirSync(this.paths.images, { recursive: true, mode: 0o700 });
    for (const f of readdirSync(this.paths.images).filter((x) => x.endsWith('.odsk'))) {
      const e = await DiskEngine.open(join(this.paths.images, f), { readOnly: true });
      this.imageUuids.set(e.uuid, f.slice(0, -5));
      await e.close();
    }
    for (const f of readdirSync(this.paths.volumes).filter((x) => x.endsWith('.odsk'))) {
      const name = f.slice(0, -5);
      try {
        this.exports.add(name, await DiskEngine.open(join(this.paths.volumes, f), { cache: this.cache, backlog: this.backlog }));
      } catch (e) {
        this.log.error({ volume: name, err: (e as Error).message }, 'volume cannot be opened; not served');
      }
    }
    await this.nbd.listen(this.paths.nbd);
    this.api = await this.buildApi();
    rmSync(this.paths.control, { force: true });
    await this.api.listen({ path: this.paths.control });
    writeFileSync(this.paths.pidfile, `${process.pid}\n`);
    this.log.info({ volumes: this.exports.names().length, nbd: this.paths.nbd }, 'diskd ready');
  }

  async close(): Promise<void> {
    await this.api?.close();
    await this.nbd.close();
    for (const name of this.exports.names()) await this.exports.remove(name)!.close();
    rmSync(this.paths.pidfile, { force: true });
  }

  private volumePath(name: string): string {
    if (!NAME_RE.test(name)) throw new HttpError(400, `invalid volume name '${name}'`);
    return join(this.paths.volumes, `${name}.odsk`);
  }

  private imagePath(id: string): string {
    if (!NAME_RE.test(id)) throw new HttpError(400, `invalid image id '${id}'`);
    return join(this.paths.images, `${id}.odsk`);
  }

  private serialized<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(name) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    this.locks.set(
      name,
      run.catch(() => undefined),
    );
    return run;
  }

  private state(name: string, e: EngineInfo): VolumeState {
    let source: VolumeState['source'];
    if (e.backing) {
      const image = this.imageUuids.get(e.backing.uuid);
      if (image) source = { image, snapshot: IMAGE_SNAPSHOT };
      else {
        const vol = this.exports.names().find((n) => this.exports.engine(n)!.uuid === e.backing!.uuid);
        const snap = vol
          ? this.exports
              .engine(vol)!
              .snapshots()
              .find((s) => s.id === e.backing!.snapshotId)?.name
          : undefined;
        source = { volume: vol, snapshot: snap ?? String(e.backing.snapshotId) };
      }
    }
    return {
      name,
      sizeBytes: e.virtualSize,
      blockSize: e.blockSize,
      usedBytes: e.mappedBlocks * e.blockSize,
      snapshots: e.snapshots.map((s) => s.name),
      source,
    };
  }

  list(): VolumeState[] {
    return this.exports.names().map((n) => this.state(n, this.exports.engine(n)!.info()));
  }

  /**
   * The volumes, the file system's size and free space, and what the volumes may still allocate
   * together (see space.ts for what that figure counts and what it does not), from one look at each
   * volume. Images are read-only: they never grow, and their files are already out of the free
   * figure. `space` is undefined if the file system cannot be read (the directory gone).
   */
  listWithSpace(): { items: VolumeState[]; space?: DiskSpace } {
    const infos = this.exports.names().map((n) => [n, this.exports.engine(n)!.info()] as const);
    return { items: infos.map(([n, e]) => this.state(n, e)), space: this.spaceOf(infos.map(([, e]) => e)) };
  }

  space(): DiskSpace | undefined {
    return this.spaceOf(this.exports.names().map((n) => this.exports.engine(n)!.info()));
  }

  private spaceOf(volumes: EngineInfo[]): DiskSpace | undefined {
    let fs: { totalBytes: number; freeBytes: number };
    try {
      fs = fileSystemSpace(this.paths.volumes);
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'cannot read the free space of the volumes directory');
      return undefined;
    }
    let provisionedBytes = 0;
    let mayAllocateBytes = 0;
    for (const e of volumes) {
      provisionedBytes += e.virtualSize;
      mayAllocateBytes += volumeMayAllocate({
        sizeBytes: e.virtualSize,
        blockSize: e.blockSize,
        usedBytes: e.mappedBlocks * e.blockSize,
        journalBytes: e.journal.reserved ? 0 : e.journal.size,
      });
    }
    return { ...fs, provisionedBytes, mayAllocateBytes };
  }

  /** Clones whose backing is (uuid, snapshot id). */
  private dependents(uuid: string, snapshotId?: number): string[] {
    return this.exports.names().filter((n) => {
      const b = this.exports.engine(n)!.info().backing;
      return b && b.uuid === uuid && (snapshotId === undefined || b.snapshotId === snapshotId);
    });
  }

  async createVolume(name: string, o: { sizeBytes: number; blockSize?: number; source?: VolumeSource }): Promise<{ created: boolean; volume: VolumeState }> {
    return this.serialized(name, async () => {
      const path = this.volumePath(name);
      const existing = this.exports.engine(name);
      if (existing) return { created: false, volume: this.state(name, existing.info()) };
      let backing: { path: string; snapshot: string } | undefined;
      if (o.source && 'volume' in o.source) {
        const { volume, snapshot } = o.source;
        const src = this.exports.engine(volume);
        if (!src) throw new HttpError(404, `source volume '${volume}' does not exist here`);
        if (!src.snapshots().some((s) => s.name === snapshot)) throw new HttpError(404, `volume '${volume}' has no snapshot '${snapshot}'`);
        backing = { path: this.volumePath(volume), snapshot };
      } else if (o.source && 'image' in o.source) {
        const p = this.imagePath(o.source.image);
        if (!existsSync(p)) throw new HttpError(404, `image '${o.source.image}' is not on this host`);
        backing = { path: p, snapshot: IMAGE_SNAPSHOT };
      }
      rmSync(path, { force: true }); // a half-created file from a crash; no engine has it open
      rmSync(`${path}.lock`, { force: true });
      try {
        DiskEngine.create(path, { size: o.sizeBytes, blockSize: o.blockSize, backing });
        this.exports.add(name, await DiskEngine.open(path, { cache: this.cache, backlog: this.backlog }));
      } catch (e) {
        rmSync(path, { force: true });
        throw e instanceof DiskError ? new HttpError(400, e.message) : e;
      }
      this.log.info({ volume: name, size: o.sizeBytes, source: o.source }, 'volume created');
      return { created: true, volume: this.state(name, this.exports.engine(name)!.info()) };
    });
  }

  async deleteVolume(name: string): Promise<boolean> {
    return this.serialized(name, async () => {
      const path = this.volumePath(name);
      const e = this.exports.engine(name);
      if (e) {
        const deps = this.dependents(e.uuid);
        if (deps.length) throw new HttpError(409, `volume '${name}' has clones: ${deps.join(', ')}`);
        this.exports.remove(name);
        await e.close();
      }
      const existed = existsSync(path);
      rmSync(path, { force: true });
      rmSync(`${path}.lock`, { force: true });
      if (existed) this.log.info({ volume: name }, 'volume deleted');
      return existed;
    });
  }

  private mustEngine(name: string): DiskEngine {
    this.volumePath(name);
    const e = this.exports.engine(name);
    if (!e) throw new HttpError(404, `no volume '${name}'`);
    return e;
  }

  async resize(name: string, sizeBytes: number): Promise<VolumeState> {
    return this.serialized(name, async () => {
      const e = this.mustEngine(name);
      if (sizeBytes < e.virtualSize) throw new HttpError(400, `shrinking a volume is not supported (${e.virtualSize} -> ${sizeBytes})`);
      if (sizeBytes > e.virtualSize) await e.resize(sizeBytes);
      return this.state(name, e.info());
    });
  }

  async createSnapshot(name: string, snapshot: string): Promise<boolean> {
    return this.serialized(name, async () => {
      const e = this.mustEngine(name);
      if (e.snapshots().some((s) => s.name === snapshot)) return false;
      try {
        await e.createSnapshot(snapshot);
      } catch (err) {
        throw err instanceof DiskError ? new HttpError(400, err.message) : err;
      }
      return true;
    });
  }

  async deleteSnapshot(name: string, snapshot: string): Promise<boolean> {
    return this.serialized(name, async () => {
      const e = this.exports.engine(name);
      if (!e) return false;
      const s = e.snapshots().find((x) => x.name === snapshot);
      if (!s) return false;
      const deps = this.dependents(e.uuid, s.id);
      if (deps.length) throw new HttpError(409, `snapshot '${snapshot}' of '${name}' has clones: ${deps.join(', ')}`);
      await e.deleteSnapshot(snapshot);
      return true;
    });
  }

  /** Adopts an imported image file (an Outrig disk with a 'base' snapshot) as image `id`. */
  async registerImage(id: string, from: string): Promise<boolean> {
    return this.serialized(`image:${id}`, async () => {
      const dest = this.imagePath(id);
      if (existsSync(dest)) return false;
      const e = await DiskEngine.open(from, { readOnly: true }).catch((err: Error) => {
        throw new HttpError(400, `${from} is not a usable disk: ${err.message}`);
      });
      const ok = e.snapshots().some((s) => s.name === IMAGE_SNAPSHOT);
      const uuid = e.uuid;
      await e.close();
      if (!ok) throw new HttpError(400, `image disk has no '${IMAGE_SNAPSHOT}' snapshot`);
      renameSync(from, dest);
      this.imageUuids.set(uuid, id);
      return true;
    });
  }

  hasImage(id: string): boolean {
    return existsSync(this.imagePath(id));
  }

  private async buildApi(): Promise<FastifyInstance> {
    // Loaded here, not with the module: disk/index.ts exports Diskd, and `outrig disk serve` (which
    // must serve a 1 TiB disk in under 128 MiB) should not carry an HTTP framework it never uses.
    const { default: Fastify } = await import('fastify');
    const app = Fastify({ logger: false, bodyLimit: 64 * 1024 });
    app.setErrorHandler((err: Error & { statusCode?: number; validation?: unknown }, _req, reply) => {
      const status = err instanceof HttpError ? err.statusCode : err.validation ? 400 : (err.statusCode ?? 500);
      if (status >= 500) this.log.error({ err }, 'diskd request failed');
      return reply
        .status(status)
        .send({ error: { code: status === 409 ? 'conflict' : status === 404 ? 'not_found' : status < 500 ? 'invalid' : 'internal', message: err.message } });
    });
    const name = { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] } as const;
    app.get('/healthz', async () => ({ ok: true, pid: process.pid, volumes: this.exports.names().length, nbd: this.paths.nbd }));
    // The volumes and the space they may take, from one moment: the agent reports both together.
    app.get('/volumes', async () => this.listWithSpace());
    app.get(
      '/space',
      async (_req, reply) => this.space() ?? reply.status(503).send({ error: { code: 'internal', message: 'the file system of the volumes cannot be read' } }),
    );
    app.get<{ Params: { name: string } }>('/volumes/:name', { schema: { params: name } }, async (req) =>
      this.state(req.params.name, this.mustEngine(req.params.name).info()),
    );
    app.put<{ Params: { name: string }; Body: { sizeBytes: number; blockSize?: number; source?: VolumeSource } }>(
      '/volumes/:name',
      {
        schema: {
          params: name,
          body: {
            type: 'object',
            additionalProperties: false,
            required: ['sizeBytes'],
            properties: {
              sizeBytes: { type: 'integer', minimum: 1 },
              blockSize: { type: 'integer' },
              source: {
                oneOf: [
                  {
                    type: 'object',
                    additionalProperties: false,
                    required: ['volume', 'snapshot'],
                    properties: { volume: { type: 'string' }, snapshot: { type: 'string' } },
                  },
                  { type: 'object', additionalProperties: false, required: ['image'], properties: { image: { type: 'string' } } },
                ],
              },
            },
          },
        },
      },
      async (req, reply) => {
        const r = await this.createVolume(req.params.name, req.body);
        return reply.status(r.created ? 201 : 200).send(r.volume);
      },
    );
    app.delete<{ Params: { name: string } }>('/volumes/:name', { schema: { params: name } }, async (req, reply) => {
      await this.deleteVolume(req.params.name);
      return reply.status(204).send();
    });
    app.post<{ Params: { name: string }; Body: { sizeBytes: number } }>(
      '/volumes/:name/resize',
      {
        schema: {
          params: name,
          body: { type: 'object', additionalProperties: false, required: ['sizeBytes'], properties: { sizeBytes: { type: 'integer', minimum: 1 } } },
        },
      },
      async (req) => this.resize(req.params.name, req.body.sizeBytes),
    );
    app.put<{ Params: { name: string; snap: string } }>('/volumes/:name/snapshots/:snap', async (req, reply) => {
      const created = await this.createSnapshot(req.params.name, req.params.snap);
      return reply.status(created ? 201 : 200).send({ volume: req.params.name, snapshot: req.params.snap });
    });
    app.delete<{ Params: { name: string; snap: string } }>('/volumes/:name/snapshots/:snap', async (req, reply) => {
      await this.deleteSnapshot(req.params.name, req.params.snap);
      return reply.status(204).send();
    });
    app.put<{ Params: { id: string }; Body: { from: string } }>(
      '/images/:id',
      { schema: { body: { type: 'object', additionalProperties: false, required: ['from'], properties: { from: { type: 'string' } } } } },
      async (req, reply) => {
        const created = await this.registerImage(req.params.id, req.body.from);
        return reply.status(created ? 201 : 200).send({ id: req.params.id });
      },
    );
    app.get<{ Params: { id: string } }>('/images/:id', async (req, reply) =>
      this.hasImage(req.params.id) ? { id: req.params.id } : reply.status(404).send({ error: { code: 'not_found', message: 'no such image' } }),
    );
    return app;
  }
}
