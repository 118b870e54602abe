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
import { closeSync, lstatSync, openSync, readdirSync, readlinkSync, readSync } from 'node:fs';
import { availableParallelism, hostname } from 'node:os';
import { join, resolve, sep } from 'node:path';
import { Chunker } from './chunker.ts';
import type { Repository, SnapshotRecord } from './repository.ts';
import { decodeTree, encodeTree, nodeOf, unchanged, type Tree, type TreeNode } from './tree.ts';
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
  manifest?: unknown;
  onProgress?: (p: BackupProgress) => void;
  now?: () => Date;
  /** Threads that compress and seal (default: one per CPU; 0: none, all on this thread). */
  workers?: number;
}

const READ_SIZE = 8 * 1024 * 1024;

export class Archiver {
  readonly progress: BackupProgress = { files: 0, dirs: 0, bytes: 0, bytesRead: 0, unchanged: 0, errors: [] };
  private xattrs = new Map<string, Xattr[]>();
  private readonly buf: Buffer;

  constructor(
    private readonly repo: Repository,
    private readonly o: BackupOptions = {},
  ) {
    this.buf = Buffer.allocUnsafe(repo.chunker.maxSize + READ_SIZE);
  }

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
    for (const r of roots) lstatSync(phys(r)); // a missing root is an error before anything is written
    await this.repo.recoverUnindexedPacks();
    const parent = this.o.parent ? await this.repo.findSnapshot(this.o.parent) : undefined;
    this.xattrs = await readXattrs(roots.map(phys));
    await this.repo.startSealPool(this.o.workers ?? availableParallelism());
    let tree: string;
    try {
      tree = await this.saveLevel('/', roots, parent?.tree);
      await this.repo.flush();
    } finally {
      await this.repo.stopSealPool();
    }
    const now = (this.o.now ?? (() => new Date()))();
    const snapshot: SnapshotRecord = {
      time: now.toISOString(),
      hostname: this.o.host ?? hostname(),
      paths: roots,
      tree,
      parent: parent?.id,
      tags: this.o.tags ?? [],
      stats: { files: this.progress.files, dirs: this.progress.dirs, bytes: this.progress.bytes },
      manifest: this.o.manifest,
    };
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

  private async saveEntry(path: string, name: string, prev: TreeNode | undefined): Promise<TreeNode> {
    const st = lstatSync(path, { bigint: true });
    const n = this.withXattrs(path, nodeOf(name, st));
    switch (n.type) {
      case 'dir':
        n.subtree = await this.saveDir(path, prev?.subtree);
        this.progress.dirs++;
        break;
      case 'file':
        this.progress.files++;
        if (unchanged(prev, n)) {
          n.content = prev.content;
          this.progress.unchanged++;
          this.progress.bytes += n.size;
        } else n.content = await this.saveFile(path);
        break;
      case 'symlink':
        n.linktarget = readlinkSync(path);
        break;
    }
    this.o.onProgress?.(this.progress);
    return n;
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
    const tree: Tree = { nodes: [] };
    for (const name of names) {
      try {
        tree.nodes.push(await this.saveEntry(join(path, name), name, prev.get(name)));
      } catch (e) {
        // A file that vanished or cannot be read is reported, and the backup goes on without it.
        this.progress.errors.push({ path: join(path, name), error: (e as Error).message });
      }
    }
    return this.repo.saveBlob('tree', encodeTree(tree));
  }

  /** Reads the file once, cutting it into chunks as it goes; returns the blob ids in order. */
  private async saveFile(path: string): Promise<string[]> {
    const fd = openSync(path, 'r');
    const chunker = new Chunker(this.repo.chunker, this.repo.gear);
    const ids: string[] = [];
    const buf = this.buf;
    let start = 0;
    let end = 0;
    let eof = false;
    try {
      while (!eof || start < end) {
        if (!eof && end - start < this.repo.chunker.maxSize) {
          if (start > 0) {
            buf.copy(buf, 0, start, end);
            end -= start;
            start = 0;
          }
          const bytesRead = readSync(fd, buf, end, buf.length - end, null);
          if (bytesRead === 0) eof = true;
          end += bytesRead;
          this.progress.bytesRead += bytesRead;
          this.progress.bytes += bytesRead;
          if (!eof) continue;
        }
        if (start >= end) break;
        const n = chunker.cut(buf.subarray(start, end), eof);
        if (n < 0) continue;
        ids.push(await this.repo.saveBlob('data', buf.subarray(start, start + n)));
        start += n;
      }
    } finally {
      closeSync(fd);
    }
    return ids;
  }
}
