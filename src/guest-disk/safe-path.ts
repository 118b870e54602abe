/**
 * Looking inside a directory tree that holds a guest's entries (a filesystem written out by the
 * writer, or restored from a backup of one) without ever following one of its symlinks: a guest's
 * `/etc/fstab -> /etc/shadow` must read as "not a file", never as the host's file.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';

/** `rel` (a path inside `root`) when every directory on the way is a real directory and the last component exists and is no symlink. */
export function noFollow(root: string, rel: string): string | undefined {
  let at = root;
  const parts = rel.split('/').filter((p) => p && p !== '.');
  if (parts.includes('..')) return undefined;
  for (let k = 0; k < parts.length; k++) {
    at = join(at, parts[k]!);
    let st;
    try {
      st = lstatSync(at);
    } catch {
      return undefined;
    }
    if (st.isSymbolicLink() || (k < parts.length - 1 && !st.isDirectory())) return undefined;
  }
  return at;
}

/** A regular file's text (up to `max` bytes), reached without following symlinks; undefined otherwise. */
export function readSmallFile(root: string, rel: string, max = 1024 * 1024): string | undefined {
  const path = noFollow(root, rel);
  if (!path) return undefined;
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > max) return undefined;
    const b = Buffer.alloc(st.size);
    const n = readSync(fd, b, 0, b.length, 0);
    return b.subarray(0, n).toString('utf8');
  } finally {
    closeSync(fd);
  }
}
