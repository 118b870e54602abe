import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { OpJournal } from '../../../src/agent/op-journal.ts';
import { tempDir } from '../../helpers/tmp.ts';

test('a repeated operation id gets the first answer without running again, also after a restart', async () => {
  const dir = tempDir();
  try {
    const path = join(dir.path, 'ops.json');
    let runs = 0;
    const j = new OpJournal(path);
    await j.load();
    const [a, b] = await Promise.all([j.run('op-1', async () => void runs++), j.run('op-1', async () => void runs++)]);
    assert.deepEqual(a, { ok: true });
    assert.deepEqual(b, { ok: true });
    assert.equal(runs, 1, 'concurrent duplicates share one run');
    const failed = await j.run('op-2', async () => {
      throw new Error('no room');
    });
    assert.deepEqual(failed, { ok: false, error: 'no room' });

    const again = new OpJournal(path);
    await again.load();
    assert.deepEqual(await again.run('op-1', async () => void runs++), { ok: true });
    assert.deepEqual(await again.run('op-2', async () => void runs++), { ok: false, error: 'no room' });
    assert.equal(runs, 1);
  } finally {
    dir.remove();
  }
});

test('the journal keeps a bounded number of answers', async () => {
  const dir = tempDir();
  try {
    const j = new OpJournal(join(dir.path, 'ops.json'), 3);
    let runs = 0;
    for (const id of ['a', 'b', 'c', 'd']) await j.run(id, async () => void runs++);
    await j.run('a', async () => void runs++);
    assert.equal(runs, 5, 'the oldest answer was dropped, so its id runs again');
  } finally {
    dir.remove();
  }
});

test('an answer still goes out when the journal cannot be written (a full disk), and later writes are tried again', async () => {
  const dir = tempDir();
  const unhandled: unknown[] = [];
  const on = (e: unknown) => void unhandled.push(e);
  process.on('unhandledRejection', on);
  try {
    const errors: string[] = [];
    // A journal whose directory does not exist: every write fails, as on a full disk.
    const j = new OpJournal(join(dir.path, 'missing', 'ops.json'), 1000, (e) => errors.push(e.message));
    assert.deepEqual(await j.run('op-1', async () => ({ snapshotId: 's1' })), { ok: true, result: { snapshotId: 's1' } });
    assert.deepEqual(await j.run('op-2', async () => undefined), { ok: true });
    assert.deepEqual(await j.run('op-1', async () => assert.fail('ran twice')), { ok: true, result: { snapshotId: 's1' } }, 'answered from memory');
    assert.equal(errors.length, 2, 'each write was tried and reported');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', on);
    dir.remove();
  }
});
