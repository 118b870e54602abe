/**
 * Backups and restores of guests' disks against a corpus of hostile disks (test/helpers/hostile-disks.ts)
 * and forged snapshots: every name a guest wrote is checked before anything is written under it,
 * nothing is written outside the work directory, no symlink of the guest's is followed, and an
 * edit of a disk in place refuses, leaving the disk as it was, when it could not carry everything.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { after, before, test } from 'node:test';
import { backupDiskImage, restoreDiskImage, restoreFilesIntoImage, restoreSystemState, type BmrManifest } from '../../../src/backup/bmr.ts';
import { Repository } from '../../../src/backup/repository.ts';
import { Restorer } from '../../../src/backup/restorer.ts';
import { LocalStorage } from '../../../src/backup/storage.ts';
import { encodeTree, type TreeNode } from '../../../src/backup/tree.ts';
import { nameProblem } from '../../../src/guest-disk/index.ts';
import { buildHostileDisks, PART_OFFSET, type HostileDisk } from '../../helpers/hostile-disks.ts';
import { tempDir } from '../../helpers/tmp.ts';

const tmp = tempDir('outrig-hostile-');
after(() => tmp.remove());
const secret = join(tmp.path, 'backup-passphrase');
let disks: Map<string, HostileDisk>;
let repo: Repository;
const backups = new Map<string, string>();

before(async () => {
  writeFileSync(secret, 'the host secret\n', { mode: 0o600 });
  disks = new Map(buildHostileDisks(tmp.path, secret).map((d) => [d.name, d]));
  const storage = new LocalStorage(join(tmp.path, 'repo'));
  await storage.create();
  repo = await Repository.init(storage, 'hostile', { scrypt: { N: 2 ** 10, r: 8, p: 1 } });
});

const disk = (name: string) => disks.get(name)!;
/** The backup of a corpus disk (the first test makes them; a later test run alone makes its own). */
async function backupOf(name: string): Promise<string> {
  if (!backups.has(name)) backups.set(name, (await backupDiskImage(repo, disk(name).path)).id);
  return backups.get(name)!;
}
const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

function noEscapes(): void {
  for (const d of disks.values()) for (const e of d.escapes) assert.equal(existsSync(e), false, `${e} was written on the host`);
}

/** Every entry under `dir` (relative paths), not following symlinks. */
function entries(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      out.push(relative(dir, p));
      if (lstatSync(p).isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

/** The names in a filesystem of an image, listed by debugfs (the image is the test's own result). */
function rootListing(image: string, path: string): string {
  return execFileSync('debugfs', ['-R', `ls -l ${path}`, `${image}?offset=${PART_OFFSET}`], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
}

test('backups of hostile disks skip what cannot be carried, say why, follow no link and write nothing outside', async () => {
  const expected: Record<string, RegExp[]> = {
    traversal: [/the name "\.\."/, /a name holding "\/"/, /a name holding "\/"/],
    control: [/control character/, /control character/, /a link target holding a control character/],
    links: [],
    sparse: [/4294967296 bytes, larger than the filesystem/],
    loop: [/a second link to a directory \(a loop\)/],
  };
  for (const [name, reasons] of Object.entries(expected)) {
    const b = await backupDiskImage(repo, disk(name).path);
    noEscapes();
    backups.set(name, b.id);
    assert.equal(b.skipped.length, reasons.length, `${name}: ${JSON.stringify(b.skipped)}`);
    for (const r of reasons)
      assert.ok(
        b.skipped.some((s) => r.test(s.why)),
        `${name}: no skip for ${r}: ${JSON.stringify(b.skipped)}`,
      );
    // What the snapshot holds: only names that are one printable component.
    const out = join(tmp.path, `restored-${name}`);
    await new Restorer(repo).run(await repo.findSnapshot(b.id), out);
    for (const e of entries(out)) for (const c of e.split('/')) assert.equal(nameProblem(c), undefined, `${name}: ${JSON.stringify(e)} in the snapshot`);
    if (name === 'links') {
      // The guest's links are kept as links, and the manifest was not read through them.
      assert.equal(readlinkSync(join(out, 'p1', 'etc-out')), '/etc');
      assert.ok(lstatSync(join(out, 'p1', 'etc', 'fstab')).isSymbolicLink());
      assert.deepEqual((b.manifest as BmrManifest).mounts, [], "the host file behind the guest's /etc/fstab link was read as its mounts");
    }
    noEscapes();
  }
  await assert.rejects(
    backupDiskImage(repo, disk('corrupt').path),
    /partition 1 of \S+corrupt\.raw holds an ext filesystem Outrig cannot read: the superblock claims blocks of 2\^50 bytes/,
  );
});

test('each backup of a hostile disk rebuilds into a clean, checkable disk', async () => {
  for (const [name, id] of backups) {
    const image = join(tmp.path, `rebuilt-${name}.raw`);
    await restoreDiskImage(repo, await repo.findSnapshot(id), image);
    execFileSync('e2fsck', ['-fn', `${image}?offset=${PART_OFFSET}`], { stdio: 'ignore' });
    assert.match(rootListing(image, '/etc'), /hostname/);
    noEscapes();
  }
});

test('system-state and file restores into a hostile disk refuse before changing it; one without hostile entries keeps its links as links', async () => {
  for (const name of ['control', 'traversal', 'sparse', 'loop']) {
    const d = disk(name);
    const before = sha(d.path);
    const snap = await repo.findSnapshot(await backupOf(name));
    for (const attempt of [() => restoreSystemState(repo, snap, d.path), () => restoreFilesIntoImage(repo, snap, d.path, ['/p1/etc'])]) {
      const failure = await attempt().then(
        () => undefined,
        (e: Error) => e,
      );
      noEscapes();
      assert.equal(sha(d.path), before, `${name}: the disk changed`);
      assert.match(failure?.message ?? 'it did not refuse', /Outrig cannot carry through a rebuild/, name);
    }
  }
  const links = disk('links');
  await restoreSystemState(repo, await repo.findSnapshot(await backupOf('links')), links.path);
  assert.match(rootListing(links.path, '/etc'), /fstab/);
  execFileSync('e2fsck', ['-fn', `${links.path}?offset=${PART_OFFSET}`], { stdio: 'ignore' });
  noEscapes();
});

/** A snapshot written straight into the repository (as a hostile host could), with the links disk's manifest. */
async function forge(
  tree: (file: (name: string, body: string) => Promise<TreeNode>, dir: (name: string, nodes: TreeNode[]) => Promise<TreeNode>) => Promise<TreeNode[]>,
): Promise<string> {
  const base = { mode: 0o644, uid: 0, gid: 0, mtime: '0', atime: '0', ctime: '0', inode: '1', dev: '1', links: 1 };
  const file = async (name: string, body: string): Promise<TreeNode> => ({
    ...base,
    name,
    type: 'file',
    size: body.length,
    content: [await repo.saveBlob('data', Buffer.from(body))],
  });
  const dir = async (name: string, nodes: TreeNode[]): Promise<TreeNode> => ({
    ...base,
    name,
    type: 'dir',
    mode: 0o755,
    size: 0,
    subtree: await repo.saveBlob('tree', encodeTree({ nodes })),
  });
  const root = await repo.saveBlob('tree', encodeTree({ nodes: await tree(file, dir) }));
  await repo.flush();
  const { id: _id, ...real } = await repo.findSnapshot(await backupOf('links'));
  return repo.saveSnapshot({ ...real, tree: root, time: new Date().toISOString() });
}

test('a forged snapshot: names a guest could turn against the host are skipped with the reason, a broken tree stops the restore', async () => {
  const dumped = `/tmp/outrig-escape-forged-${process.pid}`;
  const hostile = await forge(async (file, dir) => [
    await dir('p1', [
      await dir('etc', [
        {
          ...(await file('evil', '')),
          type: 'symlink',
          size: 0,
          content: undefined,
          linktarget: `x"\nwrite ${secret} /stolen\ndump /etc/hostname ${dumped}\nrm "y`,
        },
        await file('esc\x1b]52;c;AAAA\x07', 'clipboard\n'),
        await file('hostname', 'forged\n'),
      ]),
    ]),
  ]);
  const links = disk('links');
  const r = await restoreSystemState(repo, await repo.findSnapshot(hostile), links.path);
  assert.equal(existsSync(dumped), false, 'debugfs commands in a link target were run');
  assert.doesNotMatch(rootListing(links.path, '/'), /stolen/);
  assert.deepEqual(r.skipped.map((s) => s.why).sort(), ['a link target holding a control character', 'a name holding a control character']);
  assert.match(
    execFileSync('debugfs', ['-R', 'cat /etc/hostname', `${links.path}?offset=${PART_OFFSET}`], { stdio: ['ignore', 'pipe', 'ignore'] }).toString(),
    /forged/,
  );

  const escape = `/tmp/outrig-escape-dotdot-${process.pid}`;
  const broken = await forge(async (file, dir) => [
    await dir('p1', [await dir('..', [await dir('..', [await dir('tmp', [await file(escape.slice(5), 'escaped\n')])])])]),
  ]);
  const target = join(tmp.path, 'forged-target');
  mkdirSync(target);
  await assert.rejects(
    restoreDiskImage(repo, await repo.findSnapshot(broken), join(tmp.path, 'forged.raw')),
    /the snapshot is damaged or forged: "\/p1" holds the name "\.\."/,
  );
  await assert.rejects(new Restorer(repo).run(await repo.findSnapshot(broken), target), /damaged or forged/);
  assert.equal(existsSync(escape), false, 'a ".." name in a snapshot wrote outside the target');
  const twice = await forge(async (file, dir) => [
    await dir('p1', [
      { ...(await file('etc', '')), type: 'symlink', size: 0, content: undefined, linktarget: '/etc' },
      await dir('etc', [await file('passwd', 'root::0:0::/:/bin/sh\n')]),
    ]),
  ]);
  await assert.rejects(new Restorer(repo).run(await repo.findSnapshot(twice), target), /holds the name "etc" twice/);
  noEscapes();
});
