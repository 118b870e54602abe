/**
 * Backing up files: walks the given paths, stores each file's content as content-defined chunks
 * and each directory as a tree blob, and writes a snapshot. With a parent snapshot, a file whose
 * metadata (mtime, ctime, size, inode) did not change is not read again: its blobs are reused.
 *
 * File system calls are synchronous on purpose: a backup is tens of thousands of small lstat,
 * open and read calls, and each asynchronous one costs a hop through libuv's thread pool that
 * costs more than the call (measured: 60% of a backup's time was spent waiting on those hops).
 * Whoever runs a backup inside a long-lived process runs it in a worker thread.
 */
import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { availableParallelism, hostname } from 'node:os';
import { join, resolve, sep } from 'node:path';
import type { Repository, SnapshotRecord } from './repository.ts';
import { decodeTree, encodeTree, nodeOf, unchanged, type TreeNode } from './tree.ts';
import { Slots } from './slots.ts';
import { readXattrs, type Xattr } from './xattrs.ts';

export interface BackupProgress {
  files: number;
  dirs: number;
  /** Bytes of file content seen (read or reused). */
  bytes: number;
  /** Bytes actually read from disk. */
  bytesRead: number;
  /** Files skipped as unchanged against the parent snapshot. */
  unchanged: number;
  errors: { path: string; error: string }[];
}

export interface BackupOptions {
  parent?: string;
  tags?: string[];
  host?: string;
  /** What the snapshot is of when its paths do not say it (a disk, a volume): retention groups by it. */
  source?: string;
  manifest?: unknown;
  onProgress?: (p: BackupProgress) => void;
  now?: () => Date;
  /** Threads that compress and seal (default: one per CPU; 0: none, all on this thread). */
  workers?: number;
  /**
   * Stops the backup between files (and before the snapshot is written): `run` rejects with the
   * signal's reason and writes no snapshot. Packs sealed so far stay as unreferenced data prune removes.
   */
  signal?: AbortSignal;
}

/** Files being backed up at once: enough to keep every worker busy between the walk's pauses. */
const FILES_IN_FLIGHT = 64;

export class Archiver {
  readonly progress: BackupProgress = { files: 0, dirs: 0, bytes: 0, bytesRead: 0, unchanged: 0, errors: [] };
  private xattrs = new Map<string, Xattr[]>();
  private readonly slots = new Slots(FILES_IN_FLIGHT);

  constructor(
    private readonly repo: Repository,
    private readonly o: BackupOptions = {},
  ) {}

  /** Where each root is read from, when the snapshot names it otherwise (a filesystem read out of a disk image). */
  private readonly physical = new Map<string, string>();

  /**
   * Backs up the paths (made absolute) into a new snapshot; returns its id and record. A path
   * given as `{ path, as }` is read from `path` and stored in the snapshot as `as`.
   */
  async run(paths: (string | { path: string; as: string })[]): Promise<{ id: string; snapshot: SnapshotRecord }> {
    for (const p of paths) if (typeof p !== 'string') this.physical.set(resolve(p.as), resolve(p.path));
    const roots = [...new Set(paths.map((p) => resolve(typeof p === 'string' ? p : p.as)))].sort();
    const phys = (r: string) => this.physical.get(r) ?? r;
    this.o.signal?.throwIfAborted();
    for (const r of roots) lstatSync(phys(r)); // a missing root is an error before anything is written
    await this.repo.recoverUnindexedPacks();
    const parent = this.o.parent ? await this.repo.findSnapshot(this.o.parent) : undefined;
    this.xattrs = await readXattrs(roots.map(phys));
    await this.repo.startSealPool(this.o.workers ?? availableParallelism());
    let tree: string;
    try {
      tree = await this.saveLevel('/', roots, parent?.tree);
      this.o.signal?.throwIfAborted();
      await this.repo.flush();
    } finally {
      await this.repo.stopSealPool();
    }
    const now = (this.o.now ?? (() => new Date()))();
    const snapshot: SnapshotRecord = {
      time: now.toISOString(),
      hostname: this.o.host ?? hostname(),
      paths: roots,
      ...(this.o.source ? { source: this.o.source } : {}),
      tree,
      parent: parent?.id,
      tags: this.o.tags ?? [],
      stats: { files: this.progress.files, dirs: this.progress.dirs, bytes: this.progress.bytes },
      manifest: this.o.manifest,
    };
    this.o.signal?.throwIfAborted();
    const id = await this.repo.saveSnapshot(snapshot);
    return { id, snapshot };
  }

  private async loadTree(id: string | undefined): Promise<Map<string, TreeNode>> {
    if (!id || !this.repo.has(id)) return new Map();
    return new Map(decodeTree(await this.repo.loadBlob(id)).nodes.map((n) => [n.name, n]));
  }

  /**
   * The directory `dir` as it appears on the way to the roots: only the entries that are roots
   * or lead to one. A root's entry is saved whole.
   */
  private async saveLevel(dir: string, roots: string[], parentTree: string | undefined): Promise<string> {
    const prev = await this.loadTree(parentTree);
    const names = new Map<string, string[]>();
    for (const r of roots) {
      const rel = dir === '/' ? r.slice(1) : r.slice(dir.length + 1);
      const first = rel.split(sep)[0]!;
      names.set(first, [...(names.get(first) ?? []), r]);
    }
    const nodes: TreeNode[] = [];
    for (const [name, under] of [...names.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const path = join(dir, name);
      if (under.includes(path)) nodes.push(await this.saveEntry(this.physical.get(path) ?? path, name, prev.get(name)));
      else {
        const n = this.withXattrs(path, this.intermediate(path, name));
        n.subtree = await this.saveLevel(path, under, prev.get(name)?.subtree);
        nodes.push(n);
      }
    }
    return this.repo.saveBlob('tree', encodeTree({ nodes }));
  }

  /** A directory on the way to a root: as it is here, or a plain one when the root is read from elsewhere. */
  private intermediate(path: string, name: string): TreeNode {
    try {
      return nodeOf(name, lstatSync(path, { bigint: true }));
    } catch {
      const ns = String(BigInt((this.o.now ?? (() => new Date()))().getTime()) * 1_000_000n);
      return { name, type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: ns, atime: ns, ctime: ns, size: 0, inode: '0', dev: '0', links: 2 };
    }
  }

  private withXattrs(path: string, n: TreeNode): TreeNode {
    const x = this.xattrs.get(path);
    if (x?.length) n.xattrs = x;
    return n;
  }

  /**
   * The entry's node, and (for a directory or a changed file) the work that completes it, already
   * started: files are backed up on the seal workers while the walk goes on, as many at once as
   * there are slots.
   */
  private async entry(path: string, name: string, prev: TreeNode | undefined): Promise<{ node: TreeNode; done?: Promise<void> }> {
    this.o.signal?.throwIfAborted();
    const st = lstatSync(path, { bigint: true });
    const n = this.withXattrs(path, nodeOf(name, st));
    switch (n.type) {
      case 'dir':
        this.progress.dirs++;
        return { node: n, done: this.saveDir(path, prev?.subtree).then((t) => void (n.subtree = t)) };
      case 'file': {
        this.progress.files++;
        if (unchanged(prev, n)) {
          n.content = prev.content;
          this.progress.unchanged++;
          this.progress.bytes += n.size;
          this.o.onProgress?.(this.progress);
          return { node: n };
        }
        await this.slots.acquire();
        if (this.o.signal?.aborted) {
          this.slots.release();
          this.o.signal.throwIfAborted();
        }
        const done = this.repo
          .saveFile(path, n.size, prev?.content)
          .then(({ ids, bytes }) => {
            n.content = ids;
            this.progress.bytesRead += bytes;
            this.progress.bytes += bytes;
            this.o.onProgress?.(this.progress);
          })
          .finally(() => this.slots.release());
        return { node: n, done };
      }
      case 'symlink':
        n.linktarget = readlinkSync(path);
        break;
    }
    return { node: n };
  }

  private async saveEntry(path: string, name: string, prev: TreeNode | undefined): Promise<TreeNode> {
    const { node, done } = await this.entry(path, name, prev);
    await done;
    return node;
  }

  private async saveDir(path: string, parentTree: string | undefined): Promise<string> {
    const prev = await this.loadTree(parentTree);
    let names: string[];
    try {
      names = readdirSync(path).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    } catch (e) {
      this.progress.errors.push({ path, error: (e as Error).message });
      names = [];
    }
    const nodes: (TreeNode | undefined)[] = [];
    const work: Promise<void>[] = [];
    // A file that vanished or cannot be read is reported, and the backup goes on without it; a cancel ends it.
    const skip = (i: number, p: string, e: unknown) => {
      this.o.signal?.throwIfAborted();
      nodes[i] = undefined;
      this.progress.errors.push({ path: p, error: (e as Error).message });
    };
    try {
      for (const [i, name] of names.entries()) {
        const p = join(path, name);
        try {
          const { node, done } = await this.entry(p, name, prev.get(name));
          nodes[i] = node;
          if (done) work.push(node.type === 'dir' ? done : done.catch((e: unknown) => skip(i, p, e)));
        } catch (e) {
          skip(i, p, e);
        }
      }
    } catch (e) {
      // Cancelled: the work already started still ends (with the same reason), and nobody waits for it.
      void Promise.allSettled(work);
      throw e;
    }
    await Promise.all(work);
    return this.repo.saveBlob('tree', encodeTree({ nodes: nodes.filter((n): n is TreeNode => !!n) }));
  }
}
