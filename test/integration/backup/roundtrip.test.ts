/**
 * The repository end to end on real files: every kind of file and its metadata survive a backup
 * and restore; a second backup reads only what changed; a damaged blob fails the restore loudly
 * and leaves no file that looks whole.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  linkSync,
  writeFileSync,
  openSync,
  writeSync,
  closeSync,
  utimesSync,
  chmodSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Archiver } from '../../../src/backup/archiver.ts';
import { Repository } from '../../../src/backup/repository.ts';
import { INCOMPLETE_MARKER, Restorer } from '../../../src/backup/restorer.ts';
import { LocalStorage } from '../../../src/backup/storage.ts';
import { verifyRepository } from '../../../src/backup/verify.ts';
import { prune } from '../../../src/backup/prune.ts';
import { readXattrs } from '../../../src/backup/xattrs.ts';
import { tempDir } from '../../helpers/tmp.ts';

const FAST_KDF = { N: 2 ** 10, r: 8, p: 1 };

/** Everything about a tree that a restore must give back, by relative path. */
async function describeTree(root: string): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const xattrs = await readXattrs([root]);
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const st = lstatSync(p, { bigint: true });
      const rel = p.slice(root.length);
      const e: Record<string, unknown> = {
        mode: Number(st.mode),
        uid: Number(st.uid),
        links: Number(st.nlink),
        mtimeUs: (st.mtimeNs / 1000n).toString(),
        xattrs: xattrs.get(p) ?? [],
      };
      if (st.isFile()) {
        e.sha = createHash('sha256').update(readFileSync(p)).digest('hex');
        e.size = Number(st.size);
        e.sparse = st.blocks * 512n < st.size;
      }
      if (st.isSymbolicLink()) e.target = readlinkSync(p);
      if (st.isDirectory()) walk(p);
      out[rel] = e;
    }
  };
  walk(root);
  return out;
}

describe('backup repository on real files', () => {
  const tmp = tempDir('outrig-backup-');
  after(() => tmp.remove());
  const src = join(tmp.path, 'src');
  const repoDir = join(tmp.path, 'repo');
  let repo: Repository;
  let first = '';

  test('every kind of file, with its metadata, comes back', async () => {
    mkdirSync(join(src, 'etc', 'deep', 'er'), { recursive: true });
    writeFileSync(join(src, 'etc', 'hosts'), '127.0.0.1 localhost\n');
    writeFileSync(join(src, 'empty'), '');
    const big = Buffer.alloc(6 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE((i * 2654435761) >>> 0, i);
    writeFileSync(join(src, 'etc', 'deep', 'er', 'big.bin'), big);
    writeFileSync(join(src, 'etc', 'deep', 'copy.bin'), big); // the same content: stored once
    const fd = openSync(join(src, 'sparse.img'), 'w');
    writeSync(fd, Buffer.from('start'), 0, 5, 0);
    writeSync(fd, Buffer.from('end'), 0, 3, 64 * 1024 * 1024);
    closeSync(fd);
    linkSync(join(src, 'etc', 'hosts'), join(src, 'hosts-link'));
    symlinkSync('etc/hosts', join(src, 'sym'));
    symlinkSync('/nowhere/at/all', join(src, 'dangling'));
    execFileSync('mkfifo', [join(src, 'pipe')]);
    chmodSync(join(src, 'etc', 'hosts'), 0o640);
    chmodSync(join(src, 'etc', 'deep'), 0o750);
    execFileSync('setfattr', ['-n', 'user.outrig', '-v', 'kept', join(src, 'etc', 'hosts')]);
    execFileSync('setfacl', ['-m', 'u:nobody:r', join(src, 'empty')]);
    utimesSync(join(src, 'empty'), new Date('2001-02-03T04:05:06.789Z'), new Date('2001-02-03T04:05:06.789Z'));

    const storage = new LocalStorage(repoDir);
    await storage.create();
    repo = await Repository.init(storage, 'correct horse', { scrypt: FAST_KDF });
    const a = new Archiver(repo);
    const { id, snapshot } = await a.run([src]);
    first = id;
    assert.equal(snapshot.paths[0], src);
    assert.equal(a.progress.errors.length, 0, JSON.stringify(a.progress.errors));
    assert.ok(repo.stats.blobsDeduplicated > 0, 'the second copy of big.bin is deduplicated');

    const reopened = await Repository.open(new LocalStorage(repoDir), 'correct horse');
    const target = join(tmp.path, 'restore1');
    await new Restorer(reopened).run(await reopened.findSnapshot('latest'), target);
    assert.equal(existsSync(join(target, INCOMPLETE_MARKER)), false);
    const want = await describeTree(src);
    const got = await describeTree(join(target, src));
    assert.deepEqual(got, want);
    assert.equal((got['/sparse.img'] as { sparse: boolean }).sparse, true);
    assert.match(execFileSync('getfacl', ['-c', join(target, src, 'empty')]).toString(), /user:nobody:r--/);
  });

  test('a wrong passphrase opens nothing; an id prefix and an include restore one file', async () => {
    await assert.rejects(Repository.open(new LocalStorage(repoDir), 'wrong'), /wrong passphrase/);
    const target = join(tmp.path, 'restore2');
    await new Restorer(repo, { include: [join(src, 'etc', 'hosts')] }).run(await repo.findSnapshot(first.slice(0, 8)), target);
    assert.equal(readFileSync(join(target, src, 'etc', 'hosts'), 'utf8'), '127.0.0.1 localhost\n');
    assert.equal(existsSync(join(target, src, 'empty')), false);
  });

  test('an incremental backup reads only the files that changed', async () => {
    writeFileSync(join(src, 'etc', 'hosts'), '127.0.0.1 localhost changed\n');
    const a = new Archiver(repo, { parent: first });
    const { snapshot } = await a.run([src]);
    assert.equal(snapshot.parent, first);
    // hosts and hosts-link are one inode: both names changed, nothing else did.
    assert.equal(a.progress.bytesRead, 2 * Buffer.byteLength('127.0.0.1 localhost changed\n'));
    assert.ok(a.progress.unchanged >= 4);
  });

  test('a damaged blob fails the restore with its name and leaves no whole-looking file', async () => {
    const e = [...repo.allEntries()].find((x) => x.kind === 'data' && x.rawLength > 1024 * 1024)!;
    const packPath = join(repoDir, 'data', e.pack.slice(0, 2), e.pack);
    const bytes = readFileSync(packPath);
    bytes[e.offset + 100] = bytes[e.offset + 100]! ^ 0xff;
    writeFileSync(packPath, bytes);
    const fresh = await Repository.open(new LocalStorage(repoDir), 'correct horse');
    const target = join(tmp.path, 'restore3');
    await assert.rejects(
      new Restorer(fresh).run(await fresh.findSnapshot(first), target),
      new RegExp(`blob ${e.id.slice(0, 12)} in pack ${e.pack.slice(0, 12)} is damaged`),
    );
    assert.equal(existsSync(join(target, INCOMPLETE_MARKER)), true);
    assert.equal(existsSync(join(target, src, 'etc', 'deep', 'er', 'big.bin')), false);
  });

  test('verify names the damaged blob, its pack and the files of each snapshot that need it; a missing pack too', async () => {
    const fresh = await Repository.open(new LocalStorage(repoDir), 'correct horse');
    const r = await verifyRepository(fresh);
    assert.equal(r.badBlobs.length, 1);
    assert.match(r.badBlobs[0]!.reason, /is damaged: its authentication tag does not match/);
    assert.deepEqual(
      r.damagedPacks.map((p) => p.reason),
      ['its content does not hash to its name'],
    );
    const bad = r.snapshots.filter((x) => !x.ok);
    assert.equal(bad.length, 2, 'both snapshots hold big.bin and copy.bin');
    for (const b of bad) {
      assert.ok(
        b.problems.some((p) => p.startsWith(`${src}/etc/deep/er/big.bin: blob ${r.badBlobs[0]!.id.slice(0, 12)}`)),
        b.problems.join('\n'),
      );
      assert.ok(b.problems.some((p) => p.startsWith(`${src}/etc/deep/copy.bin:`)));
    }
    const pack = r.damagedPacks[0]!.pack;
    await new LocalStorage(repoDir).remove('data', pack);
    const r2 = await verifyRepository(fresh);
    assert.deepEqual(r2.damagedPacks, [{ pack, reason: 'missing' }]);
    assert.ok(r2.snapshots.every((x) => x.problems.some((p) => p.includes(`pack ${pack.slice(0, 12)} is missing`))));
  });
});

describe('prune', () => {
  const tmp = tempDir('outrig-prune-');
  after(() => tmp.remove());

  test('forgotten snapshots go, and the data only they used; what is kept still restores', async () => {
    const src = join(tmp.path, 'src');
    mkdirSync(src);
    const storage = new LocalStorage(join(tmp.path, 'repo'));
    await storage.create();
    const repo = await Repository.init(storage, undefined);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      // Each generation replaces a 3 MiB file with new content: old versions become garbage.
      const b = Buffer.alloc(3 * 1024 * 1024);
      for (let j = 0; j < b.length; j += 4) b.writeUInt32LE((j * 2654435761 + i * 97) >>> 0, j);
      writeFileSync(join(src, 'data.bin'), b);
      writeFileSync(join(src, 'keep.txt'), 'stable');
      const t = new Date(Date.UTC(2026, 0, 1 + i));
      ids.push((await new Archiver(repo, { now: () => t, parent: ids.at(-1) }).run([src])).id);
    }
    const size = async () => (await storage.list('data')).reduce((n, f) => n + f.size, 0);
    const before = await size();
    const r = await prune(repo, { last: 1 });
    assert.deepEqual(r.removed.sort(), ids.slice(0, 2).sort());
    assert.deepEqual(
      r.kept.map((k) => k.id),
      [ids[2]],
    );
    const after = await size();
    assert.ok(after < before / 2, `${before} -> ${after} bytes`);
    assert.equal(before - after, r.bytesFreed);
    const reopened = await Repository.open(storage, undefined);
    assert.equal(
      (await verifyRepository(reopened)).snapshots.every((x) => x.ok),
      true,
    );
    const target = join(tmp.path, 'out');
    await new Restorer(reopened).run(await reopened.findSnapshot('latest'), target);
    assert.deepEqual(readFileSync(join(target, src, 'data.bin')), readFileSync(join(src, 'data.bin')));
    await assert.rejects(prune(repo, {}), /give at least one retention rule/);
  });
});
