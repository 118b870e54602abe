/** Snapshot trees: a directory's entries with their full metadata, stored as a tree blob each. */
import type { BigIntStats } from 'node:fs';
import type { Xattr } from './xattrs.ts';

type NodeType = 'file' | 'dir' | 'symlink' | 'blockdev' | 'chardev' | 'fifo' | 'socket';

export interface TreeNode {
  name: string;
  type: NodeType;
  /** Permission bits and setuid/setgid/sticky (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Nanoseconds since the epoch, as decimal strings (beyond Number's precision). */
  mtime: string;
  atime: string;
  ctime: string;
  size: number;
  inode: string;
  dev: string;
  links: number;
  /** Files: their blobs in order. */
  content?: string[];
  /** Files with holes (fewer blocks than bytes): restored sparse, zero blobs skipped. */
  sparse?: boolean;
  /** Directories: the tree blob of their entries. */
  subtree?: string;
  linktarget?: string;
  /** Device nodes: major and minor. */
  device?: { major: number; minor: number };
  /** Extended attributes, POSIX ACLs among them. */
  xattrs?: Xattr[];
}

interface Tree {
  nodes: TreeNode[];
}

function nodeType(st: BigIntStats): NodeType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isBlockDevice()) return 'blockdev';
  if (st.isCharacterDevice()) return 'chardev';
  if (st.isFIFO()) return 'fifo';
  return 'socket';
}

/** Linux's dev_t encoding (glibc gnu_dev_major/minor). */
function splitDevice(rdev: bigint): { major: number; minor: number } {
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
  return { major, minor };
}

export function nodeOf(name: string, st: BigIntStats): TreeNode {
  const type = nodeType(st);
  const n: TreeNode = {
    name,
    type,
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    mtime: st.mtimeNs.toString(),
    atime: st.atimeNs.toString(),
    ctime: st.ctimeNs.toString(),
    size: type === 'file' ? Number(st.size) : 0,
    inode: st.ino.toString(),
    dev: st.dev.toString(),
    links: Number(st.nlink),
  };
  if (type === 'blockdev' || type === 'chardev') n.device = splitDevice(st.rdev);
  if (type === 'file' && st.blocks * 512n < st.size) n.sparse = true;
  return n;
}

/** The same file as in the parent snapshot, so its content need not be read again. */
export function unchanged(prev: TreeNode | undefined, cur: TreeNode): prev is TreeNode & { content: string[] } {
  return (
    !!prev &&
    prev.type === 'file' &&
    cur.type === 'file' &&
    !!prev.content &&
    prev.mtime === cur.mtime &&
    prev.ctime === cur.ctime &&
    prev.size === cur.size &&
    prev.inode === cur.inode
  );
}

export function encodeTree(t: Tree): Buffer {
  return Buffer.from(JSON.stringify(t));
}

export function decodeTree(b: Buffer): Tree {
  return JSON.parse(b.toString('utf8')) as Tree;
}
