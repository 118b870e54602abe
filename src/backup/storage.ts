/**
 * Where a repository keeps its files. The repository code sees only this interface (whole-file
 * writes and reads, listing, removal), so an object store can stand in for the local
 * directory without touching it.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';

const FILE_KINDS = ['config', 'keys', 'data', 'index', 'snapshots', 'locks'] as const;
type FileKind = (typeof FILE_KINDS)[number];

export class NotFoundError extends Error {
  constructor(
    readonly kind: FileKind,
    readonly file: string,
  ) {
    super(`${kind}/${file} is missing from the repository`);
  }
}

export class ExistsError extends Error {}

export interface RepoStorage {
  readonly location: string;
  /** Writes a whole file, durably and atomically; with `exclusive`, fails if it exists. */
  write(kind: FileKind, name: string, data: Uint8Array, opts?: { exclusive?: boolean }): Promise<void>;
  read(kind: FileKind, name: string): Promise<Buffer>;
  list(kind: FileKind): Promise<{ name: string; size: number }[]>;
  remove(kind: FileKind, name: string): Promise<void>;
  exists(kind: FileKind, name: string): Promise<boolean>;
}

/** A repository in a local directory. Data files are spread over 256 subdirectories by name. */
export class LocalStorage implements RepoStorage {
  constructor(readonly location: string) {}

  private path(kind: FileKind, name: string): string {
    if (!/^[A-Za-z0-9._-]+$/.test(name) || name.startsWith('.')) throw new Error(`invalid repository file name '${name}'`);
    if (kind === 'config') return join(this.location, 'config');
    if (kind === 'data') return join(this.location, 'data', name.slice(0, 2), name);
    return join(this.location, kind, name);
  }

  /** Makes the directory layout (init). */
  async create(): Promise<void> {
    await mkdir(join(this.location, 'tmp'), { recursive: true, mode: 0o700 });
    for (const k of FILE_KINDS) if (k !== 'config') await mkdir(join(this.location, k), { recursive: true, mode: 0o700 });
    for (let i = 0; i < 256; i++) await mkdir(join(this.location, 'data', i.toString(16).padStart(2, '0')), { recursive: true, mode: 0o700 });
  }

  async write(kind: FileKind, name: string, data: Uint8Array, opts: { exclusive?: boolean } = {}): Promise<void> {
    const dest = this.path(kind, name);
    const tmp = join(this.location, 'tmp', `${name}.${randomBytes(6).toString('hex')}`);
    const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      if (opts.exclusive) {
        // link() fails if the name exists: the atomic create-if-absent that locks and init need.
        await link(tmp, dest).catch((e: NodeJS.ErrnoException) => {
          throw e.code === 'EEXIST' ? new ExistsError(`${kind}/${name} already exists`) : e;
        });
        await unlink(tmp);
      } else {
        await rename(tmp, dest);
      }
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
    await syncDir(join(dest, '..'));
  }

  async read(kind: FileKind, name: string): Promise<Buffer> {
    return readFile(this.path(kind, name)).catch((e: NodeJS.ErrnoException) => {
      throw e.code === 'ENOENT' ? new NotFoundError(kind, name) : e;
    });
  }

  async list(kind: FileKind): Promise<{ name: string; size: number }[]> {
    if (kind === 'config') return (await this.exists('config', 'config')) ? [{ name: 'config', size: (await stat(this.path('config', 'config'))).size }] : [];
    const dirs = kind === 'data' ? (await readdir(join(this.location, 'data'))).map((d) => join(this.location, 'data', d)) : [join(this.location, kind)];
    const out: { name: string; size: number }[] = [];
    for (const d of dirs) {
      for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
        if (e.isFile()) out.push({ name: e.name, size: (await stat(join(d, e.name))).size });
      }
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  async remove(kind: FileKind, name: string): Promise<void> {
    await rm(this.path(kind, name), { force: true });
  }

  async exists(kind: FileKind, name: string): Promise<boolean> {
    return stat(this.path(kind, name)).then(
      () => true,
      () => false,
    );
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
