/**
 * Writes the reader's frames into a directory: the only code that turns a guest's names into files
 * on the host, so it trusts nothing the stream says. Every name is checked again; an entry goes
 * only into a directory this writer made (so no path leads through a symlink), never over an
 * existing name (O_EXCL, O_NOFOLLOW), and hard links only to files it made. Sizes, bytes and
 * entries are bounded. Owners, modes and times follow (directories last, deepest first);
 * extended attributes are returned for the caller to set.
 */
import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  ftruncateSync,
  futimesSync,
  lchownSync,
  linkSync,
  lutimesSync,
  mkdirSync,
  openSync,
  symlinkSync,
  writeSync,
  chmodSync,
  chownSync,
  utimesSync,
} from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { Frame, Meta } from './frames.ts';
import { linkTargetProblem, nameProblem, xattrNameProblem } from './names.ts';
import { printable } from '../sandbox/index.ts';

interface WriterLimits {
  /** File content bytes in all (a filesystem holds no more data than its size). */
  maxBytes: number;
  /** A file's size. */
  maxFileBytes: number;
  maxApparentBytes: number;
  maxEntries: number;
}

export interface Skipped {
  path: string;
  why: string;
}

const MAX_SKIPS_KEPT = 1000;
const MAX_PATH_BYTES = 4000;

class StreamError extends Error {
  constructor(why: string) {
    super(`the disk reader broke its stream (${why}): nothing it sent is used`);
  }
}

/** Nanoseconds (decimal) as the seconds utimes takes (see restorer.ts for the half microsecond). */
function seconds(ns: string): number {
  return Number(BigInt(ns) / 1000n) / 1e6 + 5e-7;
}

function checkMeta(m: Partial<Meta>, withMode: boolean): void {
  const id = (x: unknown) => Number.isInteger(x) && (x as number) >= 0 && (x as number) < 2 ** 32 - 1;
  if (withMode && !(Number.isInteger(m.mode) && m.mode! >= 0 && m.mode! <= 0o7777)) throw new StreamError('a mode');
  if (!id(m.uid) || !id(m.gid)) throw new StreamError('an owner');
  if (typeof m.atime !== 'string' || !/^-?\d{1,21}$/.test(m.atime) || typeof m.mtime !== 'string' || !/^-?\d{1,21}$/.test(m.mtime))
    throw new StreamError('a time');
  if (m.xattrs !== undefined) {
    if (!Array.isArray(m.xattrs) || m.xattrs.length > 1000) throw new StreamError('extended attributes');
    for (const x of m.xattrs) {
      if (
        !Array.isArray(x) ||
        typeof x[0] !== 'string' ||
        typeof x[1] !== 'string' ||
        xattrNameProblem(x[0]) ||
        x[1].length > 90_000 ||
        !/^[A-Za-z0-9+/]*={0,2}$/.test(x[1])
      )
        throw new StreamError('an extended attribute');
    }
  }
}

export class TreeWriter {
  readonly skipped: Skipped[] = [];
  readonly notes: string[] = [];
  skippedCount = 0;
  entries = 0;
  bytes = 0;
  readonly xattrs: [string, { name: string; value: string }[]][] = [];
  private apparent = 0;
  private readonly dirs = new Map<string, Meta>();
  /** Names made: directories, and files and links (which hard links may name). */
  private readonly made = new Map<string, 'dir' | 'file'>();
  private file: { fd: number; size: number; meta: Meta; path: string } | undefined;
  private done = false;
  private readonly owners = process.getuid?.() === 0;

  constructor(
    private readonly root: string,
    private readonly limits: WriterLimits,
  ) {}

  /** The path under root of `p`, after checking every component and that its directory was made here. */
  private place(p: unknown): { key: string; path: string } {
    if (!Array.isArray(p) || p.length === 0 || p.length > 300) throw new StreamError('a path');
    for (const c of p) if (typeof c !== 'string' || nameProblem(c)) throw new StreamError('a name');
    const key = p.join('/');
    if (Buffer.byteLength(key) > MAX_PATH_BYTES) throw new StreamError('a path too long');
    const parent = p.slice(0, -1).join('/');
    if (this.made.get(parent) !== 'dir') throw new StreamError('an entry outside the directories it made');
    if (this.made.has(key)) throw new StreamError('a name twice');
    if (++this.entries > this.limits.maxEntries) throw new StreamError(`more than ${this.limits.maxEntries} entries`);
    return { key, path: join(this.root, ...(p as string[])) };
  }

  private keepXattrs(path: string, m: Meta): void {
    if (m.xattrs?.length) this.xattrs.push([path, m.xattrs.map(([name, value]) => ({ name, value }))]);
  }

  private closeFile(): void {
    const f = this.file;
    if (!f) return;
    this.file = undefined;
    try {
      ftruncateSync(f.fd, f.size);
      if (this.owners) fchownSync(f.fd, f.meta.uid, f.meta.gid);
      fchmodSync(f.fd, f.meta.mode);
      futimesSync(f.fd, seconds(f.meta.atime), seconds(f.meta.mtime));
    } finally {
      closeSync(f.fd);
    }
  }

  write(f: Frame, data?: Buffer): void {
    if (this.done) throw new StreamError('frames after the end');
    if (f.t !== 'data') this.closeFile();
    switch (f.t) {
      case 'dir': {
        checkMeta(f, true);
        if (Array.isArray(f.p) && f.p.length === 0) {
          if (this.made.has('')) throw new StreamError('the root twice');
          this.made.set('', 'dir');
          this.dirs.set('', f);
          this.keepXattrs(this.root, f);
          return;
        }
        const { key, path } = this.place(f.p);
        mkdirSync(path, { mode: 0o700 });
        this.made.set(key, 'dir');
        this.dirs.set(key, f);
        this.keepXattrs(path, f);
        return;
      }
      case 'file': {
        checkMeta(f, true);
        if (!Number.isSafeInteger(f.size) || f.size < 0 || f.size > this.limits.maxFileBytes) throw new StreamError('a file size');
        this.apparent += f.size;
        if (this.apparent > this.limits.maxApparentBytes) throw new StreamError('files larger in all than allowed');
        const { key, path } = this.place(f.p);
        const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
        this.made.set(key, 'file');
        this.file = { fd, size: f.size, meta: f, path };
        this.keepXattrs(path, f);
        return;
      }
      case 'data': {
        const cur = this.file;
        if (!cur || !data || f.o + f.n > cur.size) throw new StreamError('data outside a file');
        this.bytes += f.n;
        if (this.bytes > this.limits.maxBytes) throw new StreamError(`more than ${this.limits.maxBytes} bytes of content`);
        for (let w = 0; w < f.n;) w += writeSync(cur.fd, data, w, f.n - w, f.o + w);
        return;
      }
      case 'symlink': {
        checkMeta(f, false);
        if (typeof f.target !== 'string' || linkTargetProblem(f.target)) throw new StreamError('a link target');
        const { key, path } = this.place(f.p);
        symlinkSync(f.target, path);
        this.made.set(key, 'file');
        if (this.owners) lchownSync(path, f.uid, f.gid);
        lutimesSync(path, seconds(f.atime), seconds(f.mtime));
        if (f.xattrs?.length) this.xattrs.push([path, f.xattrs.map(([name, value]) => ({ name, value }))]);
        return;
      }
      case 'link': {
        if (!Array.isArray(f.to) || this.made.get(f.to.join('/')) !== 'file') throw new StreamError('a hard link to something it did not make');
        const { key, path } = this.place(f.p);
        linkSync(join(this.root, ...(f.to as string[])), path);
        this.made.set(key, 'file');
        return;
      }
      case 'special': {
        checkMeta(f, true);
        const kinds = { fifo: 'p', char: 'c', block: 'b' } as const;
        const id = (x: unknown) => Number.isInteger(x) && (x as number) >= 0 && (x as number) < 2 ** 20;
        if (!(f.kind in kinds) || !id(f.major) || !id(f.minor)) throw new StreamError('a special file');
        const { key, path } = this.place(f.p);
        // Node has no mknod; its arguments are this writer's own path and numbers.
        execFileSync('mknod', ['-m', '0600', path, kinds[f.kind], ...(f.kind === 'fifo' ? [] : [String(f.major), String(f.minor)])]);
        this.made.set(key, 'file');
        if (this.owners) lchownSync(path, f.uid, f.gid);
        chmodSync(path, f.mode);
        utimesSync(path, seconds(f.atime), seconds(f.mtime));
        this.keepXattrs(path, f);
        return;
      }
      case 'note':
        if (this.notes.length < MAX_SKIPS_KEPT) this.notes.push(printable(String(f.text).slice(0, 4096)));
        return;
      case 'skip':
        this.skippedCount++;
        if (this.skipped.length < MAX_SKIPS_KEPT)
          this.skipped.push({ path: printable(String(f.path).slice(0, 4096)), why: printable(String(f.why).slice(0, 500)) });
        return;
      case 'done':
        this.done = true;
        return;
      default:
        throw new StreamError('an unknown frame');
    }
  }

  /** After the stream: the end must have come; directories get their owners, modes and times, deepest first. */
  finish(): void {
    this.closeFile();
    if (!this.done) throw new StreamError('it ended early');
    for (const [key, m] of [...this.dirs].reverse()) {
      const path = key ? join(this.root, ...key.split('/')) : this.root;
      if (this.owners) chownSync(path, m.uid, m.gid);
      chmodSync(path, m.mode);
      utimesSync(path, seconds(m.atime), seconds(m.mtime));
    }
  }

  /** A failed extraction: the open file is closed (the caller removes the directory). */
  abort(): void {
    if (this.file) closeSync(this.file.fd);
    this.file = undefined;
  }
}
