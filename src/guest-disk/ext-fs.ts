/**
 * An ext2/3/4 filesystem read from outside: inodes, file content, directories, symlink targets and
 * extended attributes, with nothing trusted that has not been checked. The journal is not replayed
 * (as with debugfs before): a filesystem in use when its snapshot was taken reads as of its last
 * checkpoint. Pure (over a Source).
 */
import { CorruptError, type Source } from './source.ts';
import { INCOMPAT_FILETYPE, parseSuperblock, type Superblock } from './ext-super.ts';
import { isFastSymlink, isInline, readInode, runs, type Inode, type Run } from './ext-inode.ts';
import { readXattrs, type RawXattr } from './ext-xattr.ts';

interface DirEntry {
  ino: number;
  name: Buffer;
}

/** Largest directory read (a directory's data bigger than this is refused as hostile). */
const MAX_DIR_BYTES = 256 * 1024 * 1024;
/** Reads of file content are cut into pieces of at most this. */
const PIECE = 1024 * 1024;

export class ExtFs {
  readonly sb: Superblock;

  constructor(readonly src: Source) {
    this.sb = parseSuperblock(src);
  }

  inode(ino: number): Inode {
    return readInode(this.src, this.sb, ino);
  }

  runs(i: Inode): Run[] {
    return runs(this.src, this.sb, i);
  }

  /** An inline inode's bytes: i_block, then the rest in its system.data attribute. */
  private inline(i: Inode): Buffer {
    const more = this.rawXattrs(i).find((x) => x.name === 'system.data')?.value ?? Buffer.alloc(0);
    return Buffer.concat([i.block, more]);
  }

  /** The content as pieces (offset, bytes) of at most PIECE bytes; holes are not visited. `mapped`: runs(i), when the caller has them. */
  *content(i: Inode, mapped?: Run[]): Generator<{ offset: number; data: Buffer }> {
    if (isInline(i)) {
      const d = this.inline(i).subarray(0, i.size);
      if (d.length) yield { offset: 0, data: d };
      return;
    }
    const bs = this.sb.blockSize;
    for (const r of mapped ?? this.runs(i)) {
      const start = r.logical * bs;
      const end = Math.min((r.logical + r.count) * bs, i.size);
      for (let o = start; o < end; o += PIECE) {
        const n = Math.min(PIECE, end - o);
        yield { offset: o, data: this.src.read(r.physical * bs + (o - start), n) };
      }
    }
  }

  symlinkTarget(i: Inode): Buffer {
    if (i.size > 4096) throw new CorruptError(`inode ${i.ino}: a symlink target of ${i.size} bytes`);
    if (isFastSymlink(this.sb, i)) {
      if (i.size > 60) throw new CorruptError(`inode ${i.ino}: a fast symlink of ${i.size} bytes`);
      return i.block.subarray(0, i.size);
    }
    return Buffer.concat([...this.content(i)].map((p) => p.data)).subarray(0, i.size);
  }

  rawXattrs(i: Inode): RawXattr[] {
    return readXattrs(this.src, this.sb, i.ino, i.extra, i.xattrBlock, (ino, size) => {
      const v = this.inode(ino);
      if (v.size !== size) throw new CorruptError(`inode ${i.ino}: an attribute inode of the wrong size`);
      return Buffer.concat([...this.content(v)].map((p) => p.data));
    });
  }

  /** A directory's entries, "." and ".." included, in the order they are stored. */
  entries(i: Inode): DirEntry[] {
    if (i.size > MAX_DIR_BYTES) throw new CorruptError(`inode ${i.ino}: a directory of ${i.size} bytes`);
    const out: DirEntry[] = [];
    if (isInline(i)) {
      const d = this.inline(i);
      // The parent's inode number, then entries in the rest of i_block, then in system.data.
      this.parseBlock(d.subarray(4, 60), i.ino, out);
      if (d.length > 60) this.parseBlock(d.subarray(60), i.ino, out);
      return out;
    }
    for (const p of this.content(i)) {
      for (let o = 0; o < p.data.length; o += this.sb.blockSize) this.parseBlock(p.data.subarray(o, o + this.sb.blockSize), i.ino, out);
    }
    return out;
  }

  private parseBlock(b: Buffer, dir: number, out: DirEntry[]): void {
    const filetype = (this.sb.incompat & INCOMPAT_FILETYPE) !== 0;
    let o = 0;
    while (o + 8 <= b.length) {
      const ino = b.readUInt32LE(o);
      let rec = b.readUInt16LE(o + 4);
      if (this.sb.blockSize === 65536 && (rec === 0 || rec === 65535)) rec = 65536;
      const nameLen = filetype ? b[o + 6]! : b.readUInt16LE(o + 6);
      if (rec < 8 || rec % 4 || o + rec > b.length || 8 + nameLen > rec) throw new CorruptError(`directory inode ${dir}: a corrupt entry`);
      if (ino !== 0) out.push({ ino, name: Buffer.from(b.subarray(o + 8, o + 8 + nameLen)) });
      o += rec;
    }
  }
}
