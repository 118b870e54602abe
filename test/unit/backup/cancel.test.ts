/**
 * Cancelling a backup part way (issue 18, finding 5): the archiver stops between files and writes no
 * snapshot, although it swallows per-file errors; the copy of a volume's snapshot is stopped by
 * killing nbdcopy, and its scratch image goes.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Archiver } from '../../../src/backup/archiver.ts';
import { withExportImage } from '../../../src/backup/nbd-source.ts';
import { Repository } from '../../../src/backup/repository.ts';
import { LocalStorage } from '../../../src/backup/storage.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { waitUntil } from '../../helpers/wait.ts';

const tmp = tempDir('outrig-cancel-');
after(() => tmp.remove());

test('an archiver cancelled between files rejects with the reason and writes no snapshot; the repository backs up afterwards', async () => {
  const src = join(tmp.path, 'src');
  mkdirSync(join(src, 'sub'), { recursive: true });
  for (let i = 0; i < 40; i++) writeFileSync(join(src, i % 2 ? 'sub' : '', `f${i}`), randomBytes(64 * 1024));
  const storage = new LocalStorage(join(tmp.path, 'repo'));
  await storage.create();
  const repo = await Repository.init(storage, 'p', { scrypt: { N: 2 ** 10, r: 8, p: 1 } });
  const ac = new AbortController();
  const a = new Archiver(repo, { workers: 0, signal: ac.signal, onProgress: (p) => p.files >= 3 && ac.abort(new Error('cancelled on request')) });
  await assert.rejects(a.run([src]), /cancelled on request/);
  assert.ok(a.progress.files < 40, `stopped part way, after ${a.progress.files} files`);
  assert.deepEqual(a.progress.errors, [], 'the cancel is not swallowed as an unreadable file');
  assert.deepEqual(await repo.snapshots(), []);
  const again = await Repository.open(storage, 'p');
  const { id } = await new Archiver(again, { workers: 0 }).run([src]);
  assert.deepEqual(
    (await again.snapshots()).map((s) => s.id),
    [id],
  );
});

test('a copy of a volume snapshot cancelled part way kills nbdcopy, settles once it has exited, and leaves no scratch image', async () => {
  // A stand-in nbdcopy that writes its pid and waits: the copy of a big volume.
  const bin = join(tmp.path, 'bin');
  mkdirSync(bin);
  const pidFile = join(tmp.path, 'nbdcopy.pid');
  writeFileSync(join(bin, 'nbdcopy'), `#!/bin/sh\necho $$ > ${pidFile}\nexec sleep 60\n`);
  chmodSync(join(bin, 'nbdcopy'), 0o755);
  const work = join(tmp.path, 'work');
  mkdirSync(work);
  const path = process.env.PATH;
  process.env.PATH = `${bin}:${path}`;
  try {
    const ac = new AbortController();
    let ran = false;
    const copy = withExportImage('/nonexistent.sock', 'v@b', async () => void (ran = true), work, ac.signal);
    await waitUntil('nbdcopy started', () => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '');
    const pid = Number(readFileSync(pidFile, 'utf8'));
    ac.abort(new Error('cancelled on request'));
    await assert.rejects(copy, /^Error: cancelled on request$/);
    assert.throws(() => process.kill(pid, 0), /ESRCH/, 'nbdcopy is gone');
    assert.equal(ran, false, 'the backup never read the half-copied image');
    assert.deepEqual(readdirSync(work), []);
  } finally {
    process.env.PATH = path;
  }
});
