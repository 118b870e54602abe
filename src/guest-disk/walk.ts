/**
 * A filesystem's tree as frames for the writer: directories before what they hold, each file's
 * content in pieces, hard links as links to the first name, symlinks as their targets. What
 * cannot be written safely is skipped with the reason: names that are not one printable path
 * component, a second link to a directory (a loop), files larger than the filesystem (sparse
 * bombs), structures that are corrupt. Sockets are dropped with a note. Pure (over an ExtFs and an emit function).
 */
import { CorruptError } from './source.ts';
import type { ExtFs } from './ext-fs.ts';
import { isInline, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, type Inode } from './ext-inode.ts';
import { aclToVfs } from './ext-xattr.ts';
import type { Frame, Meta } from './frames.ts';
import { linkTargetProblem, nameProblem, showBytes, showPath, xattrNameProblem } from './names.ts';

interface WalkLimits {
  /** A file's apparent size above this is skipped (default: the filesystem's size). */
  maxFileBytes: number;
  /** All files' apparent sizes together (holes are read as zeros by a backup). */
  maxApparentBytes: number;
  /** Directory depth. */
  maxDepth: number;
}

type Emit = (f: Frame, data?: Buffer) => void;

const ROOT = 2;
const S_IFIFO = 0o010000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFSOCK = 0o140000;

/** A device's numbers from i_block: the old 16-bit form in the first word, else the new one in the second. */
function deviceNumbers(block: Buffer): { major: number; minor: number } {
  const old = block.readUInt32LE(0);
  if (old) return { major: (old >> 8) & 0xff, minor: old & 0xff };
  const d = block.readUInt32LE(4);
  return { major: (d & 0xfff00) >>> 8, minor: (d & 0xff) | ((d >>> 12) & 0xfff00) };
}

export function walkFilesystem(fs: ExtFs, emit: Emit, limits: WalkLimits): void {
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const firstName = new Map<number, string[]>();
  const dirsSeen = new Set<number>([ROOT]);
  let apparent = 0;
  let entries = 0;
  const skip = (p: string, why: string) => emit({ t: 'skip', path: p, why });

  const meta = (i: Inode, p: string[]): Meta => {
    const m: Meta = { mode: i.mode & 0o7777, uid: i.uid, gid: i.gid, atime: i.atime, mtime: i.mtime };
    try {
      const kept: [string, string][] = [];
      for (const x of fs.rawXattrs(i)) {
        if (x.name === 'system.data') continue; // inline data's own storage
        const problem = xattrNameProblem(x.name);
        if (problem) {
          skip(showPath(p), `${problem}: ${JSON.stringify(x.name)}`);
          continue;
        }
        kept.push([x.name, (x.name.startsWith('system.posix_acl_') ? aclToVfs(x.value, showPath(p)) : x.value).toString('base64')]);
      }
      if (kept.length) m.xattrs = kept;
    } catch (e) {
      if (!(e instanceof CorruptError)) throw e;
      skip(showPath(p), `its extended attributes are not kept: ${e.message}`);
    }
    return m;
  };

  const child = (ino: number, p: string[], stack: { i: Inode; p: string[] }[]) => {
    const i = fs.inode(ino);
    const type = i.mode & S_IFMT;
    if (type !== S_IFDIR && i.links > 1) {
      const first = firstName.get(ino);
      if (first) return emit({ t: 'link', p, to: first });
    }
    if (type === S_IFDIR) {
      if (dirsSeen.has(ino)) return skip(showPath(p), 'a second link to a directory (a loop): not followed');
      if (p.length > limits.maxDepth) return skip(showPath(p), `a directory deeper than ${limits.maxDepth} levels`);
      dirsSeen.add(ino);
      emit({ t: 'dir', p, ...meta(i, p) });
      stack.push({ i, p });
    } else if (type === S_IFREG) {
      if (i.size > limits.maxFileBytes) return skip(showPath(p), `a file of ${i.size} bytes, larger than the filesystem (a sparse-file bomb?)`);
      if (apparent + i.size > limits.maxApparentBytes)
        return skip(showPath(p), `the files' sizes together pass ${limits.maxApparentBytes} bytes (sparse files?)`);
      const mapped = isInline(i) ? undefined : fs.runs(i);
      apparent += i.size;
      emit({ t: 'file', p, size: i.size, ...meta(i, p) });
      for (const piece of fs.content(i, mapped)) emit({ t: 'data', o: piece.offset, n: piece.data.length }, piece.data);
    } else if (type === S_IFLNK) {
      let target: string;
      try {
        target = utf8.decode(fs.symlinkTarget(i));
      } catch (e) {
        if (e instanceof CorruptError) throw e;
        return skip(showPath(p), 'a link target that is not UTF-8');
      }
      const problem = linkTargetProblem(target);
      if (problem) return skip(showPath(p), problem);
      const { mode: _mode, ...rest } = meta(i, p);
      emit({ t: 'symlink', p, target, ...rest });
    } else if (type === S_IFIFO || type === S_IFCHR || type === S_IFBLK) {
      const dev = deviceNumbers(i.block);
      emit({ t: 'special', p, kind: type === S_IFIFO ? 'fifo' : type === S_IFCHR ? 'char' : 'block', ...dev, ...meta(i, p) });
    } else if (type === S_IFSOCK) {
      // A socket on a disk is a name left behind by a program that is gone: nothing to carry.
      return emit({ t: 'note', text: `${showPath(p)}: a socket, not kept` });
    } else return skip(showPath(p), `an inode of unknown type ${(type >> 12).toString(8)}`);
    if (type !== S_IFDIR && i.links > 1) firstName.set(ino, p);
  };

  const root = fs.inode(ROOT);
  if ((root.mode & S_IFMT) !== S_IFDIR) throw new CorruptError('the root inode is not a directory');
  emit({ t: 'dir', p: [], ...meta(root, []) });
  const stack = [{ i: root, p: [] as string[] }];
  while (stack.length) {
    const { i: dir, p: path } = stack.pop()!;
    let list;
    try {
      list = fs.entries(dir);
    } catch (e) {
      if (!(e instanceof CorruptError)) throw e;
      skip(showPath(path), `its entries cannot be read: ${e.message}`);
      continue;
    }
    let dots = 0;
    let dotdots = 0;
    for (const e of list) {
      let name: string;
      try {
        name = utf8.decode(e.name);
      } catch {
        skip(`${showPath(path).slice(0, -1)}/${showBytes(e.name).slice(1)}`, 'a name that is not UTF-8');
        continue;
      }
      if ((name === '.' && !dots++) || (name === '..' && !dotdots++)) continue;
      // mkfs makes its own lost+found.
      if (path.length === 0 && name === 'lost+found') continue;
      const p = [...path, name];
      const problem = nameProblem(name);
      if (problem) {
        skip(showPath(p), problem);
        continue;
      }
      entries++;
      try {
        child(e.ino, p, stack);
      } catch (err) {
        if (!(err instanceof CorruptError)) throw err;
        skip(showPath(p), err.message);
      }
    }
  }
  emit({ t: 'done', entries });
}
