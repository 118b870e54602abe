/**
 * A backup repository: content-addressed blobs in pack files, an index of where each blob is,
 * snapshots that name a tree of files, and key files that open it. Every blob is stored once per
 * repository (deduplication), compressed where that pays, sealed (authenticated encryption) unless
 * the repository was made unencrypted on purpose.
 *
 *   config            {version, id, encryption, sealed: chunker parameters and gear seed}
 *   keys/<id>         the master key sealed by a passphrase (scrypt + AES-256-GCM)
 *   data/<xx>/<sha>   pack files (pack.ts), named by the SHA-256 of their bytes
 *   index/<sha>       sealed JSON: which blobs each pack holds, and where
 *   snapshots/<sha>   sealed JSON: time, host, paths, source, root tree, parent, tags, manifest
 *   locks/<random>    who uses the repository (lock.ts)
 *
 * Packs are written before the index that names them: an interrupted backup leaves packs no index
 * knows, which the next run indexes from the packs' own headers, so nothing stored is stored again.
 */
import { createHash, randomBytes } from 'node:crypto';
import { DEFAULT_CHUNKER, gearTable, type ChunkerParams } from './chunker.ts';
import { decode, encode, loadCodec } from './codec.ts';
import { openBlob } from './open-blob.ts';
import {
  AeadCrypter,
  newMasterKey,
  openMasterKey,
  PlainCrypter,
  sealMasterKey,
  WrongPassphraseError,
  type Crypter,
  type KeyFile,
  type ScryptParams,
} from './crypto.ts';
import { PackBuilder, packId, readPackHeader, type BlobKind, type Codec, type PackedBlob } from './pack.ts';
import { writeBlob, type BlobWrite } from './blob-writes.ts';
import { chunkBuffer, chunksOf } from './file-chunks.ts';
import { SealPool, type Sealed } from './seal-pool.ts';
import { Slots } from './slots.ts';
import { NotFoundError, type RepoStorage } from './storage.ts';

/** Packs are closed at about this size: big enough for few files, small enough to rewrite in prune. */
const PACK_TARGET = 16 * 1024 * 1024;

interface OuterConfig {
  version: 1;
  id: string;
  encryption: 'aes-256-gcm' | 'none';
  sealed: string;
}
interface InnerConfig {
  chunker: ChunkerParams;
  gearSeed: string;
}

export interface IndexEntry extends PackedBlob {
  pack: string;
}

export interface SnapshotRecord {
  time: string;
  hostname: string;
  paths: string[];
  /** What a disk snapshot is of (`disk PATH`, `volume NAME`); file snapshots are of their paths. */
  source?: string;
  tree: string;
  parent?: string;
  tags: string[];
  /** Totals of what the snapshot holds. */
  stats: { files: number; dirs: number; bytes: number };
  /** The machine's layout and the file groups for bare-metal and system-state recovery. */
  manifest?: unknown;
}

export class RepositoryError extends Error {}

export class Repository {
  private readonly index = new Map<string, IndexEntry>();
  private readonly indexFiles = new Set<string>();
  /**
   * One open pack per kind: trees go to packs of their own (as restic does), so walking a
   * snapshot's trees reads a few small packs instead of every data pack a tree landed in.
   */
  private packs: Record<BlobKind, PackBuilder> = { data: new PackBuilder(), tree: new PackBuilder() };
  /** Blobs in packs written since the last index file. */
  private unindexed: { pack: string; blobs: PackedBlob[] }[] = [];
  readonly stats = { blobsStored: 0, blobsDeduplicated: 0, bytesStored: 0, packsWritten: 0 };
  private pool?: SealPool;
  private readonly sealing = new Set<Promise<void>>();
  private readonly sealSlots = new Slots(64);
  private sealError: unknown;

  private constructor(
    readonly storage: RepoStorage,
    readonly id: string,
    readonly crypter: Crypter,
    readonly chunker: ChunkerParams,
    readonly gear: Uint32Array,
    private readonly master?: Buffer,
  ) {}

  get pooled(): boolean {
    return !!this.pool;
  }

  /** Compression and sealing (and, for restores, opening) move to `workers` threads until stopSealPool. */
  async startSealPool(workers: number): Promise<void> {
    if (this.pool || workers < 1) return;
    const pool = new SealPool(this.master, workers, this.chunker, this.gear);
    await pool.start();
    this.pool = pool;
  }

  /**
   * Restores: the given blobs of a pack opened, checked, and written where `writes` says (per blob),
   * on a worker when the pool runs, here otherwise. Every blob is checked before any is written.
   */
  async writeBlobs(pack: string, data: Buffer, ids: string[], writes: BlobWrite[][]): Promise<void> {
    const entries = ids.map((id) => this.index.get(id)!);
    if (!this.pool) {
      const plains = entries.map((e) => this.unpack(e, data));
      plains.forEach((plain, i) => writeBlob(plain, writes[i]!));
      return;
    }
    await this.pool.writeBlobs(pack, data, entries, writes).catch((e: Error) => {
      throw new RepositoryError(e.message);
    });
  }

  async stopSealPool(): Promise<void> {
    await this.drainSeals();
    await this.pool?.close();
    this.pool = undefined;
  }

  private async drainSeals(): Promise<void> {
    while (this.sealing.size) await Promise.all(this.sealing);
    if (this.sealError) throw this.sealError;
  }

  /** Makes a new repository; `passphrase` undefined means unencrypted, on purpose. */
  static async init(storage: RepoStorage, passphrase: string | undefined, opts: { scrypt?: ScryptParams; chunker?: ChunkerParams } = {}): Promise<Repository> {
    if (await storage.exists('config', 'config')) throw new RepositoryError(`a repository already exists at ${storage.location}`);
    const id = randomBytes(16).toString('hex');
    let crypter: Crypter = new PlainCrypter();
    let masterKey: Buffer | undefined;
    if (passphrase !== undefined) {
      const master = newMasterKey();
      const kf = await sealMasterKey(passphrase, master, opts.scrypt);
      await storage.write('keys', randomBytes(16).toString('hex'), Buffer.from(JSON.stringify(kf)));
      crypter = new AeadCrypter(master);
      masterKey = master;
    }
    const inner: InnerConfig = { chunker: opts.chunker ?? DEFAULT_CHUNKER, gearSeed: randomBytes(32).toString('base64') };
    const outer: OuterConfig = {
      version: 1,
      id,
      encryption: crypter.encrypted ? 'aes-256-gcm' : 'none',
      sealed: crypter.seal(Buffer.from(JSON.stringify(inner))).toString('base64'),
    };
    await storage.write('config', 'config', Buffer.from(JSON.stringify(outer)), { exclusive: true });
    await loadCodec();
    return new Repository(storage, id, crypter, inner.chunker, gearTable(Buffer.from(inner.gearSeed, 'base64')), masterKey);
  }

  static async open(storage: RepoStorage, passphrase: string | undefined): Promise<Repository> {
    if (!(await storage.exists('config', 'config')))
      throw new RepositoryError(`no repository at ${storage.location} (make one with: outrig backup --repo ${storage.location} init)`);
    const outer = JSON.parse((await storage.read('config', 'config')).toString('utf8')) as OuterConfig;
    if (outer.version !== 1) throw new RepositoryError(`repository version ${outer.version} is not supported`);
    let crypter: Crypter = new PlainCrypter();
    let master: Buffer | undefined;
    if (outer.encryption !== 'none') {
      if (passphrase === undefined)
        throw new RepositoryError('the repository is encrypted: give its passphrase in OUTRIG_BACKUP_PASSPHRASE or --passphrase-file');
      for (const k of await storage.list('keys')) {
        const kf = JSON.parse((await storage.read('keys', k.name)).toString('utf8')) as KeyFile;
        master = await openMasterKey(passphrase, kf).catch((e: unknown) => {
          if (e instanceof WrongPassphraseError) return undefined;
          throw e;
        });
        if (master) break;
      }
      if (!master) throw new WrongPassphraseError();
      crypter = new AeadCrypter(master);
    }
    const inner = JSON.parse(crypter.open(Buffer.from(outer.sealed, 'base64'), 'the repository configuration').toString('utf8')) as InnerConfig;
    await loadCodec();
    const repo = new Repository(storage, outer.id, crypter, inner.chunker, gearTable(Buffer.from(inner.gearSeed, 'base64')), master);
    await repo.loadIndex();
    return repo;
  }

  // ---- index ----

  private async loadIndex(): Promise<void> {
    for (const f of await this.storage.list('index')) {
      if (this.indexFiles.has(f.name)) continue;
      const doc = this.readJson<{ packs: { id: string; blobs: PackedBlob[] }[] }>(await this.storage.read('index', f.name), `index ${f.name}`);
      for (const p of doc.packs) for (const b of p.blobs) this.index.set(b.id, { ...b, pack: p.id });
      this.indexFiles.add(f.name);
    }
  }

  /** Packs that no index names (an interrupted backup): indexed from their own headers. Returns how many. */
  async recoverUnindexedPacks(): Promise<number> {
    const known = new Set([...this.index.values()].map((e) => e.pack));
    let n = 0;
    for (const f of await this.storage.list('data')) {
      if (known.has(f.name)) continue;
      const data = await this.storage.read('data', f.name);
      if (packId(data) !== f.name) continue; // torn or damaged: verify reports it
      const blobs = readPackHeader(data, this.crypter, f.name);
      for (const b of blobs) if (!this.index.has(b.id)) this.index.set(b.id, { ...b, pack: f.name });
      this.unindexed.push({ pack: f.name, blobs });
      n++;
    }
    if (n) await this.writeIndex();
    return n;
  }

  has(id: string): boolean {
    return this.index.has(id);
  }

  entry(id: string): IndexEntry | undefined {
    return this.index.get(id);
  }

  allEntries(): IterableIterator<IndexEntry> {
    return this.index.values();
  }

  // ---- blobs ----

  blobId(plain: Uint8Array): string {
    return this.crypter.blobId(plain);
  }

  /** Stores a blob unless the repository has it; returns its id. */
  async saveBlob(kind: BlobKind, plain: Uint8Array, knownId?: string): Promise<string> {
    const id = knownId ?? this.crypter.blobId(plain);
    if (this.index.has(id)) {
      this.stats.blobsDeduplicated++;
      return id;
    }
    // Known at once, so a second copy in the same run is deduplicated too; readable after flushPack.
    this.index.set(id, { id, kind, codec: 'none', offset: -1, length: 0, rawLength: plain.length, pack: '' });
    const add = async (codec: Codec, sealed: Buffer) => {
      this.packs[kind].add({ id, kind, codec, rawLength: plain.length }, sealed);
      this.stats.blobsStored++;
      this.stats.bytesStored += sealed.length;
      if (this.packs[kind].bytes >= PACK_TARGET) await this.flushPack(kind);
    };
    if (!this.pool) {
      const { codec, data } = encode(plain);
      await add(codec, this.crypter.seal(data));
      return id;
    }
    if (this.sealError) throw this.sealError;
    // Enough in flight to keep every worker busy, not so much that memory grows with the backup.
    // A semaphore, not a race over the jobs: many callers wait at once (trees of a parallel walk).
    await this.sealSlots.acquire();
    const job: Promise<void> = this.pool
      .seal(plain)
      .then(({ codec, sealed }) => add(codec, sealed))
      .catch((e: unknown) => {
        this.sealError ??= e;
      })
      .finally(() => {
        this.sealing.delete(job);
        this.sealSlots.release();
      });
    this.sealing.add(job);
    return id;
  }

  async loadBlob(id: string): Promise<Buffer> {
    const e = this.index.get(id);
    if (!e) throw new RepositoryError(`blob ${id.slice(0, 12)} is not in the repository index`);
    if (!e.pack) {
      await this.drainSeals();
      await this.flushPack();
    }
    const cur = this.index.get(id)!;
    return this.unpack(cur, await this.packData(cur.pack));
  }

  /** A whole pack file; a missing one is named as such. */
  async readPack(name: string, forBlob?: string): Promise<Buffer> {
    return this.storage.read('data', name).catch((err: Error) => {
      throw err instanceof NotFoundError
        ? new RepositoryError(`pack ${name.slice(0, 12)}${forBlob ? ` holding blob ${forBlob.slice(0, 12)}` : ''} is missing from the repository`)
        : err;
    });
  }

  /** A blob out of its pack's bytes: opened, decompressed, and checked against its id. */
  unpack(e: IndexEntry, pack: Buffer): Buffer {
    try {
      return openBlob(this.crypter, e, pack, e.pack);
    } catch (err) {
      throw new RepositoryError((err as Error).message);
    }
  }

  /**
   * Whole packs, the last few kept: restores and tree walks read blobs in about the order they
   * were written, so one read of a pack serves many blobs instead of an open and read per blob.
   */
  private readonly packCache = new Map<string, Promise<Buffer>>();
  private packData(name: string): Promise<Buffer> {
    const hit = this.packCache.get(name);
    if (hit) {
      this.packCache.delete(name);
      this.packCache.set(name, hit);
      return hit;
    }
    // The promise is cached, so concurrent readers of one pack share one read.
    const data = this.readPack(name);
    this.packCache.set(name, data);
    data.catch(() => this.packCache.delete(name));
    while (this.packCache.size > 4) this.packCache.delete(this.packCache.keys().next().value!);
    return data;
  }

  private fileBuf?: Buffer;

  /**
   * Stores a file's chunks, on a worker when the seal pool runs; returns its blob ids in order and
   * the bytes read. `known` (the previous version's blob ids) are not sealed again.
   */
  async saveFile(path: string, size: number, known: string[] = []): Promise<{ ids: string[]; bytes: number }> {
    const ids: string[] = [];
    if (!this.pool) {
      const chunks = chunksOf(path, this.chunker, this.gear, (this.fileBuf ??= chunkBuffer(this.chunker)));
      for (let r = chunks.next(); ; r = chunks.next()) {
        if (r.done) return { ids, bytes: r.value };
        ids.push(await this.saveBlob('data', r.value));
      }
    }
    if (this.sealError) throw this.sealError;
    let missing: string | undefined;
    const bytes = await this.pool.file(path, size, known, (c) => {
      ids.push(c.blob);
      if (c.sealed) this.addSealed(c.blob, 'data', c.rawLength, c.sealed);
      else if (!this.index.has(c.blob)) missing ??= c.blob;
      else this.stats.blobsDeduplicated++;
    });
    if (missing) throw new RepositoryError(`blob ${missing.slice(0, 12)} of the previous version of ${path} is gone from the repository`);
    return { ids, bytes };
  }

  /** A blob sealed on a worker goes into the open pack, unless a copy got there first. */
  private addSealed(id: string, kind: BlobKind, rawLength: number, s: Sealed): void {
    if (this.index.has(id)) {
      this.stats.blobsDeduplicated++;
      return;
    }
    this.index.set(id, { id, kind, codec: 'none', offset: -1, length: 0, rawLength, pack: '' });
    this.packs[kind].add({ id, kind, codec: s.codec, rawLength }, s.sealed);
    this.stats.blobsStored++;
    this.stats.bytesStored += s.sealed.length;
    if (this.packs[kind].bytes < PACK_TARGET) return;
    const job: Promise<void> = this.flushPack(kind)
      .catch((e: unknown) => {
        this.sealError ??= e;
      })
      .finally(() => this.sealing.delete(job));
    this.sealing.add(job);
  }

  /** Writes the open pack of one kind, or of every kind. */
  async flushPack(kind?: BlobKind): Promise<void> {
    if (!kind) {
      await this.flushPack('data');
      await this.flushPack('tree');
      return;
    }
    const pack = this.packs[kind];
    if (!pack.count) return;
    const { id, data, blobs } = pack.finish(this.crypter);
    this.packs[kind] = new PackBuilder();
    await this.storage.write('data', id, data);
    for (const b of blobs) this.index.set(b.id, { ...b, pack: id });
    this.unindexed.push({ pack: id, blobs });
    this.stats.packsWritten++;
  }

  private async writeIndex(): Promise<void> {
    if (!this.unindexed.length) return;
    const body = this.sealJson({ packs: this.unindexed.map((u) => ({ id: u.pack, blobs: u.blobs })) });
    const name = createHash('sha256').update(body).digest('hex');
    await this.storage.write('index', name, body);
    this.indexFiles.add(name);
    this.unindexed = [];
  }

  /** Makes everything saved so far durable and findable: the open pack, then an index naming it. */
  async flush(): Promise<void> {
    await this.drainSeals();
    await this.flushPack();
    await this.writeIndex();
  }

  /**
   * Drops the given packs: blobs in them that are still used are copied into new packs first, then
   * one new index names everything that remains, and only then the old index files and the
   * dropped packs are deleted. An interruption at any point leaves every used blob reachable.
   */
  async rewrite(doomed: string[], used: Set<string>): Promise<void> {
    const drop = new Set(doomed);
    for (const e of [...this.index.values()].filter((x) => drop.has(x.pack))) {
      if (used.has(e.id)) {
        const plain = await this.loadBlob(e.id);
        this.index.delete(e.id);
        await this.saveBlob(e.kind, plain, e.id);
      } else this.index.delete(e.id);
    }
    await this.flushPack();
    const packs = new Map<string, PackedBlob[]>();
    for (const { pack, ...blob } of this.index.values()) packs.set(pack, [...(packs.get(pack) ?? []), blob]);
    const body = this.sealJson({ packs: [...packs].map(([id, blobs]) => ({ id, blobs })) });
    const name = createHash('sha256').update(body).digest('hex');
    await this.storage.write('index', name, body);
    for (const old of this.indexFiles) if (old !== name) await this.storage.remove('index', old);
    this.indexFiles.clear();
    this.indexFiles.add(name);
    this.unindexed = [];
    for (const p of doomed) {
      this.packCache.delete(p);
      await this.storage.remove('data', p);
    }
  }

  // ---- snapshots ----

  async saveSnapshot(s: SnapshotRecord): Promise<string> {
    await this.flush();
    const body = this.sealJson(s);
    const id = createHash('sha256').update(body).digest('hex');
    await this.storage.write('snapshots', id, body);
    return id;
  }

  async snapshots(): Promise<(SnapshotRecord & { id: string })[]> {
    const out: (SnapshotRecord & { id: string })[] = [];
    for (const f of await this.storage.list('snapshots'))
      out.push({ id: f.name, ...this.readJson<SnapshotRecord>(await this.storage.read('snapshots', f.name), `snapshot ${f.name.slice(0, 8)}`) });
    return out.sort((a, b) => a.time.localeCompare(b.time) || a.id.localeCompare(b.id));
  }

  /** An id, a unique id prefix, or `latest`. */
  async findSnapshot(ref: string): Promise<SnapshotRecord & { id: string }> {
    const all = await this.snapshots();
    if (ref === 'latest') {
      const last = all.at(-1);
      if (!last) throw new RepositoryError('the repository has no snapshots');
      return last;
    }
    const hits = all.filter((s) => s.id.startsWith(ref));
    if (hits.length === 1) return hits[0]!;
    throw new RepositoryError(hits.length ? `snapshot id prefix '${ref}' is ambiguous (${hits.length} snapshots)` : `no snapshot '${ref}'`);
  }

  async removeSnapshot(id: string): Promise<void> {
    await this.storage.remove('snapshots', id);
  }

  // ---- sealed JSON ----

  sealJson(v: unknown): Buffer {
    const { codec, data } = encode(Buffer.from(JSON.stringify(v)));
    return this.crypter.seal(Buffer.concat([Buffer.from([codec === 'zstd' ? 1 : 0]), data]));
  }

  readJson<T>(sealed: Buffer, what: string): T {
    const b = this.crypter.open(sealed, what);
    const body = b[0] === 1 ? decode('zstd', b.subarray(1), -1, what) : b.subarray(1);
    return JSON.parse(body.toString('utf8')) as T;
  }
}
