/**
 * What the sandboxed reader writes out of a filesystem equals what the filesystem was made from
 * (mkfs -d of a directory this test fills): names, types, modes, owners, mtimes, content, holes,
 * symlink targets, hard links, device nodes and FIFOs, xattrs and ACLs; on ext4 (extents, a
 * hashed directory, inline data) and ext2 (block maps through double-indirect blocks).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join, relative } from 'node:path';
import { after, test } from 'node:test';
import { extractFilesystem } from '../../../src/guest-disk/index.ts';
import { writeXattrs } from '../../../src/backup/xattrs.ts';
import { tempDir } from '../../helpers/tmp.ts';

const tmp = tempDir('outrig-extract-');
after(() => tmp.remove());

function fill(src: string): void {
  mkdirSync(join(src, 'etc', 'deep', 'er', 'still'), { recursive: true });
  writeFileSync(join(src, 'etc', 'hostname'), 'guest\n');
  writeFileSync(join(src, 'tiny'), 'x');
  const big = Buffer.alloc(5 * 1024 * 1024 + 123);
  for (let i = 0; i + 4 <= big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i);
  writeFileSync(join(src, 'big.bin'), big);
  writeFileSync(join(src, 'holes'), '');
  truncateSync(join(src, 'holes'), 3 * 1024 * 1024);
  // Data in the middle and at the end (mke2fs -d with inline_data drops a trailing hole from the size).
  for (const seek of ['300', '766'])
    execFileSync('dd', ['if=/dev/urandom', `of=${join(src, 'holes')}`, 'bs=4096', `seek=${seek}`, 'count=2', 'conv=notrunc', 'status=none']);
  symlinkSync('etc/hostname', join(src, 'short-link'));
  symlinkSync(`/${'long/'.repeat(30)}target`, join(src, 'long-link'));
  linkSync(join(src, 'etc', 'hostname'), join(src, 'etc', 'deep', 'hardlink'));
  execFileSync('mkfifo', [join(src, 'fifo')]);
  execFileSync('mknod', [join(src, 'null'), 'c', '1', '3']);
  execFileSync('mknod', [join(src, 'bigdev'), 'b', '259', '70000']);
  writeFileSync(join(src, 'suid'), '#!/bin/sh\n');
  chmodSync(join(src, 'suid'), 0o4755);
  chownSync(join(src, 'etc', 'deep'), 1000, 1001);
  chownSync(join(src, 'tiny'), 70000, 80000);
  execFileSync('setfattr', ['-n', 'user.note', '-v', 'hello', join(src, 'tiny')]);
  execFileSync('setfattr', ['-n', 'security.capability', '-v', '0sAQAAAgAgAAAAAAAAAAAAAAAAAAA=', join(src, 'big.bin')]);
  execFileSync('setfacl', ['-m', 'u:1234:rw,g:55:r', join(src, 'etc', 'hostname')]);
  execFileSync('setfacl', ['-d', '-m', 'u:1234:rwx', join(src, 'etc', 'deep')]);
  mkdirSync(join(src, 'many'));
  for (let i = 0; i < 400; i++) writeFileSync(join(src, 'many', `file-${i}`), `${i}\n`);
  utimesSync(join(src, 'tiny'), 1_000_000, 1_234_567_890);
}

/** A tree's entries with what a backup keeps of each (times to the second; ctime and inode numbers change). */
function describe(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const inodes = new Map<number, string>();
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const r = relative(root, p);
      if (r === 'lost+found') continue;
      const st = lstatSync(p);
      let what = `${(st.mode & 0o177777).toString(8)} ${st.uid}:${st.gid}`;
      if (!st.isDirectory()) what += ` ${Math.floor(st.mtimeMs / 1000)}`;
      if (st.isFile()) what += ` ${st.size} ${createHash('sha256').update(readFileSync(p)).digest('hex').slice(0, 16)}`;
      if (st.isSymbolicLink()) what += ` -> ${readlinkSync(p)}`;
      if (st.isCharacterDevice() || st.isBlockDevice()) what += ` dev ${st.rdev}`;
      if (!st.isDirectory() && st.nlink > 1) what += ` linked ${inodes.get(st.ino) ?? (inodes.set(st.ino, r), r)}`;
      if (!st.isSymbolicLink())
        what += ` ${execFileSync('getfattr', ['-h', '-d', '-m', '-', '-e', 'base64', '--absolute-names', p])
          .toString()
          .split('\n')
          .filter((l) => l && !l.startsWith('#'))
          .sort()
          .join(',')}`;
      out[r] = what;
      if (st.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out;
}

async function roundTrip(name: string, mkfsArgs: string[]): Promise<void> {
  const src = join(tmp.path, `${name}-src`);
  mkdirSync(src);
  fill(src);
  const image = join(tmp.path, `${name}.raw`);
  writeFileSync(image, '');
  truncateSync(image, 64 * 1024 * 1024);
  execFileSync('mkfs.ext4', ['-q', '-F', ...mkfsArgs, '-d', src, image]);
  const out = join(tmp.path, `${name}-out`);
  mkdirSync(out);
  const r = await extractFilesystem(image, out, { offset: 0, size: 64 * 1024 * 1024, diskSize: 64 * 1024 * 1024 });
  await writeXattrs(r.xattrs);
  assert.deepEqual(r.skipped, []);
  assert.deepEqual(describe(out), describe(src));
  assert.ok(lstatSync(join(out, 'holes')).blocks * 512 < 1024 * 1024, 'the holes were written as zeros');
}

test('ext4 (extents, hashed directory, xattrs in the inode and in a block, ACLs): written out as made', async () => {
  await roundTrip('ext4', ['-t', 'ext4', '-b', '4096', '-I', '256']);
});

test('ext2 with 1 KiB blocks (block maps through double-indirect blocks) and 128-byte inodes', async () => {
  await roundTrip('ext2', ['-t', 'ext2', '-b', '1024', '-I', '128']);
});

test('ext4 with inline data: small files and directories kept in their inodes', async () => {
  await roundTrip('inline', ['-t', 'ext4', '-O', 'inline_data', '-I', '512']);
});
