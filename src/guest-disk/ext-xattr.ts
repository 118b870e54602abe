/**
 * ext extended attributes: the in-inode area and the external block, entries bounds-checked, values
 * in EA inodes read through the same checks. POSIX ACLs are stored in ext's compact form and are
 * turned into the form Linux's setxattr takes. Pure.
 */
import { CorruptError, type Source } from './source.ts';
import type { Superblock } from './ext-super.ts';

const XATTR_MAGIC = 0xea020000;
const PREFIX: Record<number, string> = {
  1: 'user.',
  2: 'system.posix_acl_access',
  3: 'system.posix_acl_default',
  4: 'trusted.',
  6: 'security.',
  7: 'system.',
  8: 'system.richacl',
};
const MAX_VALUE = 65536;

export interface RawXattr {
  name: string;
  value: Buffer;
}

/** Entries of an xattr area: entries from `first`, values at `valueBase` + offset, all within `area`. */
function entries(area: Buffer, first: number, valueBase: number, readEaInode: (ino: number, size: number) => Buffer, what: string): RawXattr[] {
  const out: RawXattr[] = [];
  let o = first;
  while (o + 4 <= area.length && area.readUInt32LE(o) !== 0) {
    if (o + 16 > area.length) throw new CorruptError(`${what}: an attribute entry runs past its area`);
    const nameLen = area[o]!;
    const index = area[o + 1]!;
    const valueOffs = area.readUInt16LE(o + 2);
    const valueInum = area.readUInt32LE(o + 4);
    const valueSize = area.readUInt32LE(o + 8);
    if (o + 16 + nameLen > area.length) throw new CorruptError(`${what}: an attribute name runs past its area`);
    if (valueSize > MAX_VALUE) throw new CorruptError(`${what}: an attribute value of ${valueSize} bytes`);
    const prefix = PREFIX[index];
    const suffix = area.subarray(o + 16, o + 16 + nameLen).toString('latin1');
    let value: Buffer;
    if (valueInum) value = readEaInode(valueInum, valueSize);
    else {
      const at = valueBase + valueOffs;
      if (at + valueSize > area.length) throw new CorruptError(`${what}: an attribute value runs past its area`);
      value = Buffer.from(area.subarray(at, at + valueSize));
    }
    if (prefix !== undefined) out.push({ name: prefix + suffix, value });
    o += (16 + nameLen + 3) & ~3;
  }
  return out;
}

/** The attributes of an inode: its in-inode area (`extra`, after i_extra_isize) and its xattr block. */
export function readXattrs(
  src: Source,
  sb: Superblock,
  ino: number,
  extra: Buffer,
  xattrBlock: number,
  readEaInode: (ino: number, size: number) => Buffer,
): RawXattr[] {
  const out: RawXattr[] = [];
  if (extra.length >= 4 && extra.readUInt32LE(0) === XATTR_MAGIC) out.push(...entries(extra, 4, 4, readEaInode, `inode ${ino}`));
  if (xattrBlock) {
    if (xattrBlock < sb.firstDataBlock || xattrBlock >= sb.blocksCount) throw new CorruptError(`inode ${ino}: its attribute block is outside the filesystem`);
    const b = src.read(xattrBlock * sb.blockSize, sb.blockSize);
    if (b.readUInt32LE(0) !== XATTR_MAGIC) throw new CorruptError(`inode ${ino}: its attribute block has no magic`);
    out.push(...entries(b, 32, 0, readEaInode, `inode ${ino}'s attribute block`));
  }
  return out;
}

const ACL_USER = 2;
const ACL_GROUP = 8;

/** ext's ACL form (version 1; short entries for the owner, group, mask and other) as Linux's xattr form (version 2, 8-byte entries). */
export function aclToVfs(v: Buffer, what: string): Buffer {
  if (v.length < 4 || v.readUInt32LE(0) !== 1) throw new CorruptError(`${what}: an ACL of an unknown version`);
  const parts: Buffer[] = [Buffer.from([2, 0, 0, 0])];
  let o = 4;
  while (o < v.length) {
    if (o + 4 > v.length) throw new CorruptError(`${what}: a truncated ACL`);
    const tag = v.readUInt16LE(o);
    const perm = v.readUInt16LE(o + 2);
    const e = Buffer.alloc(8);
    e.writeUInt16LE(tag, 0);
    e.writeUInt16LE(perm, 2);
    if (tag === ACL_USER || tag === ACL_GROUP) {
      if (o + 8 > v.length) throw new CorruptError(`${what}: a truncated ACL`);
      e.writeUInt32LE(v.readUInt32LE(o + 4), 4);
      o += 8;
    } else {
      e.writeUInt32LE(0xffffffff, 4);
      o += 4;
    }
    parts.push(e);
  }
  return Buffer.concat(parts);
}
